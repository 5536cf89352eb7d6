"""Usage (GET /v1/usage): the range rules, the arithmetic per group and in total, the prices
and where they come from, the bound on how many jobs one answer reads, and tenant scoping."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from qwen_edit.app import service
from qwen_edit.domain import usage
from qwen_edit.domain.errors import InvalidRequest
from qwen_edit.domain.jobs import Job, JobError, JobOutput, JobStatus
from qwen_edit.domain.pricing import NO_PRICES_SOURCE, OPERATOR_SOURCE, Prices
from qwen_edit.domain.provider import Usage
from qwen_edit.domain.usage import GroupBy, JobUsage, Window

from .fakes import a_job, fake_context

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
DAY1 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
DAY2 = datetime(2026, 11, 21, 23, 59, tzinfo=UTC)
SPAN = Window(start=DAY1 - timedelta(days=1), end=NOW)
PRICES = Prices.model_validate(
    {"currency": "USD", "per_image": {"qwen-image-edit-plus": 0.03, "qwen-image-plus": 0.02}}
)


def job(
    status: JobStatus,
    *,
    at: datetime = DAY1,
    model: str = "qwen-image-edit-plus",
    images: int = 0,
    calls: int = 1,
    tenant: str = "tenant-a",
) -> Job:
    fields: dict[str, Any] = {"status": status, "provider_calls": calls}
    if images:
        fields["usage"] = Usage(image_count=images)
        fields["outputs"] = [JobOutput(s3_uri=f"s3://out/r/{i}.png") for i in range(images)]
    return a_job(tenant, model=model, created_at=at).model_copy(update=fields)


def counted(*jobs: Job) -> list[JobUsage]:
    """What the store hands usage: the few fields it reads of each record."""
    return [JobUsage.of(job.model_dump(mode="json")) for job in jobs]


# ---- the range -----------------------------------------------------------------------------


def test_the_range_defaults_to_the_seven_days_before_now() -> None:
    assert usage.window(None, None, NOW) == Window(start=NOW - timedelta(days=7), end=NOW)
    to = datetime(2026, 11, 10, tzinfo=UTC)
    assert usage.window(None, to, NOW).start == datetime(2026, 11, 3, tzinfo=UTC)


def test_a_date_is_midnight_utc_and_a_time_keeps_its_offset() -> None:
    offset = datetime.fromisoformat("2026-11-02T01:00:00+02:00")
    span = usage.window(date(2026, 11, 1), offset, NOW)
    assert span == Window(
        start=datetime(2026, 11, 1, tzinfo=UTC), end=datetime(2026, 11, 1, 23, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    "text", ["0.5", "1700000000", "2026-11-01T10:00:00", "2026-11-01T10:00Z", "2026-02-30", "x"]
)
def test_from_and_to_are_written_as_rfc_3339_times_with_offset_or_dates(text: str) -> None:
    read = TypeAdapter(usage.When)
    assert read.validate_python("2026-11-01") == date(2026, 11, 1)
    assert read.validate_python("2026-11-01T10:00:00+01:00") == datetime(2026, 11, 1, 9, tzinfo=UTC)
    with pytest.raises(ValidationError) as refused:
        read.validate_python(text)
    assert [e["type"] for e in refused.value.errors()] == ["time-or-date"]  # one, not per member


@pytest.mark.parametrize(
    ("start", "end", "rule"),
    [
        (date(2026, 11, 2), date(2026, 11, 2), "order"),
        (date(2026, 11, 3), date(2026, 11, 2), "order"),
        (date(2026, 8, 1), date(2026, 11, 3), "range"),
        (datetime.fromisoformat("0001-01-01T00:30:00+01:00"), date(1, 1, 2), "range"),
    ],
)
def test_from_must_come_before_to_and_at_most_93_days_before(
    start: usage.When, end: usage.When, rule: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        usage.window(start, end, NOW)
    assert refused.value.details == [
        {"field": "from", "rule": rule, "message": refused.value.message}
    ]
    assert usage.window(date(2026, 8, 2), date(2026, 11, 3), NOW).end == datetime(
        2026, 11, 3, tzinfo=UTC
    )


# ---- the arithmetic ------------------------------------------------------------------------


def test_numbers_per_day_and_in_total() -> None:
    jobs = [
        job(JobStatus.SUCCEEDED, images=2, calls=1),
        job(JobStatus.SUCCEEDED, images=3, calls=4, model="qwen-image-plus"),
        job(JobStatus.FAILED, calls=3),
        job(JobStatus.QUEUED, calls=0, at=DAY2),
        job(JobStatus.SUCCEEDED, images=1, calls=1, at=DAY2),
    ]
    answer = usage.report(counted(*jobs), SPAN, GroupBy.DAY, PRICES)
    assert [g.key for g in answer.groups] == ["2026-11-20", "2026-11-21"]
    first, second = answer.groups
    assert first.jobs.model_dump() == {
        "queued": 0, "running": 0, "succeeded": 2, "failed": 1, "canceled": 0
    }  # fmt: skip
    assert (first.images, first.provider_calls) == (5, 8)
    assert first.estimated_cost == pytest.approx(2 * 0.03 + 3 * 0.02)
    assert (second.jobs.queued, second.images, second.estimated_cost) == (1, 1, 0.03)
    assert answer.totals.images == 6 and answer.totals.provider_calls == 9
    assert answer.totals.jobs.succeeded == 3 and answer.totals.jobs.running == 0
    assert answer.totals.estimated_cost == pytest.approx(0.15)
    assert answer.unpriced_models == [] and not answer.truncated


def test_only_succeeded_jobs_count_images() -> None:
    canceled = job(JobStatus.CANCELED).model_copy(update={"usage": Usage(image_count=4)})
    answer = usage.report(counted(canceled), SPAN, GroupBy.DAY, PRICES)
    assert answer.totals.images == 0 and answer.totals.estimated_cost == 0


def test_jobs_canceled_for_missing_their_start_deadline_are_counted_apart() -> None:
    missed = job(JobStatus.CANCELED, calls=0).model_copy(
        update={"error": JobError(code="DeadlineExceeded", message="not started")}
    )
    by_client = job(JobStatus.CANCELED).model_copy(
        update={"error": JobError(code="Canceled", message="canceled by the client")}
    )
    totals = usage.report(counted(missed, by_client), SPAN, GroupBy.DAY, PRICES).totals
    assert (totals.jobs.canceled, totals.deadline_canceled, totals.provider_calls) == (2, 1, 1)


def test_images_are_the_providers_count_else_the_stored_outputs() -> None:
    reported = job(JobStatus.SUCCEEDED, images=2).model_copy(update={"usage": Usage(image_count=3)})
    unreported = job(JobStatus.SUCCEEDED, images=2).model_copy(update={"usage": None})
    assert usage.report(counted(reported, unreported), SPAN, GroupBy.DAY, PRICES).totals.images == 5


def test_per_model_groups_and_a_model_without_a_price_makes_its_costs_null() -> None:
    jobs = [
        job(JobStatus.SUCCEEDED, images=2),
        job(JobStatus.SUCCEEDED, images=1, model="qwen-image-max"),
        job(JobStatus.FAILED, model="qwen-image-2.0"),
    ]
    answer = usage.report(counted(*jobs), SPAN, GroupBy.MODEL, PRICES)
    costs = {g.key: g.estimated_cost for g in answer.groups}
    assert costs == {"qwen-image-2.0": None, "qwen-image-edit-plus": 0.06, "qwen-image-max": None}
    assert answer.totals.estimated_cost is None
    assert answer.unpriced_models == ["qwen-image-2.0", "qwen-image-max"]


def test_the_answer_says_where_the_prices_come_from() -> None:
    unset = usage.report([], SPAN, GroupBy.DAY, Prices.model_validate({}))
    assert unset.pricing.source == NO_PRICES_SOURCE and unset.pricing.currency is None
    assert unset.groups == [] and unset.totals.estimated_cost == 0
    assert usage.report([], SPAN, GroupBy.DAY, PRICES).pricing.source == OPERATOR_SOURCE
    shown = usage.report([], SPAN, GroupBy.DAY, PRICES).model_dump(mode="json", by_alias=True)
    assert shown["from"] == "2026-11-19T10:00:00Z" and shown["to"] == "2026-11-26T08:00:00Z"
    assert shown["pricing"]["per_image"] == {"qwen-image-edit-plus": 0.03, "qwen-image-plus": 0.02}


@pytest.mark.parametrize(
    ("prices", "problem"),
    [
        ({"currency": "USD", "per_image": {"gpt-image-1": 0.04}}, "gpt-image-1"),
        ({"per_image": {"qwen-image": 0.01}}, "currency"),
        ({"currency": "USD", "per_image": {"qwen-image": -1}}, "greater than or equal"),
    ],
)
def test_prices_name_catalog_models_in_a_currency(prices: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Prices.model_validate(prices)


# ---- the bound -----------------------------------------------------------------------------


def test_past_the_bound_the_answer_is_truncated_where_it_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(usage, "MAX_JOBS", 3)
    times = [DAY1, DAY1 + timedelta(minutes=1), DAY2, DAY2, DAY2 + timedelta(minutes=1)]
    jobs = [job(JobStatus.SUCCEEDED, images=1, at=at) for at in times]
    answer = usage.report(counted(*jobs), SPAN, GroupBy.DAY, PRICES)
    # The fourth job shares the third's created_at: both are left for the next answer.
    assert answer.truncated and answer.counted_until == DAY2
    assert answer.totals.jobs.succeeded == 2
    assert usage.report(counted(*jobs[:3]), SPAN, GroupBy.DAY, PRICES).truncated is False


# ---- the use case: the tenant's own jobs in the range --------------------------------------


def test_a_tenant_counts_only_its_own_jobs_in_the_range() -> None:
    ctx, fakes = fake_context(model_prices={"currency": "USD", "per_image": {}})
    now = datetime.now(UTC)
    for record in [
        job(JobStatus.SUCCEEDED, images=2, at=now - timedelta(days=1)),
        job(JobStatus.SUCCEEDED, images=5, at=now - timedelta(days=1), tenant="tenant-b"),
        job(JobStatus.SUCCEEDED, images=7, at=now - timedelta(days=8)),
    ]:
        fakes.jobs.create(record)
    mine = service.usage(ctx, "tenant-a", start=None, end=None, group_by=GroupBy.MODEL)
    assert mine.totals.images == 2 and mine.totals.jobs.succeeded == 1
    theirs = service.usage(ctx, "tenant-b", start=None, end=None, group_by=GroupBy.MODEL)
    assert theirs.totals.images == 5
    assert service.usage(ctx, "tenant-c", start=None, end=None, group_by=GroupBy.DAY).groups == []
