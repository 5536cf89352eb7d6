"""The API's own request and response models (the job request models are the domain's), and the
error responses every operation documents. The OpenAPI document is generated from these."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.types import (
    OpenAPIResponse,
    OpenAPIResponseHeader,
)
from pydantic import BaseModel, ConfigDict, Field

from qwen_edit.domain.catalog import MAX_IMAGE_BYTES, Capability, Endpoint, Provider, SizeRule
from qwen_edit.domain.images import MIME_TYPES
from qwen_edit.domain.jobs import JobView
from qwen_edit.domain.requests import GenerationRequest, WholeNumber

IMAGE_TYPES = tuple(sorted({mime for mimes in MIME_TYPES.values() for mime in mimes}))
ImageType = Literal[IMAGE_TYPES]  # type: ignore[valid-type]  # built from the one MIME table


class UploadRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", strict=True)

    content_type: ImageType = Field(description="the image's MIME type")
    content_length: Annotated[int, Field(ge=1, le=MAX_IMAGE_BYTES), WholeNumber] | None = Field(
        None,
        description="the exact size in bytes; when given, S3 refuses any other size",
    )


class Upload(BaseModel):
    model_config = ConfigDict(defer_build=True)
    upload_url: str
    headers: dict[str, str]
    image: str = Field(description="pass this s3:// reference in `images`")
    expires_at: str


class Bounds(BaseModel):
    model_config = ConfigDict(defer_build=True)
    min: int
    max: int


class SizeBounds(BaseModel):
    model_config = ConfigDict(defer_build=True)
    rule: SizeRule
    min_pixels: int | None = None
    max_pixels: int | None = None
    min_side: int | None = None
    max_side: int | None = None


class ModelDescription(BaseModel):
    """One model of the catalog and its limits (GET /v1/models)."""

    model_config = ConfigDict(defer_build=True)

    id: str
    family: str
    provider: Provider
    capabilities: list[Capability]
    endpoint: Endpoint
    is_async: bool = Field(alias="async")
    input_images: Bounds
    n: Bounds
    size: SizeBounds
    prompt_max_chars: int
    negative_prompt_max_chars: int
    seed: Bounds
    rate_limit: str = Field(description="calls per second or minute, per model family")
    max_concurrent_tasks: int | None


class ModelCatalog(BaseModel):
    model_config = ConfigDict(defer_build=True)
    models: list[ModelDescription]


class OpenApiDocument(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


class JobPage(BaseModel):
    model_config = ConfigDict(defer_build=True)
    jobs: list[JobView]
    next_cursor: str | None


class ApiError(BaseModel):
    model_config = ConfigDict(defer_build=True)
    code: str
    message: str
    details: list[dict[str, Any]] = []


class ErrorEnvelope(BaseModel):
    model_config = ConfigDict(defer_build=True)
    error: ApiError


class Submission(BaseModel):
    """One create request, as the idempotency record hashes it: same tenant and key, same job."""

    model_config = ConfigDict(defer_build=True)

    tenant: str
    key: str | None
    kind: str
    body: GenerationRequest
    retry_of: str | None = None  # POST /v1/jobs/{id}/retry: the job it retries


def error_envelope(
    code: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


def _documented(
    description: str,
    model: type[BaseModel],
    headers: dict[str, OpenAPIResponseHeader] | None = None,
) -> OpenAPIResponse:
    documented: OpenAPIResponse = {
        "description": description,
        "content": {"application/json": {"model": model}},
    }
    if headers:
        documented["headers"] = headers
    return documented


def _number(description: str) -> OpenAPIResponseHeader:
    return {
        "description": description,
        "required": True,  # type: ignore[typeddict-unknown-key]  # OpenAPI has it; Powertools' type lacks it
        "schema": {"type": "integer"},
    }


# Every 429 says when to come back, whichever limit it is (details[0].limit names it).
RETRY_AFTER = {
    "Retry-After": _number(
        "seconds to wait: the queue's estimate (queue), 1 (throttle), or 86400, a whole quota "
        "period, by when the daily quota has surely been reset (quota)"
    )
}
# The tenant's queue cap (MaxQueuedJobsPerTenant), as draft-ietf-httpapi-ratelimit-headers-06
# names the fields.
QUEUE_HEADERS = {
    "RateLimit-Limit": _number("jobs this API key may have waiting for the provider"),
    "RateLimit-Remaining": _number("how many more it may queue now, after this job"),
    "RateLimit-Reset": _number(
        "seconds until a waiting job should leave the queue (one call interval of the model's "
        "family), freeing a place"
    ),
}


PREFERENCE_APPLIED: dict[str, OpenAPIResponseHeader] = {
    "Preference-Applied": {
        "description": "wait=N: the seconds this answer waited for the job to end (RFC 7240), "
        "when the request asked to wait",
        "schema": {"type": "string", "pattern": "^wait=[0-9]+$"},
    }
}


ERROR_STATUSES = {
    400: "the request is not one this API can read (a body that is not JSON, for one)",
    401: "missing or unknown API key",
    402: "BudgetExceeded: the job's worst-case cost does not fit under your spend cap; each of "
    "`details` names a cap (`period`, `cap`, `spent`, `reserved`, `currency`, `resets_at`) and "
    "this job's `cost`",
    403: "this API key may not call this route",
    404: "no such job for this API key",
    409: "conflict: the job has finished, or the Idempotency-Key was used with another body",
    413: "the request is over API Gateway's 10 MB",
    422: "a field breaks a rule; `details` names each field and rule",
    429: "a limit was reached; details[0].limit names it, and Retry-After and "
    "details[0].retry_after_seconds say when to try again: `throttle` (Throttled, the usage "
    "plan's requests per second), `quota` (QuotaExceeded, the usage plan's requests per day) or "
    "`queue` (QueueFull, MaxQueuedJobsPerTenant jobs waiting for the provider)",
    500: "the service failed; retry later",
}
# What API Gateway itself may answer on any route (template.yaml's GatewayResponses).
GATEWAY_STATUSES = (400, 401, 403, 413, 429, 500)


def answers(
    status: int,
    description: str,
    model: type[BaseModel],
    *,
    also: tuple[int, ...] = (),
    headers: dict[str, OpenAPIResponseHeader] | None = None,
    waits: str | None = None,
) -> dict[int, OpenAPIResponse]:
    """An operation's success answer (with `headers`), API Gateway's refusals, and its own
    errors (`also`); `waits`: a 200 when the job ended within the wait the request asked for,
    and what the request answers otherwise."""
    errors = sorted({*GATEWAY_STATUSES, *also})
    waited = {**(headers or {}), **PREFERENCE_APPLIED} if waits is not None else None
    return {
        **({200: _documented(waits, model, waited)} if waits is not None else {}),
        status: _documented(description, model, waited or headers),
        **{
            code: _documented(
                ERROR_STATUSES[code], ErrorEnvelope, RETRY_AFTER if code == 429 else None
            )
            for code in errors
        },
    }
