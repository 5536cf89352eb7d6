"""Every answer of the API leaves through here: JSON, and errors in one envelope. Each error class
maps to its status once (the domain's QwenEditError carries it)."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from qwen_edit.domain.errors import QueueFull, QwenEditError
from qwen_edit.domain.jobs import QueueRoom
from qwen_edit.domain.requests import violation_of
from qwen_edit.entrypoints.api.schemas import error_envelope

logger = Logger(child=True)


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body),
        headers=headers,
    )


def error(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
) -> Response[str]:
    return answer(status, error_envelope(code, message, details))


def queue_headers(room: QueueRoom) -> dict[str, str]:
    """The tenant's queue cap as the RateLimit header fields of
    draft-ietf-httpapi-ratelimit-headers-06 (RateLimit-Limit, -Remaining, -Reset; from -07 on
    one `RateLimit` field carries them): the cap in jobs waiting, the places left, and the
    seconds until a place should free up."""
    return {
        "RateLimit-Limit": str(room.limit),
        "RateLimit-Remaining": str(room.remaining),
        "RateLimit-Reset": str(room.reset_seconds),
    }


def _domain_error(caught: QwenEditError) -> Response[str]:
    envelope = error_envelope(caught.code, caught.message, caught.details)
    headers = None
    if isinstance(caught, QueueFull):  # says when to come back: Retry-After and RateLimit-Reset
        headers = {"Retry-After": str(caught.room.reset_seconds), **queue_headers(caught.room)}
    return answer(caught.http_status, envelope, headers)


def _invalid_body(caught: RequestValidationError) -> Response[str]:
    details = [violation_of(e).as_detail() for e in caught.errors()]
    return error(422, "InvalidRequest", "; ".join(d["message"] for d in details[:3]), details)


def _idempotency_conflict(caught: Exception) -> Response[str]:
    message = (
        "this Idempotency-Key was used with another body"
        if isinstance(caught, IdempotencyValidationError)
        else "a request with this Idempotency-Key is still being processed"
    )
    return error(409, "IdempotencyConflict", message)


def _unexpected(_caught: Exception) -> Response[str]:
    # A last resort: every answer keeps the envelope, and the cause goes to the log only.
    logger.exception("unexpected error")
    return error(500, "InternalError", "the service failed; retry later")


def install(app: APIGatewayRestResolver) -> None:
    """The resolver's error hooks: every failure becomes one envelope."""
    app.exception_handler(QwenEditError)(_domain_error)
    app.exception_handler(RequestValidationError)(_invalid_body)
    app.exception_handler([IdempotencyValidationError, IdempotencyAlreadyInProgressError])(
        _idempotency_conflict
    )
    app.exception_handler(Exception)(_unexpected)

    @app.not_found
    def _no_route(_caught: Exception) -> Response[str]:
        event = app.current_event
        return error(404, "NotFound", f"no route {event.http_method} {event.path}")
