"""Waiting without polling (Prefer: wait, ?wait) and retry by id, against fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from qwen_edit.app import service
from qwen_edit.context import Context
from qwen_edit.domain.errors import InputsExpired, JobConflict
from qwen_edit.domain.jobs import JobError, JobStatus, now_utc
from qwen_edit.entrypoints.api import waiting

from .fakes import Fakes, a_job, tiny_png


@pytest.mark.parametrize(
    ("prefer", "seconds"),
    [
        ("wait=10", 10),
        ("respond-async, wait=5", 5),
        ("WAIT = 60", 60),
        ("wait=61", None),  # over 60: ignored, as RFC 7240 lets a server ignore a preference
        ("wait=-1", None),
        ("wait=soon", None),
        ("handling=strict", None),
        (None, None),
    ],
)
def test_prefer_wait_is_read_or_ignored(prefer: str | None, seconds: int | None) -> None:
    assert waiting.preferred(prefer) == seconds


class Remaining:
    def __init__(self, millis: int) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


def test_a_wait_is_kept_within_api_gateways_time_and_the_functions() -> None:
    assert waiting.applied(60, Remaining(29_000)) == 20
    assert waiting.applied(5, Remaining(29_000)) == 5
    assert waiting.applied(20, Remaining(10_000)) == 7  # 3 s kept for the answer
    assert waiting.applied(20, Remaining(1_000)) == 0


def test_a_wait_ends_when_the_job_does_and_reads_calmly(ctx: Context, fakes: Fakes) -> None:
    job = a_job()
    fakes.jobs.create(job)
    assert service.wait_for_end(ctx, job, 3).status is JobStatus.QUEUED
    assert sum(fakes.pauses) == 3 and fakes.pauses[:3] == [0.25, 0.5, 1.0]
    fakes.pauses.clear()
    fakes.jobs.transition(job.id, JobStatus.CANCELED, now_utc())
    assert service.wait_for_end(ctx, job, 20).status is JobStatus.CANCELED
    assert fakes.pauses == [0.25]  # one look after the first pause


def failed(fakes: Fakes, code: str = "Throttling", **request: object) -> str:
    job = a_job(webhook_url="https://hooks.example.com/q").model_copy(
        update={"metadata": {"order": "A-17"}, "correlation_id": "pipeline-9"}
    )
    if request:
        job = job.model_copy(update={"request": {**job.request, **request}})
    fakes.jobs.create(job)
    fakes.objects.put("in", "inputs/x/0.png", tiny_png(), "image/png")
    fakes.jobs.transition(
        job.id, JobStatus.FAILED, now_utc(), error=JobError(code=code, message="no")
    )
    return job.id


def test_a_retry_submits_the_same_request_again(ctx: Context, fakes: Fakes) -> None:
    job = fakes.jobs.get(failed(fakes))
    again = service.retry_request(ctx, job)
    assert again["prompt"] == job.request["prompt"] and again["images"] == job.request["images"]
    assert again["webhook_url"] == job.webhook_url and again["metadata"] == {"order": "A-17"}
    assert again["correlation_id"] == "pipeline-9"


def test_a_passed_deadline_is_left_out_and_cancel_after_counts_again(
    ctx: Context, fakes: Fakes
) -> None:
    past = (now_utc() - timedelta(minutes=1)).isoformat()
    assert "deadline" not in service.retry_request(
        ctx, fakes.jobs.get(failed(fakes, deadline=past))
    )
    later = service.retry_request(ctx, fakes.jobs.get(failed(fakes, cancel_after=60)))
    assert later["cancel_after"] == 60


def test_only_failed_or_canceled_jobs_are_retried(ctx: Context, fakes: Fakes) -> None:
    job = a_job()
    fakes.jobs.create(job)
    with pytest.raises(JobConflict, match="only a failed or canceled job"):
        service.retry_request(ctx, job)


def test_a_retry_whose_stored_input_is_gone_is_inputs_expired(ctx: Context, fakes: Fakes) -> None:
    job = fakes.jobs.get(failed(fakes))
    fakes.objects.objects.clear()
    with pytest.raises(InputsExpired):
        service.retry_request(ctx, job)


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        ("Throttling.RateQuota", True),
        ("InternalError.Algo", True),
        ("DeadlineExceeded", True),
        ("ProviderOutcomeUnknown", True),
        ("ExecutionTimedOut", True),
        ("Canceled", True),
        ("DataInspectionFailed", False),
        ("InvalidParameter.DataInspection", False),
        ("InvalidURL", False),
        ("AccessDenied.Unpurchased", False),
        ("ModelNotFound", False),
    ],
)
def test_a_failure_says_whether_a_retry_can_help(code: str, retryable: bool) -> None:
    error = JobError(code=code, message="x")
    assert error.retryable is retryable and error.model_dump()["retryable"] is retryable
