"""webhooks.deliver: one attempt of a job's signed webhook, recorded, and what follows it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from standardwebhooks import Webhook

from qwen_edit.app import lifecycle, webhooks
from qwen_edit.app.webhooks import Delivery
from qwen_edit.context import Context
from qwen_edit.domain.jobs import DeliveryStatus, JobStatus, WebhookState, now_utc

from .fakes import WEBHOOK_SECRET, Fakes, a_job, present

HOOK = "https://hooks.example.com/qwen"


def finished_with_hook(ctx: Context, fakes: Fakes) -> Delivery:
    """A succeeded job with a webhook, and its first delivery as Notify queues it."""
    job = a_job(webhook_url=HOOK)
    fakes.jobs.create(job)
    fakes.jobs.transition(job.id, JobStatus.RUNNING, now_utc())
    done = fakes.jobs.transition(job.id, JobStatus.SUCCEEDED, now_utc())
    return webhooks.delivery_for(done, lifecycle.view(ctx, done))


def webhook_state(fakes: Fakes, delivery: Delivery) -> WebhookState:
    return present(fakes.jobs.get(delivery.job_id).webhook)


def test_a_2xx_answer_is_delivered_and_recorded(ctx: Context, fakes: Fakes) -> None:
    delivery = finished_with_hook(ctx, fakes)
    fakes.sender.script(204)
    assert webhooks.deliver(ctx, delivery) is DeliveryStatus.DELIVERED
    state = webhook_state(fakes, delivery)
    assert state.status is DeliveryStatus.DELIVERED and [a.status for a in state.attempts] == [204]
    assert fakes.outbox.sent == [] and fakes.outbox.dead == []
    assert fakes.metrics.named("WebhookDeliveries") == [(1, {"Outcome": "delivered"})]


def test_the_post_is_signed_and_verifies_with_the_secret(ctx: Context, fakes: Fakes) -> None:
    delivery = finished_with_hook(ctx, fakes)
    webhooks.deliver(ctx, delivery)
    [post] = fakes.sender.posts
    assert post.url == HOOK and post.addresses == ["93.184.216.34"]
    payload = Webhook(WEBHOOK_SECRET).verify(post.body, post.headers)
    assert post.headers["webhook-id"] == f"msg_{delivery.job_id}"
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["links"] == {"job": f"/v1/jobs/{delivery.job_id}"}


def test_410_stops_for_good(ctx: Context, fakes: Fakes) -> None:
    delivery = finished_with_hook(ctx, fakes)
    fakes.sender.script(410)
    assert webhooks.deliver(ctx, delivery) is DeliveryStatus.STOPPED
    assert webhook_state(fakes, delivery).status is DeliveryStatus.STOPPED
    assert fakes.outbox.sent == [] and fakes.outbox.dead == []


@pytest.mark.parametrize("answer", [500, 302, None])
def test_a_failed_attempt_schedules_the_next_with_the_schedules_delay(
    ctx: Context, fakes: Fakes, answer: int | None
) -> None:
    delivery = finished_with_hook(ctx, fakes)
    fakes.sender.script(answer)
    assert webhooks.deliver(ctx, delivery) is DeliveryStatus.PENDING
    [(following, delay)] = fakes.outbox.sent
    first_wait = webhooks.SCHEDULE[0]
    assert first_wait * (1 - webhooks.JITTER) <= delay <= first_wait * (1 + webhooks.JITTER)
    assert following.attempt == 2 and following.webhook_id == delivery.webhook_id
    assert following.not_before is not None and following.body == delivery.body
    state = webhook_state(fakes, delivery)
    assert state.status is DeliveryStatus.PENDING and [a.status for a in state.attempts] == [answer]


def test_the_last_attempt_dead_letters(ctx: Context, fakes: Fakes) -> None:
    last = finished_with_hook(ctx, fakes).model_copy(update={"attempt": len(webhooks.SCHEDULE) + 1})
    fakes.sender.script(500)
    assert webhooks.deliver(ctx, last) is DeliveryStatus.FAILED
    assert fakes.outbox.dead == [last] and fakes.outbox.sent == []
    assert webhook_state(fakes, last).status is DeliveryStatus.FAILED
    assert fakes.metrics.named("WebhookDeliveries") == [(1, {"Outcome": "failed"})]


def test_a_target_resolving_to_a_private_address_fails_without_sending(
    ctx: Context, fakes: Fakes
) -> None:
    delivery = finished_with_hook(ctx, fakes)
    fakes.resolve.hosts["hooks.example.com"] = ["169.254.169.254"]
    assert webhooks.deliver(ctx, delivery) is DeliveryStatus.FAILED
    assert fakes.sender.posts == [] and fakes.outbox.dead == [delivery]
    [attempt] = webhook_state(fakes, delivery).attempts
    assert attempt.status is None and "169.254.169.254" in present(attempt.error)
    assert fakes.jobs.get(delivery.job_id).status is JobStatus.SUCCEEDED  # the job stays


def test_a_delivery_that_is_not_due_waits_on_without_sending(ctx: Context, fakes: Fakes) -> None:
    delivery = finished_with_hook(ctx, fakes).model_copy(
        update={"attempt": 3, "not_before": now_utc() + timedelta(minutes=20)}
    )
    assert webhooks.deliver(ctx, delivery) is DeliveryStatus.PENDING
    [(same, delay)] = fakes.outbox.sent
    assert same == delivery and 1190 < delay <= 1200
    assert fakes.sender.posts == [] and webhook_state(fakes, delivery).attempts == []


def test_a_tenants_notice_is_signed_retried_and_touches_no_job(ctx: Context, fakes: Fakes) -> None:
    notice = webhooks.notice("msg_budget_t_month-2026-11_80", HOOK, "budget.threshold_reached", {})
    fakes.sender.script(503)
    assert webhooks.deliver(ctx, notice) is DeliveryStatus.PENDING  # retried like a final event
    [(retry, _delay)] = fakes.outbox.sent
    assert retry.attempt == 2 and retry.job_id is None
    fakes.sender.script(204)
    assert webhooks.deliver(ctx, retry.model_copy(update={"not_before": None})) is (
        DeliveryStatus.DELIVERED
    )
    payload = Webhook(WEBHOOK_SECRET).verify(
        fakes.sender.posts[-1].body, fakes.sender.posts[-1].headers
    )
    assert payload == {"type": "budget.threshold_reached", "data": {}}
    assert fakes.metrics.named("WebhookDeliveries") == [(1, {"Outcome": "delivered"})]
