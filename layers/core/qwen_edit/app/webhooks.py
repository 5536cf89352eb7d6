"""Signed webhooks (SPEC §6, Standard Webhooks v1) for jobs that carry a `webhook_url`.

The final event (job.succeeded, job.failed, job.canceled) is one delivery per job (webhook-id
`msg_<job id>`, stable across attempts); its body is fixed when the job ends. 2xx is delivered;
410 stops for good; anything else (3xx included: redirects are never followed), a timeout or a
refused connection is retried on SCHEDULE, with jitter, for about 27 hours. Every attempt is
recorded on the job; webhook trouble never changes the job's status. Targets must be https and
resolve only to public addresses, checked when the job is accepted and again before every
attempt.

Intermediate events (job.queued, job.running), for jobs whose `webhook_events` ask for them, are
best effort: webhook-id `msg_<job id>_<sequence>`, at most PROGRESS_SCHEDULE's attempts, not
recorded on the job (counted in WebhookProgress), never dead-lettered. Every body carries the
event's `sequence` (SEQUENCE): a job's status only moves forward and each status is announced
at most once, so sequences increase along a job's stream. The queue is SQS standard, so before
each attempt of an intermediate event the job store claims its sequence (claim_webhook_event):
an event older than one already sent, or than the final delivery's first attempt, is dropped.
Two deliveries in flight at once can still cross on the network: receivers drop any event whose
sequence is not above the last one they took.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict

from qwen_edit.context import Context
from qwen_edit.domain.addresses import all_loopback, first_hidden
from qwen_edit.domain.catalog import RuleViolation
from qwen_edit.domain.jobs import (
    DeliveryStatus,
    Job,
    JobStatus,
    Timestamp,
    WebhookAttempt,
    now_utc,
)
from qwen_edit.domain.urls import parse_web_url
from qwen_edit.settings import Loopback

logger = Logger(child=True)
# Seconds to wait after attempt 1, 2, …; close to the Standard Webhooks schedule.
SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)
PROGRESS_SCHEDULE = (5,)  # intermediate events: one retry, then they are dropped
JITTER = 0.2  # each wait is stretched or shrunk by up to 20%
EVENT_TYPES = {status: f"job.{status.value}" for status in JobStatus}
FINAL_SEQUENCE = 3
SEQUENCE = {
    JobStatus.QUEUED: 1,
    JobStatus.RUNNING: 2,
    **{status: FINAL_SEQUENCE for status in JobStatus if status.is_final},
}

Resolve = Callable[[str, int], list[str]]


class Delivery(BaseModel):
    """What the webhook queue carries between attempts: a job's event, or a notice to a
    tenant (no job: a budget threshold), which is retried like a final event and recorded in
    the metric, the log and the dead-letter queue only."""

    model_config = ConfigDict(defer_build=True)

    job_id: str | None
    webhook_id: str
    url: str
    body: str
    attempt: int = 1  # the number of the next attempt
    not_before: Timestamp | None = None
    sequence: int = FINAL_SEQUENCE  # below it: an intermediate event

    @property
    def final(self) -> bool:
        return self.sequence >= FINAL_SEQUENCE


class Outcome(StrEnum):
    DELIVERED = "delivered"
    STOP = "stop"
    RETRY = "retry"


def delivery_for(job: Job, view: dict[str, Any]) -> Delivery:
    """The event of the job's current status: links (presigned outputs, the job's API path),
    never bytes."""
    if job.webhook is None or job.webhook_url is None:
        raise ValueError(f"job {job.id} has no webhook")
    sequence = SEQUENCE[job.status]
    data = {**view, "links": {"job": f"/v1/jobs/{job.id}"}}
    envelope = {"type": EVENT_TYPES[job.status], "sequence": sequence, "data": data}
    return Delivery(
        job_id=job.id,
        webhook_id=job.webhook.id if job.status.is_final else f"{job.webhook.id}_{sequence}",
        url=job.webhook_url,
        body=json.dumps(envelope, separators=(",", ":")),
        sequence=sequence,
    )


def notice(webhook_id: str, url: str, event_type: str, data: dict[str, Any]) -> Delivery:
    """A tenant's notice, in the envelope of job events (type and data)."""
    body = json.dumps({"type": event_type, "data": data}, separators=(",", ":"))
    return Delivery(job_id=None, webhook_id=webhook_id, url=url, body=body)


def announce_progress(ctx: Context, job: Job) -> None:
    """Queue the job's queued or running event if its webhook asks for it. Best effort: a
    failure is logged, and never reaches the job or delays it."""
    if not job.announces(job.status):
        return
    try:
        ctx.webhook_outbox.send(delivery_for(job, job.public()), 0)
    except Exception:
        logger.warning(
            "webhook event not queued",
            extra={"job_id": job.id, "event": job.status.value},
            exc_info=True,
        )


def classify(status: int | None) -> Outcome:
    if status is not None and 200 <= status < 300:
        return Outcome.DELIVERED
    if status == 410:
        return Outcome.STOP
    return Outcome.RETRY


def next_wait(
    attempt: int, rng: random.Random | None = None, schedule: tuple[int, ...] | None = None
) -> float | None:
    """Seconds before attempt `attempt + 1` (on SCHEDULE unless told), or None when `attempt`
    was the last."""
    schedule = SCHEDULE if schedule is None else schedule
    if attempt > len(schedule):
        return None
    base = schedule[attempt - 1]
    return base * (rng or random).uniform(1 - JITTER, 1 + JITTER)


def retry_window() -> timedelta:
    """How long a failing delivery keeps being retried (before jitter)."""
    return timedelta(seconds=sum(SCHEDULE))


def check_target(url: str, resolve: Resolve, *, allow_loopback_http: bool = False) -> list[str]:
    """The public addresses `url` may be delivered to; ValueError saying why not otherwise."""
    target = parse_web_url(url)
    host = target.host
    addresses = resolve(host, target.port)
    if not addresses:
        raise ValueError(f"{host} does not resolve")
    if allow_loopback_http and all_loopback(addresses):
        return addresses  # the local stack only: receivers on this machine
    if target.scheme != "https":
        raise ValueError("webhook_url must be https")
    if problem := first_hidden(host, addresses):
        raise ValueError(problem)
    return addresses


def target_violation(url: str | None, resolve: Resolve, **options: Any) -> RuleViolation | None:
    if url is None:
        return None
    try:
        check_target(url, resolve, **options)
    except ValueError as error:
        return RuleViolation("webhook_url", "public-https", str(error))
    return None


def due(delivery: Delivery, now: datetime | None = None) -> float:
    """Seconds until the delivery's next attempt may run (0 when it may now)."""
    if delivery.not_before is None:
        return 0.0
    return max(0.0, (delivery.not_before - (now or now_utc())).total_seconds())


def deliver(ctx: Context, delivery: Delivery) -> DeliveryStatus:
    """Run the delivery's next attempt (or wait on), record it, and schedule what follows."""
    ctx.tracing.follow(delivery.job_id or delivery.webhook_id)  # not worth a read of the model
    wait = due(delivery)
    if wait > 1:  # a long wait is several queue hops (SQS delays at most 15 minutes)
        ctx.webhook_outbox.send(delivery, wait)
        return DeliveryStatus.PENDING
    job_id = delivery.job_id
    if (
        job_id
        and not delivery.final
        and not ctx.jobs.claim_webhook_event(job_id, delivery.sequence)
    ):
        return _progress_ended(ctx, delivery, DeliveryStatus.SKIPPED, "a later event went first")
    started = now_utc()
    try:
        addresses = check_target(
            delivery.url, ctx.resolve, allow_loopback_http=ctx.need(Loopback).allow_loopback_urls
        )
    except ValueError as refused:
        return _finish(
            ctx, delivery, WebhookAttempt(at=started, error=str(refused)), DeliveryStatus.FAILED
        )
    from standardwebhooks import Webhook  # the webhook function's alone: not every importer's

    signature = Webhook(ctx.webhook_secret()).sign(delivery.webhook_id, started, delivery.body)
    headers = {
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(int(started.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    status, error = ctx.webhook_sender.post(delivery.url, addresses, headers, delivery.body)
    attempt = WebhookAttempt(at=started, status=status, error=error)
    outcome = classify(status)
    if outcome is Outcome.DELIVERED:
        return _finish(ctx, delivery, attempt, DeliveryStatus.DELIVERED)
    if outcome is Outcome.STOP:
        return _finish(ctx, delivery, attempt, DeliveryStatus.STOPPED)
    retry_in = next_wait(delivery.attempt, schedule=None if delivery.final else PROGRESS_SCHEDULE)
    if retry_in is None:
        return _finish(ctx, delivery, attempt, DeliveryStatus.FAILED)
    if delivery.final and job_id:
        ctx.jobs.record_webhook(job_id, attempt, DeliveryStatus.PENDING)
    ctx.webhook_outbox.send(
        delivery.model_copy(
            update={
                "attempt": delivery.attempt + 1,
                "not_before": started + timedelta(seconds=retry_in),
            }
        ),
        retry_in,
    )
    return DeliveryStatus.PENDING


def _finish(
    ctx: Context, delivery: Delivery, attempt: WebhookAttempt, status: DeliveryStatus
) -> DeliveryStatus:
    if not delivery.final:
        return _progress_ended(ctx, delivery, status, attempt.error or f"HTTP {attempt.status}")
    if delivery.job_id:
        ctx.jobs.record_webhook(delivery.job_id, attempt, status)
    else:
        logger.info(
            "notice delivered" if status is DeliveryStatus.DELIVERED else "notice not delivered",
            extra={"webhook_id": delivery.webhook_id, "outcome": status.value},
        )
    ctx.metrics.count("WebhookDeliveries", Outcome=status.value)
    if status is DeliveryStatus.FAILED:
        ctx.webhook_outbox.dead_letter(delivery)  # visible: queue, alarm, job field, metric
    return status


def _progress_ended(
    ctx: Context, delivery: Delivery, status: DeliveryStatus, why: str
) -> DeliveryStatus:
    ctx.metrics.count("WebhookProgress", Outcome=status.value)
    logger.info(
        "webhook event ended",
        extra={"webhook_id": delivery.webhook_id, "outcome": status.value, "why": why},
    )
    return status
