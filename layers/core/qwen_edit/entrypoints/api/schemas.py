"""The API's own request and response models (the job request models are the domain's), and the
error responses every operation documents. The OpenAPI document is generated from these."""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field

from qwen_edit.domain.catalog import MAX_IMAGE_BYTES
from qwen_edit.domain.images import MIME_TYPES
from qwen_edit.domain.jobs import JobView
from qwen_edit.domain.requests import GenerationRequest

IMAGE_TYPES = tuple(sorted({mime for mimes in MIME_TYPES.values() for mime in mimes}))
ImageType = Literal[IMAGE_TYPES]  # type: ignore[valid-type]  # built from the one MIME table


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    content_type: ImageType = Field(description="the image's MIME type")
    content_length: int | None = Field(
        None,
        ge=1,
        le=MAX_IMAGE_BYTES,
        description="the exact size in bytes; when given, S3 refuses any other size",
    )


class Upload(BaseModel):
    upload_url: str
    headers: dict[str, str]
    image: str = Field(description="pass this s3:// reference in `images`")
    expires_at: str


class JobPage(BaseModel):
    jobs: list[JobView]
    next_cursor: str | None


class ApiError(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] = []


class ErrorEnvelope(BaseModel):
    error: ApiError


class Submission(BaseModel):
    """One create request, as the idempotency record hashes it: same tenant and key, same job."""

    tenant: str
    key: str | None
    kind: str
    body: GenerationRequest


def error_envelope(
    code: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


def _documented(description: str, model: type[BaseModel]) -> OpenAPIResponse:
    return {"description": description, "content": {"application/json": {"model": model}}}


ERRORS: dict[int, OpenAPIResponse] = {
    status: _documented(description, ErrorEnvelope)
    for status, description in [
        (400, "the body is not JSON this API can read"),
        (401, "missing or unknown API key"),
        (404, "no such job for this API key"),
        (409, "conflict: finished job, or Idempotency-Key reuse"),
        (413, "body over the size limit"),
        (422, "a field breaks a rule; `details` names each"),
        (429, "throttled by the usage plan"),
    ]
}


def answers(status: int, description: str, model: type[BaseModel]) -> dict[int, OpenAPIResponse]:
    """The success answer of an operation, and the errors."""
    return {status: _documented(description, model), **ERRORS}
