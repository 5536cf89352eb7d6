"""Job use cases shared by the API and the upload trigger: accept a request, cancel a job."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from aws_lambda_powertools import Logger

from qwen_edit import webhooks
from qwen_edit.catalog import MAX_IMAGE_BYTES, Capability, RuleViolation, get_model
from qwen_edit.context import Context
from qwen_edit.errors import InvalidRequest, JobNotFound
from qwen_edit.images import EXTENSION_OF_FORMAT, MIME_TYPES, InlineImage, S3Image, sniff_format
from qwen_edit.jobs import Job, JobError, JobSource, JobStatus, OutputTarget, new_job, now_utc
from qwen_edit.providers.base import ProviderError
from qwen_edit.requests import ValidRequest, parse_request

logger = Logger(child=True)
OUTPUT_URL_SECONDS = 3600  # presigned result downloads in job views
UPLOAD_URL_SECONDS = 900  # presigned input uploads


def default_model(ctx: Context, capability: Capability) -> str:
    settings = ctx.settings
    return settings.default_model if capability is Capability.EDIT \
        else settings.default_generation_model


def validate(ctx: Context, capability: Capability, payload: Mapping[str, Any]) -> ValidRequest:
    """parse_request, then what only storage and DNS can tell: every s3:// input exists, is at
    most 10 MB and really is an image; a webhook_url reaches public addresses only."""
    buckets = [b for b in (ctx.settings.input_bucket, ctx.settings.output_bucket) if b]
    valid = parse_request(capability, payload, default_model=default_model(ctx, capability),
                          allowed_buckets=buckets)
    problems = [RuleViolation(f"images[{index}]", rule, message)
                for index, ref in enumerate(valid.images) if isinstance(ref, S3Image)
                for rule, message in [_stored_image_problem(ctx, ref)] if rule]
    webhook = webhooks.target_violation(valid.body.webhook_url, ctx.resolve,
                                        allow_loopback_http=ctx.settings.webhook_allow_loopback)
    problems += [webhook] if webhook else []
    if problems:
        raise InvalidRequest(problems[0].message, [p.as_detail() for p in problems])
    return valid


def _stored_image_problem(ctx: Context, ref: S3Image) -> tuple[str | None, str]:
    found = ctx.objects.peek(ref.bucket, ref.key, 16)
    if found is None:
        return "exists", f"{ref.uri} does not exist (upload it first)"
    size, head = found
    if size > MAX_IMAGE_BYTES:
        return "max-bytes", f"{ref.uri} is {size:,} bytes; the limit is {MAX_IMAGE_BYTES:,}"
    if sniff_format(head) is None:
        return "format", f"{ref.uri} is not a JPG, PNG, BMP, TIFF, WEBP or GIF image"
    return None, ""


def accept(ctx: Context, valid: ValidRequest, *, tenant: str, source: JobSource,
           job_id: str | None = None, output: OutputTarget | None = None) -> Job:
    """Record a valid request as a queued job and start its workflow (execution name = job id).

    Inline images are stored in the input bucket first, so only s3:// references enter the
    record and the workflow state. Starting twice with one id makes one execution.
    """
    job = new_job(tenant=tenant, capability=valid.capability, model=valid.spec.id,
                  source=source, request={}, deadline_seconds=ctx.settings.job_deadline_seconds,
                  job_id=job_id, output=output, metadata=valid.body.metadata,
                  webhook_url=valid.body.webhook_url)
    images = [_stored(ctx, job.id, index, ref) for index, ref in enumerate(valid.images)]
    request = valid.body.model_dump(exclude_none=True, exclude={"webhook_url", "metadata"})
    if images:
        request["images"] = images
    job = job.model_copy(update={"request": request})
    ctx.jobs.create(job)
    try:
        ctx.executions.start(job.id, {"job_id": job.id})
    except Exception as error:
        # Never leave an accepted job queued with nothing to run it.
        ctx.jobs.transition(job.id, JobStatus.FAILED, now_utc(), completed_at=now_utc(),
                            error=JobError(code="WorkflowStartFailed", message=str(error)))
        raise
    return job


def _stored(ctx: Context, job_id: str, index: int, ref: Any) -> str:
    if isinstance(ref, InlineImage):
        key = f"inputs/{job_id}/{index}.{EXTENSION_OF_FORMAT[ref.format]}"
        ctx.objects.put(ctx.settings.input_bucket, key, ref.data, ref.mime)
        return S3Image(ctx.settings.input_bucket, key).uri
    return ref.uri if isinstance(ref, S3Image) else ref.url


def view(ctx: Context, job: Job) -> dict[str, Any]:
    """The job as the API shows it: outputs carry presigned download URLs."""
    outputs = [output.model_copy(update={"url": ctx.objects.presigned_get(
        *output.s3_uri.removeprefix("s3://").split("/", 1), OUTPUT_URL_SECONDS)})
        for output in job.outputs]
    return job.model_copy(update={"outputs": outputs}).public()


def list_jobs(ctx: Context, tenant: str, *, limit: int, cursor: str | None,
              status: JobStatus | None) -> tuple[list[Job], str | None]:
    return ctx.jobs.list_for_tenant(tenant, limit, cursor, status)


def new_upload(ctx: Context, content_type: str, content_length: int | None) -> dict[str, Any]:
    """A presigned PUT for one input image and the s3:// reference to pass in `images`."""
    extension = EXTENSION_OF_FORMAT[next(fmt for fmt, mimes in MIME_TYPES.items()
                                         if content_type in mimes)]
    key = f"uploads/{uuid.uuid4().hex}.{extension}"
    bucket = ctx.settings.input_bucket
    url = ctx.objects.presigned_put(bucket, key, content_type, content_length,
                                    UPLOAD_URL_SECONDS)
    expires = now_utc() + timedelta(seconds=UPLOAD_URL_SECONDS)
    return {"upload_url": url, "headers": {"Content-Type": content_type},
            "image": S3Image(bucket, key).uri,
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}


def get_for_tenant(ctx: Context, job_id: str, tenant: str) -> Job:
    """A job of this tenant; any other tenant's job does not exist for it (404, not 403)."""
    job = ctx.jobs.get(job_id)
    if job.tenant != tenant:
        raise JobNotFound(f"no job {job_id}")
    return job


def cancel(ctx: Context, job_id: str, tenant: str) -> Job:
    """Cancel an unfinished job: record it, stop its workflow, cancel a PENDING provider task.

    JobConflict once the job is final. A provider task past PENDING cannot be canceled; it runs
    out at the provider and its result is never stored.
    """
    get_for_tenant(ctx, job_id, tenant)
    job = ctx.jobs.transition(job_id, JobStatus.CANCELED, now_utc(), completed_at=now_utc(),
                              error=JobError(code="Canceled", message="canceled by the client"))
    ctx.executions.stop(job.id, "canceled by the client")
    spec = get_model(job.model)
    if job.provider and job.provider.task_id and spec.is_async:
        try:
            ctx.provider(spec.provider).cancel(job.provider.task_id)
        except ProviderError as error:
            logger.info("provider task not canceled", extra={"job_id": job.id,
                                                              "code": error.code})
    if spec.max_concurrent_tasks is not None:
        ctx.limits.release_lease(spec.family, job.id)
    write_record(ctx, job)
    announce(ctx, job)
    return job


def announce(ctx: Context, job: Job) -> None:
    """The one place final statuses are announced: an EventBridge event, and the job's webhook."""
    ctx.events.publish(job)
    if job.webhook_url:
        ctx.webhook_outbox.send(webhooks.delivery_for(job, view(ctx, job)), 0)


def write_record(ctx: Context, job: Job) -> None:
    """The job as clients see it, beside its outputs (results/<id>/job.json or <stem>.json)."""
    ctx.objects.put(ctx.settings.output_bucket, job.output.record_key,
                    json.dumps(job.public(), indent=2).encode(), "application/json")
