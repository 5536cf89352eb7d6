"""A tenant's usage over a time range: jobs by status, images, provider calls and an estimated
cost, per UTC day or per model, from its own job records (GET /v1/usage).

The cost is an estimate: images times the operator's price per image (domain/pricing.py), which
matches the provider's bill only as far as those prices do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from qwen_edit.domain.budgets import BudgetStatus
from qwen_edit.domain.errors import DeadlineExceeded, InvalidRequest
from qwen_edit.domain.jobs import JobStatus
from qwen_edit.domain.pricing import Prices

DEFAULT_RANGE = timedelta(days=7)
MAX_RANGE = timedelta(days=93)
# One answer reads at most this many job records (one tenant's range can hold more).
MAX_JOBS = 10_000


# RFC 3339's full-date and date-time (pydantic alone would also read "0.5" as a time); the
# values themselves are pydantic's to check.
_SHAPE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))?"
)


def _time_or_date(value: Any, parse: ValidatorFunctionWrapHandler) -> Any:
    """A time or date written as one, and one error naming the field, not one per member of
    the union."""
    try:
        if not isinstance(value, str) or _SHAPE.fullmatch(value):
            return parse(value)
    except ValidationError:
        pass
    raise PydanticCustomError(
        "time-or-date",
        "must be an RFC 3339 time with its offset (2026-11-01T00:00:00Z) or a date (2026-11-01)",
    )


When = Annotated[AwareDatetime | date, WrapValidator(_time_or_date)]


class GroupBy(StrEnum):
    DAY = "day"  # the UTC date of created_at
    MODEL = "model"


class Window(BaseModel):
    model_config = ConfigDict(defer_build=True)
    start: datetime
    end: datetime


def window(start: When | None, end: When | None, now: datetime) -> Window:
    """[start, end): a date is 00:00 UTC of that day; `end` defaults to now and `start` to
    seven days before `end`. InvalidRequest unless start < end, at most MAX_RANGE apart."""
    try:
        to = _instant(end) if end is not None else now
        since = _instant(start) if start is not None else to - DEFAULT_RANGE
    except OverflowError:  # year 1 or 9999 moved past the calendar by its offset
        raise _invalid("range", "from and to must fall within the years 1 to 9999") from None
    if since >= to:
        raise _invalid("order", "from must be before to")
    if to - since > MAX_RANGE:
        raise _invalid("range", f"from and to may be at most {MAX_RANGE.days} days apart")
    return Window(start=since, end=to)


def _instant(value: When) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.combine(value, time(), UTC)


def _invalid(rule: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, [{"field": "from", "rule": rule, "message": message}])


class StatusCounts(BaseModel):
    model_config = ConfigDict(defer_build=True)
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    canceled: int = 0


class Numbers(BaseModel):
    model_config = ConfigDict(defer_build=True)
    jobs: StatusCounts = Field(
        default_factory=StatusCounts, description="jobs created in the range, by current status"
    )
    deadline_canceled: int = Field(
        0,
        description="of the canceled jobs, those not started by their own deadline "
        "(DeadlineExceeded): they cost no provider call",
    )
    images: int = Field(
        0, description="images of succeeded jobs, as the provider counted them (what it bills)"
    )
    provider_calls: int = Field(0, description="submits and polls sent to the provider")
    estimated_cost: float | None = Field(
        0.0,
        description="images × the price per image of their model; null when a model "
        "counted here has no price (see unpriced_models)",
    )


class Group(Numbers):
    key: str = Field(
        description="the UTC date (YYYY-MM-DD) or the model id (a multi-step job counts under "
        "its first step's model, with every step's images and cost)"
    )


class UsageReport(BaseModel):
    """The tenant's own jobs created in [from, to); the numbers are what the job records say."""

    model_config = ConfigDict(defer_build=True)

    start: datetime = Field(alias="from", description="start of the range (inclusive)")
    end: datetime = Field(alias="to", description="end of the range (exclusive)")
    group_by: GroupBy
    groups: list[Group] = Field(description="one per day or model that had jobs, in order")
    totals: Numbers
    unpriced_models: list[str] = Field(
        description="models of counted jobs without a price (their cost is null)"
    )
    pricing: Prices
    truncated: bool = Field(
        description=f"true when the range holds more than {MAX_JOBS} jobs: only those created "
        "before counted_until are counted"
    )
    counted_until: datetime | None = Field(
        description="when truncated: ask again with this as `from` for the rest"
    )
    budgets: list[BudgetStatus] | None = Field(
        None,
        description="your spend caps now (the month's, and the day's if set): cap, spent, "
        "reserved and when each resets; null when you have none",
    )


class JobUsage(BaseModel):
    """What usage needs of one job record: about 200 bytes, where the record holds ~5 KB (its
    request and timeline), so that one answer can read thousands."""

    model_config = ConfigDict(defer_build=True)

    id: str
    created_at: datetime
    status: JobStatus
    model: str
    # The images the provider billed, by model: a succeeded job's, or each finished step's
    # of a multi-step job (whatever became of the job).
    images_by_model: dict[str, int] = Field(default_factory=dict)
    provider_calls: int = 0
    error_code: str | None = None

    @property
    def images(self) -> int:
        return sum(self.images_by_model.values())

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> JobUsage:
        """From a job record's USAGE_FIELDS, as stored (or Job.model_dump(mode="json"))."""
        status = JobStatus(record["status"])
        by_model: dict[str, int] = {}
        for step in record.get("step_results") or ():
            by_model[step["model"]] = by_model.get(step["model"], 0) + step.get("images", 0)
        if not by_model and status is JobStatus.SUCCEEDED:
            counted = (record.get("usage") or {}).get("image_count")
            if counted is None:  # a record without the provider's count: its stored outputs
                counted = len(record.get("outputs") or [])
            by_model = {record["model"]: counted}
        return cls(
            id=record["id"],
            created_at=record["created_at"],
            status=status,
            model=record["model"],
            images_by_model=by_model,
            provider_calls=record.get("provider_calls", 0),
            error_code=(record.get("error") or {}).get("code"),
        )


# The fields of a job record JobUsage.of reads (a DynamoDB projection).
USAGE_FIELDS = (
    "id",
    "created_at",
    "status",
    "model",
    "usage",
    "outputs",
    "provider_calls",
    "error",
    "step_results",
)


def report(
    jobs: Iterable[JobUsage], span: Window, group_by: GroupBy, prices: Prices
) -> UsageReport:
    """The numbers of `jobs` (oldest first, as the store yields them), at most MAX_JOBS of
    them; past that, the jobs created at or after the first one left out are dropped too, so
    the counted ones are exactly those created in [start, counted_until)."""
    counted: list[JobUsage] = []
    counted_until = None
    for job in jobs:
        if len(counted) == MAX_JOBS:
            counted_until = job.created_at
            counted = [j for j in counted if j.created_at < counted_until]
            break
        counted.append(job)
    groups: dict[str, list[JobUsage]] = {}
    for job in counted:
        groups.setdefault(_key(job, group_by), []).append(job)
    return UsageReport(
        **{"from": span.start, "to": span.end},
        group_by=group_by,
        groups=[Group(key=key, **dict(_numbers(groups[key], prices))) for key in sorted(groups)],
        totals=_numbers(counted, prices),
        unpriced_models=sorted(_models(counted) - set(prices.per_image)),
        pricing=prices,
        truncated=counted_until is not None,
        counted_until=counted_until,
        budgets=None,
    )


def _models(jobs: Iterable[JobUsage]) -> set[str]:
    """Every model the jobs used (each step's, for multi-step jobs)."""
    return {model for job in jobs for model in (job.model, *job.images_by_model)}


def _key(job: JobUsage, group_by: GroupBy) -> str:
    if group_by is GroupBy.DAY:
        return job.created_at.astimezone(UTC).date().isoformat()
    return job.model


def _numbers(jobs: list[JobUsage], prices: Prices) -> Numbers:
    statuses = dict.fromkeys(JobStatus, 0)
    for job in jobs:
        statuses[job.status] += 1
    priced = all(prices.per_image_price(model) is not None for model in _models(jobs))
    cost = sum(
        images * (prices.per_image_price(model) or 0.0)
        for job in jobs
        for model, images in job.images_by_model.items()
    )
    return Numbers(
        jobs=StatusCounts(**{status.value: count for status, count in statuses.items()}),
        deadline_canceled=sum(
            1
            for job in jobs
            if job.status is JobStatus.CANCELED and job.error_code == DeadlineExceeded.code
        ),
        images=sum(job.images for job in jobs),
        provider_calls=sum(job.provider_calls for job in jobs),
        estimated_cost=round(cost, 6) if priced else None,
    )
