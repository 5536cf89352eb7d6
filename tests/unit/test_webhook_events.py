"""webhook_events: which statuses a job's webhook announces; the intermediate ones (queued,
running) are best effort, in order by their sequence, and never touch the job or its final
delivery."""

from __future__ import annotations

import json
from typing import Any

import pytest
from standardwebhooks import Webhook

from qwen_edit.app import lifecycle, service, webhooks
from qwen_edit.app.webhooks import Delivery
from qwen_edit.context import Context
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.errors import InvalidRequest
from qwen_edit.domain.jobs import (
    DEFAULT_WEBHOOK_EVENTS,
    DeliveryStatus,
    Job,
    JobSource,
    JobStatus,
    now_utc,
)
from qwen_edit.domain.requests import parse_request

from .fakes import WEBHOOK_SECRET, Fakes, in_queue, png_data_url, present, run

HOOK = "https://hooks.example.com/qwen"
EDIT = {"prompt": "add a red scarf", "webhook_url": HOOK}


def accept(ctx: Context, **fields: Any) -> Job:
    payload = {**EDIT, "images": [png_data_url()], **fields}
    valid = service.validate(ctx, Capability.EDIT, payload, tenant="tenant-a")
    job, _room = service.accept(ctx, valid, tenant="tenant-a", source=JobSource.API)
    return job


def envelope(delivery: Delivery) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(delivery.body)
    return body


def sent(fakes: Fakes) -> list[Delivery]:
    return [delivery for delivery, _ in fakes.outbox.sent]


# ---- the request -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, field, rule",
    [
        ({"webhook_events": []}, "webhook_events", "too_short"),
        ({"webhook_events": ["running", "running"]}, "webhook_events", "unique"),
        ({"webhook_events": ["started"]}, "webhook_events[0]", "literal_error"),
        ({"webhook_events": "queued"}, "webhook_events", "list_type"),
        (
            {"webhook_url": None, "webhook_events": ["succeeded"]},
            "webhook_events",
            "requires-webhook_url",
        ),
    ],
)
def test_bad_webhook_events_are_refused_naming_the_field_and_rule(
    fields: dict[str, Any], field: str, rule: str
) -> None:
    body = {**EDIT, "images": ["s3://in/uploads/a.png"], **fields}
    with pytest.raises(InvalidRequest) as refused:
        parse_request(Capability.EDIT, body, default_model="qwen-image-edit-plus")
    assert [(d["field"], d["rule"]) for d in refused.value.details] == [(field, rule)]


def test_a_refused_request_costs_no_call_and_records_nothing(ctx: Context, fakes: Fakes) -> None:
    with pytest.raises(InvalidRequest):
        accept(ctx, webhook_events=["queued", "queued"])
    assert fakes.jobs.all() == [] and fakes.executions.started == {} and fakes.outbox.sent == []


def test_by_default_only_the_final_event_is_announced(ctx: Context, fakes: Fakes) -> None:
    job = accept(ctx)
    assert job.webhook_events == list(DEFAULT_WEBHOOK_EVENTS)
    assert "webhook_events" not in job.request and fakes.outbox.sent == []
    in_queue(fakes, job)
    run(ctx)
    assert fakes.jobs.get(job.id).status is JobStatus.RUNNING and fakes.outbox.sent == []


# ---- queued and running, as they are queued ----------------------------------------------------


def test_queued_and_running_are_queued_with_their_own_ids_and_rising_sequences(
    ctx: Context, fakes: Fakes
) -> None:
    job = accept(ctx, webhook_events=["queued", "running", "succeeded"])
    assert job.public()["webhook_events"] == ["queued", "running", "succeeded"]
    in_queue(fakes, job)
    run(ctx)
    done = fakes.jobs.transition(job.id, JobStatus.SUCCEEDED, now_utc())
    lifecycle.announce(ctx, done)
    stream = sent(fakes)
    assert [envelope(d)["type"] for d in stream] == ["job.queued", "job.running", "job.succeeded"]
    assert [envelope(d)["sequence"] for d in stream] == [1, 2, 3] == [d.sequence for d in stream]
    assert [d.webhook_id for d in stream] == [f"msg_{job.id}_1", f"msg_{job.id}_2", f"msg_{job.id}"]
    assert [d.final for d in stream] == [False, False, True]
    assert envelope(stream[1])["data"]["status"] == "running"
    assert envelope(stream[1])["data"]["links"] == {"job": f"/v1/jobs/{job.id}"}


def test_a_failing_queued_event_does_not_fail_the_accept(ctx: Context, fakes: Fakes) -> None:
    fakes.outbox.failure = RuntimeError("sqs is down")
    job = accept(ctx, webhook_events=["queued", "succeeded"])
    assert fakes.jobs.get(job.id).status is JobStatus.QUEUED and job.id in fakes.executions.started


def test_a_failing_running_event_does_not_fail_the_call(ctx: Context, fakes: Fakes) -> None:
    job = accept(ctx, webhook_events=["running", "failed"])
    fakes.outbox.failure = RuntimeError("sqs is down")
    in_queue(fakes, job)
    assert run(ctx) == "1 calls booked"
    assert fakes.provider.calls == 1 and f"token-{job.id}" in fakes.callbacks.succeeded
    assert fakes.jobs.get(job.id).status is JobStatus.RUNNING


def test_a_final_status_left_out_is_not_delivered_and_shows_skipped(
    ctx: Context, fakes: Fakes
) -> None:
    job = accept(ctx, webhook_events=["failed"])
    done = fakes.jobs.transition(job.id, JobStatus.CANCELED, now_utc())
    lifecycle.announce(ctx, done)
    assert fakes.outbox.sent == []
    assert present(fakes.jobs.get(job.id).webhook).status is DeliveryStatus.SKIPPED


# ---- their deliveries --------------------------------------------------------------------------


def progress(ctx: Context, fakes: Fakes, status: JobStatus = JobStatus.QUEUED) -> Delivery:
    job = accept(ctx, webhook_events=["queued", "running", "succeeded"])
    if status is JobStatus.RUNNING:
        job = fakes.jobs.transition(job.id, JobStatus.RUNNING, now_utc())
    return webhooks.delivery_for(job, job.public())


def test_an_intermediate_event_is_signed_and_leaves_the_final_record_alone(
    ctx: Context, fakes: Fakes
) -> None:
    delivery = progress(ctx, fakes)
    assert webhooks.deliver(ctx, delivery) is DeliveryStatus.DELIVERED
    [post] = fakes.sender.posts
    payload = Webhook(WEBHOOK_SECRET).verify(post.body, post.headers)
    assert (payload["type"], payload["sequence"]) == ("job.queued", 1)
    assert post.headers["webhook-id"] == f"msg_{delivery.job_id}_1"
    webhook = present(fakes.jobs.get(delivery.job_id).webhook)
    assert webhook.status is DeliveryStatus.PENDING and webhook.attempts == []
    assert fakes.metrics.named("WebhookProgress") == [(1, {"Outcome": "delivered"})]
    assert fakes.metrics.named("WebhookDeliveries") == []


def test_an_intermediate_event_is_tried_twice_at_most_and_never_dead_lettered(
    ctx: Context, fakes: Fakes
) -> None:
    delivery = progress(ctx, fakes)
    fakes.outbox.sent.clear()
    fakes.sender.script(503, 503)
    assert webhooks.deliver(ctx, delivery) is DeliveryStatus.PENDING
    [(retry, delay)] = fakes.outbox.sent
    assert delay <= webhooks.PROGRESS_SCHEDULE[0] * (1 + webhooks.JITTER)
    assert webhooks.deliver(ctx, retry.model_copy(update={"not_before": None})) is (
        DeliveryStatus.FAILED
    )
    assert len(fakes.outbox.sent) == 1 and fakes.outbox.dead == []
    assert present(fakes.jobs.get(delivery.job_id).webhook).attempts == []


def test_an_event_older_than_one_already_sent_is_dropped(ctx: Context, fakes: Fakes) -> None:
    queued_event = progress(ctx, fakes)
    job = fakes.jobs.transition(queued_event.job_id, JobStatus.RUNNING, now_utc())
    running_event = webhooks.delivery_for(job, job.public())
    assert webhooks.deliver(ctx, running_event) is DeliveryStatus.DELIVERED
    assert webhooks.deliver(ctx, queued_event) is DeliveryStatus.SKIPPED  # overtaken in SQS
    assert [json.loads(p.body)["sequence"] for p in fakes.sender.posts] == [2]
    assert fakes.metrics.named("WebhookProgress")[-1] == (1, {"Outcome": "skipped"})


def test_no_intermediate_event_goes_after_the_final_delivery_began(
    ctx: Context, fakes: Fakes
) -> None:
    running_event = progress(ctx, fakes, JobStatus.RUNNING)
    done = fakes.jobs.transition(running_event.job_id, JobStatus.SUCCEEDED, now_utc())
    fakes.sender.script(500)  # the final's first attempt fails: it is retried later
    assert webhooks.deliver(ctx, webhooks.delivery_for(done, done.public())) is (
        DeliveryStatus.PENDING
    )
    assert webhooks.deliver(ctx, running_event) is DeliveryStatus.SKIPPED
    assert len(fakes.sender.posts) == 1
