"""Routes of jobs: create (edits, generations), read, list, cancel."""

from __future__ import annotations

from contextvars import ContextVar
from functools import cache
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer

from qwen_edit import runtime
from qwen_edit.app import lifecycle, service
from qwen_edit.domain.catalog import Capability, get_model
from qwen_edit.domain.jobs import Job, JobSource, JobStatus, JobView, QueueRoom
from qwen_edit.domain.requests import EditRequest, GenerationRequest, parse_request
from qwen_edit.entrypoints.api import waiting
from qwen_edit.entrypoints.api.responses import answer, queue_headers
from qwen_edit.entrypoints.api.schemas import QUEUE_HEADERS, JobPage, Submission, answers
from qwen_edit.entrypoints.api.tenants import tenant_of
from qwen_edit.settings import ApiOnly

WAITED = "the job, final within the wait the request's Prefer header asked for"
router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves __init__ unannotated

# Same tenant and Idempotency-Key: the same job for 24 h; with another body: 409.
IDEMPOTENCY = IdempotencyConfig(
    event_key_jmespath="[tenant, key]",
    payload_validation_jmespath="[kind, body, retry_of]",
    expires_after_seconds=24 * 3600,
)
# The queue room of this request's keyed create, when it ran (a replay runs nothing).
_room_of_keyed: ContextVar[QueueRoom | None] = ContextVar("room_of_keyed", default=None)
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=255, description="same key and body: the same job"),
]


def _create(submission: Submission) -> tuple[Job, QueueRoom]:
    ctx = runtime.context("api")
    valid = service.validate(
        ctx, Capability(submission.kind), submission.body, tenant=submission.tenant
    )
    job, room = service.accept(
        ctx, valid, tenant=submission.tenant, source=JobSource.API, retry_of=submission.retry_of
    )
    if submission.retry_of:
        ctx.jobs.link_retry(submission.retry_of, job.id)
    return job, room


@cache
def _idempotent_create() -> Any:
    table = runtime.context("api").need(ApiOnly).idempotency_table

    @idempotent_function(  # type: ignore[untyped-decorator]  # Powertools' own typing
        data_keyword_argument="submission",
        config=IDEMPOTENCY,
        persistence_store=DynamoDBPersistenceLayer(table),
        output_serializer=PydanticSerializer(model=JobView),
    )
    def create(submission: Submission) -> JobView:
        job, room = _create(submission)
        _room_of_keyed.set(room)
        return JobView.model_validate(job.public())

    return create


def _submit(
    capability: Capability,
    body: GenerationRequest,
    idempotency_key: str | None,
    prefer: str | None,
    retry_of: str | None = None,
) -> Response[str]:
    ctx = runtime.context("api")
    submission = Submission(
        tenant=tenant_of(router.current_event),
        key=idempotency_key,
        kind=capability.value,
        body=body,
        retry_of=retry_of,
    )
    if idempotency_key:
        _room_of_keyed.set(None)
        job = ctx.jobs.get(_idempotent_create()(submission=submission).id)
        # A replay counted nothing: it counts now (one more Query), as the queue is now.
        room = _room_of_keyed.get() or service.queue_room(
            ctx, submission.tenant, get_model(job.model)
        )
    else:
        job, room = _create(submission)
    headers = {"Location": f"/v1/jobs/{job.id}", **queue_headers(room)}
    wait = waiting.preferred(prefer)
    if wait is None:
        return answer(202, lifecycle.view(ctx, job), headers)
    applied = waiting.applied(wait, router.lambda_context)
    job = service.wait_for_end(ctx, job, applied)
    headers["Preference-Applied"] = f"wait={applied}"
    return answer(200 if job.status.is_final else 202, lifecycle.view(ctx, job), headers)


CREATED = answers(
    202,
    "accepted; Location names the job",
    JobView,
    also=(402, 409, 422),
    headers=QUEUE_HEADERS,
    waits=WAITED,
)


@router.post(
    "/edits",
    operation_id="create_edit",
    summary="Create an edit job",
    responses=CREATED,
)
def create_edit(
    request: Annotated[EditRequest, Body()],
    idempotency_key: IdempotencyKey = None,
    prefer: waiting.Prefer = None,
) -> Response[str]:
    return _submit(Capability.EDIT, request, idempotency_key, prefer)


@router.post(
    "/generations",
    operation_id="create_generation",
    summary="Create a text-to-image job",
    responses=CREATED,
)
def create_generation(
    request: Annotated[GenerationRequest, Body()],
    idempotency_key: IdempotencyKey = None,
    prefer: waiting.Prefer = None,
) -> Response[str]:
    return _submit(Capability.TEXT_TO_IMAGE, request, idempotency_key, prefer)


@router.get(
    "/jobs/<job_id>",
    operation_id="get_job",
    summary="Get a job",
    responses=answers(
        200, "the job; outputs carry presigned download URLs", JobView, also=(404, 422)
    ),
)
def get_job(
    job_id: str,
    wait: Annotated[
        int,
        Query(
            ge=0,
            le=waiting.MAX_WAIT_SECONDS,
            description="answer as soon as the job is final, or after this many seconds",
        ),
    ] = 0,
) -> Response[str]:
    ctx = runtime.context("api")
    job = service.get_for_tenant(ctx, job_id, tenant_of(router.current_event))
    if wait:
        job = service.wait_for_end(ctx, job, waiting.applied(wait, router.lambda_context))
    return answer(200, lifecycle.view(ctx, service.place_in_line(ctx, job)))


@router.post(
    "/jobs/<job_id>/retry",
    operation_id="retry_job",
    summary="Create a new job from a failed or canceled job's request",
    responses=answers(
        202,
        "accepted; Location names the new job (retry_of names this one, whose retried_by names it)",
        JobView,
        also=(402, 404, 409, 422),
        headers=QUEUE_HEADERS,
        waits=WAITED,
    ),
)
def retry_job(
    job_id: str, idempotency_key: IdempotencyKey = None, prefer: waiting.Prefer = None
) -> Response[str]:
    ctx = runtime.context("api")
    old = service.get_for_tenant(ctx, job_id, tenant_of(router.current_event))
    capability = old.kind.capability
    default = service.default_model(ctx, capability)
    body = parse_request(capability, service.retry_request(ctx, old), default_model=default).body
    return _submit(capability, body, idempotency_key, prefer, retry_of=old.id)


@router.get(
    "/jobs",
    operation_id="list_jobs",
    summary="List your jobs, newest first",
    responses=answers(200, "a page of jobs", JobPage, also=(422,)),
)
def list_jobs(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None,
        Query(
            max_length=2048,
            description="next_cursor of the previous page, unchanged; any other value is 422",
        ),
    ] = None,
    status: Annotated[JobStatus | None, Query()] = None,
) -> Response[str]:
    ctx = runtime.context("api")
    jobs, next_cursor = service.list_jobs(
        ctx, tenant_of(router.current_event), limit=limit, cursor=cursor, status=status
    )
    return answer(
        200, {"jobs": [lifecycle.view(ctx, job) for job in jobs], "next_cursor": next_cursor}
    )


@router.post(
    "/jobs/<job_id>/cancel",
    operation_id="cancel_job",
    summary="Cancel a job that has not finished",
    responses=answers(200, "the canceled job", JobView, also=(404, 409)),
)
def cancel_job(job_id: str) -> Response[str]:
    ctx = runtime.context("api")
    return answer(
        200, lifecycle.view(ctx, service.cancel(ctx, job_id, tenant_of(router.current_event)))
    )
