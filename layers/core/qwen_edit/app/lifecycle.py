"""What happens to every job on its way, whichever function moves it: load it, note its
timeline, write its record, show it, end it past its start deadline, and announce its end (the
one place a final status goes out, where a capped tenant's reservation settles).

The workflow steps and the sweeper need only this, not the API's acceptance (app/service.py):
their cold starts do not load the request models (issue 24). The dispatcher uses it too, and
reads a job's request to make its call.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger

from qwen_edit.app import webhooks
from qwen_edit.context import Context
from qwen_edit.domain import keys
from qwen_edit.domain.budgets import cost
from qwen_edit.domain.catalog import get_model
from qwen_edit.domain.errors import DeadlineExceeded, JobConflict
from qwen_edit.domain.jobs import (
    DeliveryStatus,
    Job,
    JobError,
    JobEvent,
    JobInput,
    JobOutput,
    JobStatus,
    Step,
    event,
    now_utc,
)
from qwen_edit.domain.usage import JobUsage
from qwen_edit.settings import Buckets

logger = Logger(child=True)
OUTPUT_URL_SECONDS = 3600  # presigned result downloads in job views


def load_job(ctx: Context, job_id: str) -> Job:
    """The job a use case works on: the traces of what follows (in this thread) are about it."""
    job = ctx.jobs.get(job_id)
    ctx.tracing.follow(job.id, job.model)
    return job


def note(
    ctx: Context,
    job_id: str,
    happened: JobEvent | None,
    provider_status: str | None = None,
    **counts: int,
) -> None:
    """Add to the job's timeline and counters. A lost note costs a line of history, never the
    job: a failing write here is logged, not raised."""
    try:
        ctx.jobs.note(job_id, happened, provider_status, **counts)
    except Exception:
        logger.warning("timeline note lost", extra={"job_id": job_id}, exc_info=True)


def write_record(ctx: Context, job: Job) -> None:
    """The job as clients see it, beside its outputs (results/<id>/job.json or <stem>.json)."""
    ctx.objects.put(
        ctx.need(Buckets).output_bucket,
        job.output.record_key,
        json.dumps(job.public(), indent=2).encode(),
        "application/json",
    )


def view(ctx: Context, job: Job) -> dict[str, Any]:
    """The job as the API shows it: outputs (each step's too) carry presigned download URLs,
    and `inputs` the request's images with presigned URLs of the stored ones (so a console can
    show them)."""

    def presigned(outputs: list[JobOutput]) -> list[JobOutput]:
        return [
            output.model_copy(
                update={
                    "url": ctx.objects.presigned_get(
                        *keys.parse_s3_uri(output.s3_uri), OUTPUT_URL_SECONDS
                    )
                }
            )
            for output in outputs
        ]

    inputs = [
        JobInput(
            image=image,
            url=ctx.objects.presigned_get(*keys.parse_s3_uri(image), OUTPUT_URL_SECONDS)
            if image.startswith("s3://")
            else None,
        )
        for image in job.request.get("images", [])
        if isinstance(image, str)
    ]
    steps = [r.model_copy(update={"outputs": presigned(r.outputs)}) for r in job.step_results]
    update = {"outputs": presigned(job.outputs), "step_results": steps, "inputs": inputs or None}
    return job.model_copy(update=update).public()


def expire(ctx: Context, job: Job) -> None:
    """A job whose provider call had not started by its own deadline (start_by) ends canceled
    with DeadlineExceeded; no call was made. Its workflow writes its record (RecordFailure)
    and announces it (Notify)."""
    when = job.start_by.isoformat() if job.start_by else "its deadline"
    try:
        job = ctx.jobs.transition(
            job.id,
            JobStatus.CANCELED,
            now_utc(),
            completed_at=now_utc(),
            error=JobError(
                code=DeadlineExceeded.code,
                message=f"not started at the provider by {when}: canceled, no provider call",
            ),
        )
    except JobConflict:
        return  # final already (canceled by its client, or failed)
    note(ctx, job.id, event(Step.CANCELED, DeadlineExceeded.code))


def announce(ctx: Context, job: Job) -> None:
    """The one place final statuses are announced: an EventBridge event, and the job's webhook
    (if its webhook_events take this status: else its delivery is `skipped`); and the job's
    numbers. A capped tenant's reservation settles here, once, to what the job cost."""
    settle(ctx, job)
    ctx.events.publish(job)
    queued = job.announces(job.status)
    if queued:
        ctx.webhook_outbox.send(webhooks.delivery_for(job, view(ctx, job)), 0)
    elif job.webhook is not None:
        ctx.jobs.record_webhook(job.id, None, DeliveryStatus.SKIPPED)
    note(ctx, job.id, event(Step.NOTIFIED, "webhook queued" if queued else None))
    _measure(ctx, job)


def settle(ctx: Context, job: Job) -> None:
    """The final job's reservation becomes what the provider billed: its successful images
    (each finished step's, for a chain), at the prices it was reserved at."""
    hold = job.budget
    if hold is None or hold.settled_at is not None or not job.status.is_final:
        return
    billed = JobUsage.of(job.model_dump(mode="json")).images_by_model
    spent = cost({m: n for m, n in billed.items() if m in hold.prices}, hold.prices)
    if ctx.budgets.settle(job.id, job.tenant, hold.periods, hold.amount, spent):
        logger.info("budget settled", extra={"job_id": job.id, "spent": str(spent)})


def _measure(ctx: Context, job: Job) -> None:
    """JobsFinished by family, status and error class; end-to-end, queue and provider time."""
    family = get_model(job.model).family
    error_class = _error_class(job.error.code) if job.error else "none"
    ctx.metrics.count("JobsFinished", Family=family, Status=job.status.value, Error=error_class)
    ended = job.completed_at or job.updated_at
    ctx.metrics.seconds("EndToEndSeconds", (ended - job.created_at).total_seconds(), Family=family)
    # The call that decided the job; a multi-step job's calls and waits interleave, so only
    # its end-to-end time says how it went.
    if job.provider_call is not None and job.cursor is None:
        sent = job.provider_call.sent_at
        ctx.metrics.seconds("QueueSeconds", (sent - job.created_at).total_seconds(), Family=family)
        ctx.metrics.seconds("ProviderSeconds", (ended - sent).total_seconds(), Family=family)
    if job.polls:  # an async task: its average, p90… are the polls a job of the family takes
        ctx.metrics.count("PollsPerJob", job.polls, Family=family)


def _error_class(code: str) -> str:
    """A bounded name for an error code: the provider's family of codes (`Throttling` for
    `Throttling.RateQuota`), or ours; anything unexpected is `Other`."""
    head = code.split(".", 1)[0]
    return head if head.isalnum() and len(head) <= 40 else "Other"
