"""intake.submit: one EventBridge event (Edit Requested, Generation Requested) of a mapped
source → one job; anything else is refused (unmapped source) or answered with Job Rejected."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from qwen_edit.app import intake
from qwen_edit.context import Context
from qwen_edit.domain.intake import RequestEvent, event_job_id
from qwen_edit.domain.jobs import JobSource, JobStatus, Lane
from qwen_edit.settings import ConfigurationError, EventIntake

from .fakes import Fakes, a_job, fake_context, in_queue, present, tiny_png

CATALOG, CMS = "com.example.catalog", "com.example.cms"
TENANTS = {CATALOG: "tenant-catalog", CMS: "tenant-cms"}
EDIT = {
    "prompt": "add a red scarf",
    "images": [f"data:image/png;base64,{base64.b64encode(tiny_png()).decode()}"],
    "correlation_id": "order-17",
}


@pytest.fixture
def wired() -> tuple[Context, Fakes]:
    return fake_context(event_sources=",".join(TENANTS), event_source_tenants=json.dumps(TENANTS))


def an_event(
    detail: Any = None,
    *,
    source: str = CATALOG,
    detail_type: str = "Edit Requested",
    event_id: str = "e-1",
) -> RequestEvent:
    return RequestEvent(
        id=event_id,
        source=source,
        detail_type=detail_type,
        detail=EDIT if detail is None else detail,
    )


def test_an_edit_requested_event_becomes_a_queued_job_of_the_sources_tenant(
    ctx: Context, fakes: Fakes
) -> None:
    job = present(intake.submit(ctx, an_event()))
    stored = fakes.jobs.get(job.id)
    assert stored.status is JobStatus.QUEUED and stored.source is JobSource.EVENT
    assert stored.tenant == "tenant-catalog" and stored.lane is Lane.INTERACTIVE
    assert stored.correlation_id == "order-17"
    assert stored.request["images"][0].startswith("s3://in/inputs/")  # stored, as the API does
    assert job.id == event_job_id("tenant-catalog", "e-1")
    assert list(fakes.executions.started) == [job.id]
    assert fakes.events.rejected == []
    [(_, dimensions)] = fakes.metrics.named("JobsAccepted")
    assert dimensions["Source"] == "event"


def test_a_generation_requested_event_keeps_the_lane_its_body_names(
    ctx: Context, fakes: Fakes
) -> None:
    detail = {"model": "qwen-image-plus", "prompt": "a lighthouse", "lane": "batch"}
    kind = "Generation Requested"
    job = present(intake.submit(ctx, an_event(detail, detail_type=kind)))
    assert job.kind.value == "generation" and job.lane is Lane.BATCH
    assert job.tenant == "tenant-catalog"
    assert present(intake.submit(ctx, an_event(detail, detail_type=kind, source=CMS))).tenant == (
        "tenant-cms"
    )


def test_an_event_of_an_unmapped_source_is_refused_without_a_job_or_an_event(
    ctx: Context, fakes: Fakes
) -> None:
    assert intake.submit(ctx, an_event(source="com.example.intruder")) is None
    assert fakes.jobs.all() == [] and fakes.executions.start_calls == []
    assert fakes.events.rejected == [] and fakes.events.published == []
    assert fakes.metrics.named("EventsRefused") == [(1, {"Reason": "unknown-source"})]


def test_an_invalid_detail_is_answered_with_job_rejected_naming_every_broken_rule(
    ctx: Context, fakes: Fakes
) -> None:
    detail = {**EDIT, "n": 99, "size": "1*1", "colour": "red", "idempotency_key": "with space"}
    assert intake.submit(ctx, an_event(detail, event_id="e-broken")) is None
    assert fakes.jobs.all() == [] and fakes.executions.start_calls == []
    [rejection] = fakes.events.rejected
    assert rejection.event.id == "e-broken" and rejection.event.source == CATALOG
    assert rejection.event.detail_type == "Edit Requested"
    assert rejection.correlation_id == "order-17" and rejection.idempotency_key is None
    assert rejection.error.code == "InvalidRequest" and rejection.error.retryable is False
    fields = {(d["field"], d["rule"]) for d in rejection.error.details}
    assert ("colour", "unknown-field") in fields and ("idempotency_key", "pattern") in fields
    assert all(set(d) == {"field", "rule", "message"} for d in rejection.error.details)
    assert fakes.metrics.named("JobsRejected") == [(1, {"Reason": "InvalidRequest"})]


def test_the_same_rules_as_the_api_give_the_same_details(ctx: Context, fakes: Fakes) -> None:
    from qwen_edit.app import service
    from qwen_edit.domain.catalog import Capability
    from qwen_edit.domain.errors import InvalidRequest

    detail = {"prompt": "   ", "images": ["ftp://x"], "n": 0}
    with pytest.raises(InvalidRequest) as api:
        service.validate(ctx, Capability.EDIT, detail, tenant="tenant-catalog")
    intake.submit(ctx, an_event(detail))
    assert present(fakes.events.rejected[0]).error.details == api.value.details


@pytest.mark.parametrize(
    ("detail", "detail_type", "field"),
    [
        (["not", "an", "object"], "Edit Requested", "detail"),
        ("text", "Generation Requested", "detail"),
        (EDIT, "Job Requested", "detail-type"),
    ],
)
def test_a_detail_that_is_no_request_is_rejected(
    ctx: Context, fakes: Fakes, detail: Any, detail_type: str, field: str
) -> None:
    assert intake.submit(ctx, an_event(detail, detail_type=detail_type)) is None
    [rejection] = fakes.events.rejected
    assert rejection.error.details[0]["field"] == field
    assert rejection.correlation_id == (detail.get("correlation_id") if detail is EDIT else None)
    assert fakes.jobs.all() == []


def test_a_malformed_correlation_id_is_a_broken_rule_and_is_not_echoed(
    ctx: Context, fakes: Fakes
) -> None:
    intake.submit(ctx, an_event({**EDIT, "correlation_id": "two words"}))
    [rejection] = fakes.events.rejected
    assert rejection.correlation_id is None
    assert [d["field"] for d in rejection.error.details] == ["correlation_id"]


def test_duplicate_deliveries_of_one_event_make_one_job(ctx: Context, fakes: Fakes) -> None:
    first = present(intake.submit(ctx, an_event()))
    again = present(intake.submit(ctx, an_event()))
    assert again.id == first.id and len(fakes.jobs.all()) == 1
    assert list(fakes.executions.started) == [first.id]
    assert fakes.events.rejected == []


def test_events_with_one_idempotency_key_make_one_job_per_tenant(
    ctx: Context, fakes: Fakes
) -> None:
    keyed = {**EDIT, "idempotency_key": "order-17-hero"}
    first = present(intake.submit(ctx, an_event(keyed, event_id="e-1")))
    second = present(intake.submit(ctx, an_event(keyed, event_id="e-2")))
    other = present(intake.submit(ctx, an_event(keyed, event_id="e-3", source=CMS)))
    assert first.id == second.id == event_job_id("tenant-catalog", "order-17-hero")
    assert other.id != first.id and len(fakes.jobs.all()) == 2
    assert "idempotency_key" not in fakes.jobs.get(first.id).request


def test_another_request_under_the_same_key_is_rejected_not_taken_for_the_first(
    ctx: Context, fakes: Fakes
) -> None:
    keyed = {**EDIT, "idempotency_key": "order-17-hero"}
    first = present(intake.submit(ctx, an_event(keyed, event_id="e-1")))
    reordered = dict(reversed(list(keyed.items())))  # the same request, its keys in another order
    assert present(intake.submit(ctx, an_event(reordered, event_id="e-2"))).id == first.id
    assert intake.submit(ctx, an_event({**keyed, "prompt": "other"}, event_id="e-3")) is None
    [rejection] = fakes.events.rejected
    assert rejection.error.code == "IdempotencyConflict" and rejection.event.id == "e-3"
    assert not rejection.error.retryable and len(fakes.jobs.all()) == 1


def test_a_redelivery_starts_the_job_an_earlier_delivery_recorded_but_did_not_start(
    ctx: Context, fakes: Fakes
) -> None:
    fakes.executions.failure = RuntimeError("Step Functions is down")
    with pytest.raises(RuntimeError):  # transient: raised, so SQS delivers the event again
        intake.submit(ctx, an_event())
    [recorded] = fakes.jobs.all()
    assert recorded.status is JobStatus.QUEUED and fakes.executions.started == {}
    fakes.executions.failure = None
    assert present(intake.submit(ctx, an_event())).id == recorded.id
    assert list(fakes.executions.started) == [recorded.id] and len(fakes.jobs.all()) == 1


def test_a_rejection_that_cannot_be_published_raises_to_be_retried(
    ctx: Context, fakes: Fakes
) -> None:
    fakes.events.failure = RuntimeError("EventBridge refused the event")
    with pytest.raises(RuntimeError):
        intake.submit(ctx, an_event({"prompt": ""}))
    assert fakes.metrics.named("JobsRejected") == []


def test_a_full_queue_is_a_rejection_with_its_limit_not_a_retry() -> None:
    ctx, fakes = fake_context(
        event_sources=CATALOG,
        event_source_tenants=json.dumps({CATALOG: "tenant-catalog"}),
        max_queued_jobs_per_tenant=1,
    )
    waiting = a_job("tenant-catalog")
    fakes.jobs.create(waiting)
    in_queue(fakes, waiting)
    assert intake.submit(ctx, an_event()) is None
    [rejection] = fakes.events.rejected
    assert rejection.error.code == "QueueFull" and rejection.error.retryable is True
    assert rejection.error.details[0]["limit"] == "queue"
    assert rejection.correlation_id == "order-17"
    assert fakes.metrics.named("JobsRejected") == [(1, {"Reason": "QueueFull"})]
    assert len(fakes.jobs.all()) == 1  # only the one that waits


def test_sources_and_their_tenants_must_agree() -> None:
    EventIntake.from_env({"EVENT_SOURCES": "a.b", "EVENT_SOURCE_TENANTS": '{"a.b": "t"}'})
    EventIntake.from_env({})  # nothing submits by event
    for environ in (
        {"EVENT_SOURCES": "a.b,c.d", "EVENT_SOURCE_TENANTS": '{"a.b": "t"}'},
        {"EVENT_SOURCE_TENANTS": '{"a.b": "t"}'},
        {"EVENT_SOURCES": "a.b", "EVENT_SOURCE_TENANTS": '{"a.b": ""}'},
        # " c.d" in the rule's pattern, "c.d" for the code: it could never match.
        {"EVENT_SOURCES": "a.b, c.d", "EVENT_SOURCE_TENANTS": '{"a.b": "t", "c.d": "u"}'},
        # The uploads' tenant may read most of the input bucket: no event acts as it.
        {"EVENT_SOURCES": "a.b", "EVENT_SOURCE_TENANTS": '{"a.b": "s3-uploads"}'},
    ):
        with pytest.raises(ConfigurationError, match="EventIntake"):
            EventIntake.from_env(environ)
