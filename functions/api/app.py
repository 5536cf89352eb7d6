"""The public REST API (SPEC §3) behind API Gateway, stage v1, API key required.

Routes parse, call qwen_edit.app.service, and shape the answer. Every error leaves through one
envelope, {"error": {"code", "message", "details"}}, with the status its class declares
(qwen_edit.domain.errors); API Gateway's own refusals use the same envelope (template.yaml).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, Server
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from pydantic import BaseModel, Field

from qwen_edit import runtime
from qwen_edit.app import service
from qwen_edit.domain.catalog import MAX_IMAGE_BYTES, MODELS, Capability
from qwen_edit.domain.errors import BadRequest, QwenEditError, Unauthorized
from qwen_edit.domain.images import MIME_TYPES
from qwen_edit.domain.jobs import JobSource, JobStatus, JobView
from qwen_edit.domain.requests import EditRequest, GenerationRequest, violation_of
from qwen_edit.entrypoints import request_body
from qwen_edit.entrypoints.lambda_handlers import logger

app = APIGatewayRestResolver(enable_validation=True)
IMAGE_TYPES = tuple(sorted({mime for mimes in MIME_TYPES.values() for mime in mimes}))
ImageType = Literal[IMAGE_TYPES]  # type: ignore[valid-type]


class UploadRequest(BaseModel):
    model_config = {"extra": "forbid"}

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


ERRORS = {
    status: {"description": description, "content": {"application/json": {"model": ErrorEnvelope}}}
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


ACCEPTED = {
    202: {
        "description": "accepted; Location names the job",
        "content": {"application/json": {"model": JobView}},
    },
    **ERRORS,
}


def _answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body),
        headers=headers,
    )


def _error(status: int, code: str, message: str, details: list | None = None) -> Response:
    return _answer(status, {"error": {"code": code, "message": message, "details": details or []}})


@app.exception_handler(QwenEditError)
def _domain_error(error: QwenEditError) -> Response:
    return _error(error.http_status, error.code, error.message, error.details)


@app.exception_handler(RequestValidationError)
def _invalid_body(error: RequestValidationError) -> Response:
    details = [violation_of(e).as_detail() for e in error.errors()]
    return _error(422, "InvalidRequest", "; ".join(d["message"] for d in details[:3]), details)


@app.exception_handler([IdempotencyValidationError, IdempotencyAlreadyInProgressError])
def _idempotency_conflict(error: Exception) -> Response:
    message = (
        "this Idempotency-Key was used with another body"
        if isinstance(error, IdempotencyValidationError)
        else "a request with this Idempotency-Key is still being processed"
    )
    return _error(409, "IdempotencyConflict", message)


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response:
    # A last resort: every answer keeps the envelope, and the cause goes to the log only.
    logger.exception("unexpected error")
    return _error(500, "InternalError", "the service failed; retry later")


@app.not_found
def _no_route(_exception: Exception) -> Response:
    return _error(
        404, "NotFound", f"no route {app.current_event.http_method} {app.current_event.path}"
    )


def _tenant() -> str:
    """The caller's API key id; an operator key acts for the upload-triggered jobs."""
    tenant = app.current_event.request_context.identity.api_key_id
    if not tenant:
        raise Unauthorized("send your API key in the x-api-key header")
    if tenant in runtime.context().settings.operator_api_key_ids:
        return service.UPLOAD_TENANT
    return tenant


# Same tenant and Idempotency-Key: the same job for 24 h; with another body: 409.
IDEMPOTENCY = IdempotencyConfig(
    event_key_jmespath="[tenant, key]",
    payload_validation_jmespath="[kind, body]",
    expires_after_seconds=24 * 3600,
)


@cache
def _idempotent_create():
    settings = runtime.context().settings

    @idempotent_function(
        data_keyword_argument="submission",
        config=IDEMPOTENCY,
        persistence_store=DynamoDBPersistenceLayer(settings.idempotency_table),
    )
    def create(submission: dict[str, Any]) -> dict[str, str]:
        return {"job_id": _create(submission).id}

    return create


def _create(submission: dict[str, Any]):
    ctx = runtime.context()
    capability = Capability(submission["kind"])
    valid = service.validate(ctx, capability, submission["body"], tenant=submission["tenant"])
    return service.accept(ctx, valid, tenant=submission["tenant"], source=JobSource.API)


def _submit(capability: Capability, idempotency_key: str | None) -> Response:
    ctx = runtime.context()
    submission = {
        "tenant": _tenant(),
        "key": idempotency_key,
        "kind": capability.value,
        "body": app.current_event.json_body,
    }
    if idempotency_key:
        job = ctx.jobs.get(_idempotent_create()(submission=submission)["job_id"])
    else:
        job = _create(submission)
    return _answer(202, service.view(ctx, job), {"Location": f"/v1/jobs/{job.id}"})


IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=255, description="same key and body: the same job"),
]


@app.post("/edits", summary="Create an edit job", responses=ACCEPTED)
def create_edit(request: Annotated[EditRequest, Body()], idempotency_key: IdempotencyKey = None):
    return _submit(Capability.EDIT, idempotency_key)


@app.post("/generations", summary="Create a text-to-image job", responses=ACCEPTED)
def create_generation(
    request: Annotated[GenerationRequest, Body()], idempotency_key: IdempotencyKey = None
):
    return _submit(Capability.TEXT_TO_IMAGE, idempotency_key)


@app.get(
    "/jobs/<job_id>",
    summary="Get a job",
    responses={
        200: {
            "description": "the job; outputs carry presigned download URLs",
            "content": {"application/json": {"model": JobView}},
        },
        **ERRORS,
    },
)
def get_job(job_id: str):
    ctx = runtime.context()
    return _answer(200, service.view(ctx, service.get_for_tenant(ctx, job_id, _tenant())))


@app.get(
    "/jobs",
    summary="List your jobs, newest first",
    responses={
        200: {"description": "a page of jobs", "content": {"application/json": {"model": JobPage}}},
        **ERRORS,
    },
)
def list_jobs(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    status: Annotated[JobStatus | None, Query()] = None,
):
    ctx = runtime.context()
    jobs, next_cursor = service.list_jobs(ctx, _tenant(), limit=limit, cursor=cursor, status=status)
    return _answer(
        200, {"jobs": [service.view(ctx, job) for job in jobs], "next_cursor": next_cursor}
    )


@app.post(
    "/jobs/<job_id>/cancel",
    summary="Cancel a job that has not finished",
    responses={
        200: {
            "description": "the canceled job",
            "content": {"application/json": {"model": JobView}},
        },
        **ERRORS,
    },
)
def cancel_job(job_id: str):
    ctx = runtime.context()
    return _answer(200, service.view(ctx, service.cancel(ctx, job_id, _tenant())))


@app.post(
    "/uploads",
    summary="A presigned PUT for one input image",
    responses={
        201: {
            "description": "PUT the bytes to upload_url with these headers, then pass image",
            "content": {"application/json": {"model": Upload}},
        },
        **ERRORS,
    },
)
def create_upload(request: Annotated[UploadRequest, Body()]):
    upload = service.new_upload(
        runtime.context(), _tenant(), request.content_type, request.content_length
    )
    return _answer(201, upload)


@app.get("/models", summary="The model catalog and each model's limits")
def list_models():
    return _answer(200, {"models": [model.describe() for model in MODELS.values()]})


@app.get("/openapi.json", summary="This API's OpenAPI document")
def openapi():
    return _answer(200, json.loads(openapi_document()))


def openapi_document() -> str:
    return app.get_openapi_json_schema(
        title="qwen-edit",
        version="1.0.0",
        servers=[Server(url="/v1")],
        description="Durable Qwen image editing and generation (see README.md).",
        security_schemes={"apiKey": APIKey(name="x-api-key", in_=APIKeyIn.header)},
        security=[{"apiKey": []}],
    )


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    IDEMPOTENCY.register_lambda_context(context)  # in-progress records expire with the call
    try:
        event = request_body.normalized_event(event)
    except BadRequest as error:
        return {
            "statusCode": error.http_status,
            "headers": {"Content-Type": "application/json"},
            "isBase64Encoded": False,
            "body": json.dumps(
                {
                    "error": {
                        "code": error.code,
                        "message": error.message,
                        "details": [{"field": "body", "rule": "json", "message": error.message}],
                    }
                }
            ),
        }
    return app.resolve(event, context)
