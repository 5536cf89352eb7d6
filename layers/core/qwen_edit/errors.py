"""Typed errors of the domain. Each maps once to an HTTP status (API) and a workflow outcome."""

from __future__ import annotations


class QwenEditError(Exception):
    code = "InternalError"

    def __init__(self, message: str, details: list[dict] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []


class InvalidRequest(QwenEditError):
    """The request breaks a rule; nothing was sent to the provider."""

    code = "InvalidRequest"
