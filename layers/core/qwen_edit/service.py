"""Job use cases shared by the API and the upload trigger: accept a request, cancel a job."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger

from qwen_edit.catalog import Capability, get_model
from qwen_edit.context import Context
from qwen_edit.errors import JobNotFound
from qwen_edit.images import EXTENSION_OF_FORMAT, InlineImage, S3Image
from qwen_edit.jobs import Job, JobError, JobSource, JobStatus, OutputTarget, new_job, now_utc
from qwen_edit.providers.base import ProviderError
from qwen_edit.requests import ValidRequest, parse_request

logger = Logger(child=True)


def default_model(ctx: Context, capability: Capability) -> str:
    settings = ctx.settings
    return settings.default_model if capability is Capability.EDIT \
        else settings.default_generation_model


def validate(ctx: Context, capability: Capability, payload: Mapping[str, Any]) -> ValidRequest:
    buckets = [b for b in (ctx.settings.input_bucket, ctx.settings.output_bucket) if b]
    return parse_request(capability, payload, default_model=default_model(ctx, capability),
                         allowed_buckets=buckets)


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
    ctx.announcer.announce(job)
    return job


def write_record(ctx: Context, job: Job) -> None:
    """The job as clients see it, beside its outputs (results/<id>/job.json or <stem>.json)."""
    ctx.objects.put(ctx.settings.output_bucket, job.output.record_key,
                    json.dumps(job.public(), indent=2).encode(), "application/json")
