"""Typed errors of the domain, each mapped once to an HTTP status (the API) and once to a
workflow outcome (the state machine: its Retry/Catch rules name these classes).

A Lambda task that raises one of these fails with errorType = the class name, and an
errorMessage that is the JSON {code, message}, so the failure record keeps both.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from qwen_edit.domain.catalog import RuleViolation
from qwen_edit.domain.jobs import QueueRoom
from qwen_edit.domain.redaction import redact


class Outcome(StrEnum):
    REJECT = "reject"  # refused before a job exists
    RETRY = "retry"  # the state's Retry runs it again after a backoff (Store's downloads)
    POLL_AGAIN = "poll-again"  # workflow: Retry on the Poll state
    WAIT_FOR_SLOT = "wait-for-slot"  # workflow: Retry on the Admit state
    FAIL = "fail"  # the job fails with this code and message


class QwenEditError(Exception):
    code = "InternalError"
    http_status = 500
    outcome = Outcome.FAIL

    def __init__(
        self, message: str, details: list[dict[str, Any]] | None = None, *, code: str | None = None
    ):
        message = redact(message)  # it lands in execution histories and job records
        super().__init__(message)
        self.message = message
        self.details = details or []
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return json.dumps({"code": self.code, "message": self.message})


class InvalidRequest(QwenEditError):
    """The request breaks a rule; nothing was sent to the provider."""

    code, http_status, outcome = "InvalidRequest", 422, Outcome.REJECT

    @classmethod
    def of(cls, violations: list[RuleViolation]) -> InvalidRequest:
        """Every broken rule in the details; the first three in the message."""
        summary = "; ".join(v.message for v in violations[:3])
        more = f" (and {len(violations) - 3} more)" if len(violations) > 3 else ""
        return cls(
            f"The request breaks {len(violations)} rule(s): {summary}{more}",
            [v.as_detail() for v in violations],
        )


class BadRequest(QwenEditError):
    """The body is not JSON this API can read (malformed, nested too deep, not UTF-8)."""

    code, http_status, outcome = "BadRequest", 400, Outcome.REJECT


class Unauthorized(QwenEditError):
    """No API key identity on the request (API Gateway normally refuses those first)."""

    code, http_status, outcome = "InvalidApiKey", 401, Outcome.REJECT


class Limit(StrEnum):
    """Which limit a 429 is about: every 429's details[0] names it, with retry_after_seconds.
    QUEUE is the tenant's queue cap (QueueFull); THROTTLE and QUOTA are API Gateway's usage plan
    (template.yaml's GatewayResponses). The provider's own limit never answers a request: it
    makes jobs wait in the queue, so it reaches the API as QUEUE."""

    QUEUE = "queue"
    THROTTLE = "throttle"
    QUOTA = "quota"


class QueueFull(QwenEditError):
    """The tenant already has as many jobs waiting as it may (MaxQueuedJobsPerTenant)."""

    code, http_status, outcome = "QueueFull", 429, Outcome.REJECT

    def __init__(self, message: str, room: QueueRoom):
        retry = {"limit": Limit.QUEUE.value, "retry_after_seconds": room.reset_seconds}
        super().__init__(message, [retry])
        self.room = room


class BudgetExceeded(QwenEditError):
    """The job's worst-case cost does not fit under the tenant's spend cap; details name each
    cap it would pass: its period, cap, spent, reserved, this job's cost and the reset time."""

    code, http_status, outcome = "BudgetExceeded", 402, Outcome.REJECT


class JobNotFound(QwenEditError):
    code, http_status, outcome = "JobNotFound", 404, Outcome.REJECT


class JobConflict(QwenEditError):
    """The job is not in a state that allows this (finished, or already moved on)."""

    code, http_status, outcome = "JobConflict", 409, Outcome.REJECT


class IdempotencyConflict(QwenEditError):
    """The idempotency key of an earlier request, with another request: which one is meant?"""

    code, http_status, outcome = "IdempotencyConflict", 409, Outcome.REJECT


class ProviderRetryable(QwenEditError):
    """The provider said "later" (429, 5xx, timeout) to a download: back off and retry."""

    code, http_status, outcome = "ProviderRetryable", 503, Outcome.RETRY


class TaskPending(QwenEditError):
    """The provider task is not final yet; the Poll state's Retry polls again."""

    code, outcome = "TaskPending", Outcome.POLL_AGAIN


class JobNotRecorded(QwenEditError):
    """The workflow started before its job was recorded (the API starts, then records); the
    Admit state's Retry waits for the record longer than the API function can live."""

    code, outcome = "JobNotRecorded", Outcome.WAIT_FOR_SLOT


class JobFailed(QwenEditError):
    """A final failure: the job fails with `code` (a provider code or one of ours)."""

    code, http_status, outcome = "JobFailed", 502, Outcome.FAIL


class DeadlineExceeded(JobFailed):
    code = "DeadlineExceeded"


class ProviderOutcomeUnknown(JobFailed):
    """A provider call may have reached the provider, and its answer is lost (a timeout after
    the request was sent, or a crash before the answer was recorded). Sending it again could
    create a second task and a second charge, so the job fails instead (the one policy)."""

    code = "ProviderOutcomeUnknown"


class InputsExpired(QwenEditError):
    """A retry needs the job's stored inputs, and the bucket's lifecycle removed them."""

    code, http_status, outcome = "InputsExpired", 409, Outcome.REJECT


def failure_of(error_name: str, cause: str | None) -> tuple[str, str]:
    """(code, message) of a workflow failure from the Catch's Error and Cause.

    Our errors carry {code, message} as errorMessage; anything else (a crash, a Lambda or
    Step Functions error) keeps its error name as the code.
    """
    message = cause or error_name
    try:
        payload = json.loads(cause or "")
        message = payload.get("errorMessage", message) if isinstance(payload, dict) else message
        inner = json.loads(message)
        if isinstance(inner, dict) and "code" in inner:
            return str(inner["code"]), str(inner.get("message", ""))
    except (TypeError, ValueError):
        pass
    return error_name, redact(str(message))[:1000]
