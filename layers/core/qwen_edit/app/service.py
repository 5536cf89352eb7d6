"""Job use cases shared by the API and the upload trigger: accept a request, cancel a job (and
the API's reads: list jobs, usage)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from qwen_edit.app import budgets, webhooks
from qwen_edit.app.key_pool import key_of_task
from qwen_edit.app.lifecycle import announce, load_job, note, write_record
from qwen_edit.context import Context
from qwen_edit.domain import dispatch, keys
from qwen_edit.domain.addresses import all_loopback, first_hidden
from qwen_edit.domain.budgets import BudgetHold
from qwen_edit.domain.catalog import (
    MAX_IMAGE_BYTES,
    Capability,
    ModelSpec,
    RuleViolation,
    get_model,
)
from qwen_edit.domain.errors import (
    InputsExpired,
    InvalidRequest,
    JobConflict,
    JobFailed,
    JobNotFound,
    QueueFull,
)
from qwen_edit.domain.image_headers import ImageRejected
from qwen_edit.domain.images import (
    EXTENSION_OF_FORMAT,
    MIME_TYPES,
    InlineImage,
    S3Image,
    UrlImage,
    check_image_bytes,
)
from qwen_edit.domain.jobs import (
    UPLOAD_TENANT,
    Cursor,
    Job,
    JobError,
    JobSource,
    JobStatus,
    Lane,
    OutputTarget,
    QueuePlace,
    QueueRoom,
    Step,
    event,
    new_job,
    now_utc,
)
from qwen_edit.domain.provider import ProviderError
from qwen_edit.domain.requests import (
    GenerationRequest,
    ValidRequest,
    parse_request,
    start_by,
)
from qwen_edit.domain.tenants import TenantSettings
from qwen_edit.domain.urls import parse_web_url
from qwen_edit.domain.usage import GroupBy, UsageReport, When, report, window
from qwen_edit.settings import Buckets, Jobs, Loopback, Pricing, Requests

logger = Logger(child=True)
UPLOAD_URL_SECONDS = 900  # presigned input uploads


def default_model(ctx: Context, capability: Capability) -> str:
    settings = ctx.need(Requests)
    return (
        settings.default_model
        if capability is Capability.EDIT
        else settings.default_generation_model
    )


def validate(
    ctx: Context,
    capability: Capability,
    payload: Mapping[str, Any] | GenerationRequest,
    *,
    tenant: str,
) -> ValidRequest:
    """parse_request, then what only storage and DNS can tell: every s3:// input is one this
    tenant may use, exists, and is a well-formed image of at most 10 MB; image URLs and the
    webhook_url do not point at private, loopback or metadata addresses."""
    valid = parse_request(
        capability,
        payload,
        default_model=default_model(ctx, capability),
        step_model=default_model(ctx, Capability.EDIT),
    )
    problems: list[RuleViolation] = []
    for index, ref in enumerate(valid.images):
        field = f"images[{index}]"
        if isinstance(ref, S3Image):
            problems += [
                RuleViolation(field, rule, f"{field}: {message}")
                for rule, message in [_stored_image_problem(ctx, tenant, ref)]
                if rule
            ]
        elif isinstance(ref, UrlImage) and (problem := _url_problem(ctx, ref.url)):
            problems.append(RuleViolation(field, "public-url", f"{field}: {problem}"))
    webhook = webhooks.target_violation(
        valid.body.webhook_url,
        ctx.resolve,
        allow_loopback_http=ctx.need(Loopback).allow_loopback_urls,
    )
    problems += [webhook] if webhook else []
    start_by = valid.body.start_by(now_utc())
    if valid.body.deadline is not None and start_by is not None and start_by <= now_utc():
        problems.append(RuleViolation("deadline", "future", "deadline has passed already"))
    if problems:
        raise InvalidRequest.of(problems)
    return valid


def _url_problem(ctx: Context, url: str) -> str | None:
    """Why the provider must not be sent to fetch `url`: a host that resolves to a private,
    loopback or metadata address (a paid call that can only fail, and an SSRF probe). A name
    that does not resolve here is left to the provider, which answers InvalidURL."""
    target = parse_web_url(url)  # parse_image_ref checked it already
    found = ctx.resolve(target.host, target.port)
    if ctx.need(Loopback).allow_loopback_urls and all_loopback(found):
        return None  # the local stack only: images served on this machine
    return first_hidden(target.host, found)


def may_read(ctx: Context, tenant: str, ref: S3Image) -> bool:
    """Whether `tenant` may name this object as an input (job ids are not secrets, so owning the
    key, not knowing it, is what counts). API tenants: their own POST /v1/uploads objects,
    their own jobs' inputs and results, and the input prefixes the operator shares.
    Upload-triggered jobs
    (the operator's bucket): the input bucket except what belongs to API tenants, and their
    own outbox/."""
    settings = ctx.need(Requests)
    try:
        keys.segments(ref.key)
    except keys.UnsafeKey:
        return False
    if ref.bucket == settings.input_bucket:
        if tenant == UPLOAD_TENANT:
            return not ref.key.startswith((keys.UPLOADS, keys.INPUTS))
        return (
            keys.is_tenant_upload(ref.key, tenant)
            or any(ref.key.startswith(prefix) for prefix in settings.shared_input_prefixes)
            or _owns_job(ctx, tenant, keys.job_id_in(keys.INPUTS, ref.key))  # a retry's
        )
    if ref.bucket == settings.output_bucket:
        if tenant == UPLOAD_TENANT:
            return ref.key.startswith(keys.OUTBOX)
        return _owns_job(ctx, tenant, keys.job_id_in(keys.RESULTS, ref.key))
    return False


def _owns_job(ctx: Context, tenant: str, job_id: str | None) -> bool:
    try:
        return job_id is not None and ctx.jobs.get(job_id).tenant == tenant
    except JobNotFound:
        return False


def _stored_image_problem(ctx: Context, tenant: str, ref: S3Image) -> tuple[str | None, str]:
    # One answer for "not yours" and "no such object", so nobody can probe which keys exist.
    hint = (
        "upload it to the input bucket first"
        if tenant == UPLOAD_TENANT
        else "upload it with POST /v1/uploads and pass the `image` it returns"
    )
    unavailable = ("not-available", f"{ref.uri} does not exist or is not yours to use: {hint}")
    if not may_read(ctx, tenant, ref):
        return unavailable
    found = ctx.objects.peek(ref.bucket, ref.key, MAX_IMAGE_BYTES + 1)
    if found is None:
        return unavailable
    size, data = found
    if size > MAX_IMAGE_BYTES:
        return "max-bytes", f"{ref.uri} is {size:,} bytes; the limit is {MAX_IMAGE_BYTES:,}"
    try:
        check_image_bytes(data)
    except ImageRejected as rejected:
        return rejected.rule, f"{ref.uri}: {rejected}"
    return None, ""


def accept(
    ctx: Context,
    valid: ValidRequest,
    *,
    tenant: str,
    source: JobSource,
    job_id: str | None = None,
    output: OutputTarget | None = None,
    retry_of: str | None = None,
    request_digest: str | None = None,
) -> tuple[Job, QueueRoom]:
    """Record a valid request as a queued job and start its workflow (execution name = job id),
    in the order that leaves no accepted job without a workflow. With the job, the tenant's room
    under its queue cap once it is in line (from the count admission makes anyway).

    Inline images are stored in the input bucket first, so only s3:// references enter the
    record and the workflow state. Starting twice with one id makes one execution.
    """
    settings = ctx.tenants.get(tenant)  # the operator's: caps, lane, queue cap
    room = _check_queue_room(ctx, tenant, valid.spec, settings)
    hold = budgets.reserve(ctx, tenant, settings, valid)
    lane = valid.body.lane or (settings.lane if settings else None)
    try:
        job = _new_job(
            ctx, valid, tenant, source, job_id, output, retry_of, lane, hold, request_digest
        )
        if source is JobSource.API:
            # Started, then recorded: an API function that dies in between leaves an execution
            # that finds no job and ends (its client got no 202: nothing was accepted), never a
            # queued job that no workflow runs. A failed start records nothing.
            ctx.executions.start(job.id, {"job_id": job.id})
        # An upload is recorded first: if its start fails or its function dies, S3's
        # redelivery finds the queued job and starts it (uploads.handle).
        ctx.jobs.create(job)
    except BaseException:
        # No job was recorded (a failed start, or a redelivery whose job exists): nothing to
        # keep reserved. A recorded job keeps its reservation until it settles.
        budgets.release(ctx, tenant, hold)
        raise
    webhooks.announce_progress(ctx, job)  # an upload's queued event goes before it can run
    if source is not JobSource.API:
        ctx.executions.start(job.id, {"job_id": job.id})
    ctx.metrics.count("JobsAccepted", Family=valid.spec.family, Source=source.value)
    return job, room


def _new_job(
    ctx: Context,
    valid: ValidRequest,
    tenant: str,
    source: JobSource,
    job_id: str | None,
    output: OutputTarget | None,
    retry_of: str | None,
    lane: str | None,
    hold: BudgetHold | None,
    digest: str | None,
) -> Job:
    """The queued job of a valid request; its inline images stored first."""
    job = new_job(
        tenant=tenant,
        capability=valid.capability,
        model=valid.spec.id,
        source=source,
        request={},
        deadline_seconds=ctx.need(Jobs).job_deadline_seconds,
        job_id=job_id,
        output=output,
        metadata=valid.body.metadata,
        correlation_id=valid.body.correlation_id,
        webhook_url=valid.body.webhook_url,
        webhook_events=[JobStatus(e) for e in valid.body.webhook_events or ()],
        lane=Lane(lane) if lane else None,
        start_by=valid.body.start_by(now_utc()),
        retry_of=retry_of,
    )
    ctx.tracing.follow(job.id, job.model)
    images = [_stored(ctx, job.id, index, ref) for index, ref in enumerate(valid.images)]
    request = valid.body.model_dump(
        exclude_none=True, exclude={"webhook_url", "webhook_events", "metadata", "correlation_id"}
    )
    if images:
        request["images"] = images
    chain = Cursor() if valid.body.then else None  # a multi-step job starts at its first call
    update = {"request": request, "cursor": chain, "budget": hold, "request_digest": digest}
    return job.model_copy(update=update)


def wait_for_end(ctx: Context, job: Job, seconds: float) -> Job:
    """The job once final, or as it is after `seconds`: a consistent read now and then (after
    0.25 s, then 0.5 s, then every second), never a busy loop."""
    waited, step = 0.0, 0.25
    while not job.status.is_final and waited < seconds:
        pause = min(step, seconds - waited)
        ctx.pause(pause)
        waited, step = waited + pause, min(step * 2, 1.0)
        job = ctx.jobs.get(job.id)
    return job


def retry_request(ctx: Context, job: Job) -> dict[str, Any]:
    """A failed or canceled job's request, to submit again (JobConflict for any other job;
    InputsExpired when the bucket's lifecycle removed a stored input). An absolute deadline
    that has passed is left out; cancel_after counts again from the retry."""
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELED):
        raise JobConflict(
            f"job {job.id} is {job.status.value}: only a failed or canceled job can be retried"
        )
    request = dict(job.request)
    if "deadline" in request and start_by(request["deadline"]) <= now_utc():
        del request["deadline"]
    for image in request.get("images", []):
        if image.startswith("s3://") and ctx.objects.peek(*keys.parse_s3_uri(image), 1) is None:
            raise InputsExpired(f"{image} is gone (stored inputs last 30 days): submit anew")
    extras: dict[str, Any] = {
        "webhook_url": job.webhook_url,
        "metadata": job.metadata,
        "correlation_id": job.correlation_id,
    }
    if job.webhook_url and job.webhook_events:
        extras["webhook_events"] = [status.value for status in job.webhook_events]
    return {**request, **{k: v for k, v in extras.items() if v is not None}}


def queue_room(ctx: Context, tenant: str, spec: ModelSpec, cap: int | None = None) -> QueueRoom:
    """The tenant's room under its queue cap. One consistent Query of the tenant's queue
    entries, paged: one read unit per 4 KB of entries (whole items count, whatever the
    projection), so a few units for a tenant with a hundred jobs waiting. The count is the
    queue's, so a job accepted in the last moment (its workflow not yet at Admit) is not in it
    yet."""
    cap = cap or queue_cap(ctx, ctx.tenants.get(tenant))
    interval = spec.rate_limit.per_seconds / spec.rate_limit.requests
    return QueueRoom(
        limit=cap,
        remaining=max(0, cap - ctx.queue.count(tenant)),
        reset_seconds=max(1, math.ceil(interval)),
    )


def queue_cap(ctx: Context, settings: TenantSettings | None) -> int:
    """MaxQueuedJobsPerTenant, or the operator's override for this tenant."""
    override = settings.max_queued_jobs if settings else None
    return override or ctx.need(Jobs).max_queued_jobs_per_tenant


def _check_queue_room(
    ctx: Context, tenant: str, spec: ModelSpec, settings: TenantSettings | None
) -> QueueRoom:
    """The room left once this job is in line; QueueFull when the tenant has its cap of jobs
    waiting."""
    room = queue_room(ctx, tenant, spec, queue_cap(ctx, settings))
    if room.remaining == 0:
        raise QueueFull(
            f"{room.limit} of your jobs are already waiting for the provider; send more once "
            "some have started",
            room,
        )
    return room.model_copy(update={"remaining": room.remaining - 1})


def _stored(ctx: Context, job_id: str, index: int, ref: Any) -> str:
    if isinstance(ref, InlineImage):
        key = keys.input_key(job_id, index, EXTENSION_OF_FORMAT[ref.format])
        bucket = ctx.need(Buckets).input_bucket
        ctx.objects.put(bucket, key, ref.data, ref.mime)
        return S3Image(bucket, key).uri
    return ref.uri if isinstance(ref, S3Image) else ref.url


def place_in_line(ctx: Context, job: Job) -> Job:
    """The job with `queue` (lane, position, estimated start) while it waits for its call."""
    if job.status is not JobStatus.QUEUED:
        return job
    spec = get_model(job.current_model)
    family = [e for e in ctx.queue.entries() if e.family == spec.family]
    ahead = next((i for i, e in enumerate(dispatch.line(family)) if e.job_id == job.id), None)
    if ahead is None:
        return job  # not queued yet, or being called
    now = time.time()
    interval = spec.rate_limit.per_seconds / spec.rate_limit.requests
    place = QueuePlace(
        lane=job.lane,
        position=ahead + 1,
        estimated_start_at=datetime.fromtimestamp(now + ahead * interval, UTC),
    )
    return job.model_copy(update={"queue": place})


def list_jobs(
    ctx: Context, tenant: str, *, limit: int, cursor: str | None, status: JobStatus | None
) -> tuple[list[Job], str | None]:
    return ctx.jobs.list_for_tenant(tenant, limit, cursor, status)


def usage(
    ctx: Context, tenant: str, *, start: When | None, end: When | None, group_by: GroupBy
) -> UsageReport:
    """The tenant's usage over [start, end) (domain/usage.py), from its own job records."""
    span = window(start, end, now_utc())
    jobs = ctx.jobs.created_in(tenant, span.start, span.end)
    prices = ctx.need(Pricing).model_prices
    found = report(jobs, span, group_by, prices)
    return found.model_copy(update={"budgets": budgets.statuses(ctx, tenant, prices.currency)})


def new_upload(
    ctx: Context, tenant: str, content_type: str, content_length: int | None
) -> dict[str, Any]:
    """A presigned PUT for one input image, in the tenant's own folder, and the s3:// reference
    to pass in `images` (only this tenant may use it)."""
    extension = EXTENSION_OF_FORMAT[
        next(fmt for fmt, mimes in MIME_TYPES.items() if content_type in mimes)
    ]
    key = keys.upload_key(tenant, extension)
    bucket = ctx.need(Buckets).input_bucket
    url = ctx.objects.presigned_put(bucket, key, content_type, content_length, UPLOAD_URL_SECONDS)
    expires = now_utc() + timedelta(seconds=UPLOAD_URL_SECONDS)
    return {
        "upload_url": url,
        "headers": {"Content-Type": content_type},
        "image": S3Image(bucket, key).uri,
        "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def get_for_tenant(ctx: Context, job_id: str, tenant: str) -> Job:
    """A job of this tenant; any other tenant's job does not exist for it (404, not 403)."""
    job = load_job(ctx, job_id)
    if job.tenant != tenant:
        raise JobNotFound(f"no job {job_id}")
    return job


def cancel(ctx: Context, job_id: str, tenant: str) -> Job:
    """Cancel an unfinished job: record it, stop its workflow, cancel a PENDING provider task.

    JobConflict once the job is final. A provider task past PENDING cannot be canceled; it runs
    out at the provider and its result is never stored.
    """
    get_for_tenant(ctx, job_id, tenant)
    job = ctx.jobs.transition(
        job_id,
        JobStatus.CANCELED,
        now_utc(),
        completed_at=now_utc(),
        error=JobError(code="Canceled", message="canceled by the client"),
    )
    note(ctx, job.id, event(Step.CANCELED))
    ctx.queue.remove(job.tenant, job.id)  # its place in line is free at once
    ctx.executions.stop(job.id, "canceled by the client")
    spec = get_model(job.current_model)
    if spec.max_concurrent_tasks is not None:
        ctx.limits.release_lease(spec.family, job.id)
    # Recorded and announced before the provider is asked (its answer can take seconds): a
    # function that dies waiting for it has left nothing of the cancel undone.
    write_record(ctx, job)
    announce(ctx, job)
    if job.provider and job.provider.task_id and spec.is_async:
        try:
            ctx.provider(spec.provider, key_of_task(job)).cancel(job.provider.task_id)
        except (ProviderError, JobFailed) as error:  # JobFailed: its key left the pool
            logger.info("provider task not canceled", extra={"job_id": job.id, "code": error.code})
    return job
