"""The dispatcher against in-memory ports: one call per job attempt, in booked order, answered
back to the job's workflow through its task token."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from qwen_edit.app import lifecycle, service
from qwen_edit.app.dispatcher import LOOK_SECONDS, STALE_CLAIM_SECONDS, dispatch
from qwen_edit.context import Context
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.errors import failure_of
from qwen_edit.domain.jobs import Job, JobStatus, ProviderCall, ProviderInfo, now_utc
from qwen_edit.domain.provider import ProviderError

from .fakes import Fakes, fake_context, http_error, present, queued, run


def failure(fakes: Fakes, job: Job) -> tuple[str, str, str]:
    """(error, code, message) the workflow's Catch would see."""
    error, cause = fakes.callbacks.failed[f"token-{job.id}"]
    return (error, *failure_of(error, cause))


def test_a_queued_job_is_called_once_started_and_resumed_with_its_results(
    ctx: Context, fakes: Fakes
) -> None:
    job = queued(fakes)
    assert run(ctx) == "1 calls booked"
    assert fakes.provider.calls == 1 and fakes.queue.items == {}
    output = fakes.callbacks.succeeded[f"token-{job.id}"]
    assert output["image_urls"] and "task_id" not in output
    done = fakes.jobs.get(job.id)
    assert done.status is JobStatus.RUNNING
    assert (present(done.provider).region, present(done.provider_call).answered) == (
        "singapore",
        True,
    )
    assert fakes.metrics.named("ProviderCalls") == [
        (1, {"Family": "qwen-image-edit-plus", "Answer": "ok"})
    ]


def test_the_provider_reads_s3_inputs_through_presigned_urls(ctx: Context, fakes: Fakes) -> None:
    queued(fakes)
    run(ctx)
    [(request, asynchronous)] = fakes.provider.submitted
    assert request.images[0].startswith("https://fake-s3/in/inputs/x/0.png?")
    assert "X-Amz-Signature" in request.images[0] and not asynchronous


def test_an_async_model_resumes_its_workflow_with_the_task_id(ctx: Context, fakes: Fakes) -> None:
    job = queued(fakes, model="qwen-image-plus", capability=Capability.TEXT_TO_IMAGE)
    run(ctx)
    assert fakes.callbacks.succeeded[f"token-{job.id}"] == {"task_id": "task-1", "image_urls": []}
    assert present(fakes.jobs.get(job.id).provider).task_id == "task-1"


@pytest.mark.parametrize("status", [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED])
def test_a_job_that_ended_while_it_waited_costs_no_call(
    ctx: Context, fakes: Fakes, status: JobStatus
) -> None:
    job = queued(fakes)
    fakes.jobs.transition(job.id, JobStatus.RUNNING, now_utc())
    fakes.jobs.transition(job.id, status, now_utc())
    run(ctx)
    assert fakes.provider.calls == 0 and fakes.queue.items == {}
    assert fakes.callbacks.succeeded == {} == fakes.callbacks.failed


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_try_later_goes_out_again_in_the_next_slot_and_is_counted(
    ctx: Context, fakes: Fakes, status: int
) -> None:
    job = queued(fakes)
    fakes.provider.submits.append(http_error(status, "Throttling"))
    run(ctx)
    assert fakes.provider.calls == 2 and f"token-{job.id}" in fakes.callbacks.succeeded
    assert present(fakes.jobs.get(job.id).provider_call).attempt == 1


def test_a_job_gives_up_at_max_provider_attempts_with_the_last_error() -> None:
    ctx, fakes = fake_context(max_provider_attempts=3)
    job = queued(fakes)
    fakes.provider.submits.extend(
        http_error(503, "ServiceUnavailable", "overloaded") for _ in range(3)
    )
    run(ctx)
    error, code, message = failure(fakes, job)
    assert (error, code, fakes.provider.calls) == ("JobFailed", "ServiceUnavailable", 3)
    assert "3 provider attempts" in message and "overloaded" in message
    assert fakes.queue.items == {}


def test_a_final_provider_error_fails_the_job_with_the_providers_code(
    ctx: Context, fakes: Fakes
) -> None:
    job = queued(fakes)
    fakes.provider.submits.append(http_error(400, "DataInspectionFailed", "inappropriate"))
    run(ctx)
    assert failure(fakes, job) == ("JobFailed", "DataInspectionFailed", "inappropriate")
    assert fakes.provider.calls == 1


@pytest.mark.parametrize("code", ["RequestTimeout", "RemoteProtocolError"])
def test_a_call_whose_answer_was_lost_is_never_sent_again(
    ctx: Context, fakes: Fakes, code: str
) -> None:
    job = queued(fakes)
    fakes.provider.submits.append(ProviderError(code, "x", retryable=True, outcome_unknown=True))
    run(ctx)
    error, code_seen, message = failure(fakes, job)
    assert (error, code_seen, fakes.provider.calls) == (
        "ProviderOutcomeUnknown",
        "ProviderOutcomeUnknown",
        1,
    )
    assert "not sent again" in message
    call = present(fakes.jobs.get(job.id).provider_call)
    assert (call.attempt, call.answered) == (0, False)  # the job's record says so


def test_only_a_rate_quota_429_slows_the_pace(ctx: Context, fakes: Fakes) -> None:
    queued(fakes)
    fakes.provider.submits.append(http_error(429, "Throttling"))  # busy: says nothing of pace
    run(ctx)
    assert fakes.dispatch_lease.paces["qwen-image-edit-plus"].base == 1.0
    queued(fakes)
    fakes.provider.submits.append(http_error(429, "Throttling.RateQuota"))
    run(ctx)
    assert fakes.dispatch_lease.paces["qwen-image-edit-plus"].base == pytest.approx(0.8)


def test_calls_keep_the_provider_limit_across_dispatchers(ctx: Context, fakes: Fakes) -> None:
    for _ in range(3):
        queued(fakes)
    run(ctx)
    # Spread evenly at two a second (plus the margin): what a successor inherits is the last
    # two calls, half a window apart.
    calls = fakes.dispatch_lease.calls["qwen-image-edit-plus"]
    assert len(calls) == 2 and calls[1] - calls[0] == pytest.approx(0.52, abs=0.01)
    assert fakes.provider.calls == 3


def test_a_dispatcher_runs_only_while_it_holds_the_lease(ctx: Context, fakes: Fakes) -> None:
    queued(fakes)
    fakes.dispatch_lease.until = time.time() + 30  # another one runs
    assert run(ctx) == "another dispatcher holds the lease"
    assert fakes.provider.calls == 0


def test_a_dispatcher_whose_lease_was_taken_books_no_call(ctx: Context, fakes: Fakes) -> None:
    job = queued(fakes)
    lease = fakes.dispatch_lease
    acquire = lease.acquire

    def taken_over_at_once(holder: str, now: float, until: float) -> Any:
        held = acquire(holder, now, until)
        lease.token += 1  # a successor took it (this one stalled past its lease)
        return held

    lease.acquire = taken_over_at_once  # type: ignore[method-assign]
    run(ctx)
    assert fakes.provider.calls == 0
    assert not present(fakes.queue.entry(job.id)).claimed  # back in line for the new holder


def test_a_job_past_its_deadline_fails_without_a_call(ctx: Context, fakes: Fakes) -> None:
    job = queued(fakes, created_at=now_utc().replace(year=2020))
    run(ctx)
    assert failure(fakes, job)[:2] == ("DeadlineExceeded", "DeadlineExceeded")
    assert fakes.provider.calls == 0


def test_a_family_at_its_task_cap_waits_for_a_free_place(ctx: Context, fakes: Fakes) -> None:
    family = "qwen-image-plus"
    for holder in ("running-1", "running-2"):
        fakes.limits.acquire_lease(family, holder, 2, time.time() + 600, time.time())
    job = queued(fakes, model=family, capability=Capability.TEXT_TO_IMAGE)
    slept: list[float] = []
    rounds = iter(range(3, -1, -1))
    dispatch(ctx, remaining=lambda: 600.0 if next(rounds, 0) else 0.0, sleep=slept.append)
    assert all(pause > LOOK_SECONDS / 2 for pause in slept)  # a look each round, no busy loop
    assert fakes.provider.calls == 0 and not present(fakes.queue.entry(job.id)).claimed
    fakes.limits.release_lease(family, "running-1")
    run(ctx)
    assert fakes.provider.calls == 1


# ---- claims a dead dispatcher left behind ---------------------------------------------------


def left_behind(fakes: Fakes, job: Job, call: ProviderCall | None) -> None:
    entry = present(fakes.queue.entry(job.id))
    fakes.queue.claim(entry, 99, time.time() - STALE_CLAIM_SECONDS - 1)
    if call is not None:
        fakes.jobs.update(job.id, now_utc(), provider_call=call)


def test_a_claim_whose_call_never_left_goes_back_in_line(ctx: Context, fakes: Fakes) -> None:
    job = queued(fakes)
    left_behind(fakes, job, None)
    run(ctx)
    assert fakes.provider.calls == 1 and f"token-{job.id}" in fakes.callbacks.succeeded


def test_a_claim_whose_call_went_unanswered_is_outcome_unknown(ctx: Context, fakes: Fakes) -> None:
    job = queued(fakes)
    left_behind(fakes, job, ProviderCall(attempt=0, sent_at=now_utc()))
    run(ctx)
    assert failure(fakes, job)[0] == "ProviderOutcomeUnknown" and fakes.provider.calls == 0


def test_a_claim_whose_task_was_recorded_is_polled_not_sent_again(
    ctx: Context, fakes: Fakes
) -> None:
    job = queued(fakes, model="qwen-image-plus", capability=Capability.TEXT_TO_IMAGE)
    left_behind(fakes, job, ProviderCall(attempt=0, sent_at=now_utc(), answered=True))
    fakes.jobs.update(job.id, now_utc(), provider=ProviderInfo(name="dashscope", task_id="t-9"))
    run(ctx)
    assert fakes.callbacks.succeeded[f"token-{job.id}"] == {"task_id": "t-9", "image_urls": []}
    assert fakes.provider.calls == 0


# ---- what the API shows and frees ---------------------------------------------------------


def test_a_queued_job_shows_its_lane_place_and_start(ctx: Context, fakes: Fakes) -> None:
    first = queued(fakes, model="qwen-image-2.0-pro", capability=Capability.TEXT_TO_IMAGE)
    second = queued(fakes, model="qwen-image-2.0-pro", capability=Capability.TEXT_TO_IMAGE)
    place = present(service.place_in_line(ctx, second).queue)
    assert (place.lane, place.position) == ("interactive", 2)
    assert 29 < (place.estimated_start_at - now_utc()).total_seconds() <= 30
    assert lifecycle.view(ctx, service.place_in_line(ctx, first))["queue"]["position"] == 1


def test_a_job_that_runs_shows_no_place(ctx: Context, fakes: Fakes) -> None:
    job = queued(fakes)
    running = fakes.jobs.transition(job.id, JobStatus.RUNNING, now_utc())
    assert "queue" not in lifecycle.view(ctx, service.place_in_line(ctx, running))


def test_a_cancel_frees_the_jobs_place_at_once(ctx: Context, fakes: Fakes) -> None:
    job = queued(fakes)
    service.cancel(ctx, job.id, job.tenant)
    assert fakes.queue.items == {}
    run(ctx)
    assert fakes.provider.calls == 0


def test_a_dispatcher_failure_names_the_code_the_record_keeps(ctx: Context, fakes: Fakes) -> None:
    job = queued(fakes)
    fakes.provider.submits.append(http_error(400, "InvalidParameter", "bad size"))
    run(ctx)
    error, cause = fakes.callbacks.failed[f"token-{job.id}"]
    assert error == "JobFailed"
    assert json.loads(json.loads(cause)["errorMessage"]) == {
        "code": "InvalidParameter",
        "message": "bad size",
    }


# ---- a worker that crashes, a cancel during the call --------------------------------------


def test_a_worker_crash_before_the_call_goes_back_in_line_then_gives_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx, fakes = fake_context(max_provider_attempts=2)
    job = queued(fakes)

    def broken(*_args: Any) -> str:
        raise RuntimeError("presigning failed")

    monkeypatch.setattr(fakes.objects, "presigned_get", broken)
    run(ctx)
    assert fakes.provider.calls == 0  # never sent, so never unknown: tried again, then failed
    assert failure(fakes, job)[:2] == ("JobFailed", "DispatchFailed")


def test_a_worker_crash_during_the_call_is_outcome_unknown_never_resent(
    ctx: Context, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = queued(fakes)
    sent: list[object] = []

    def crashed(*args: Any, **_kwargs: Any) -> Any:
        sent.append(args)
        raise RuntimeError("the client broke after sending")

    monkeypatch.setattr(fakes.provider, "submit", crashed)
    run(ctx)
    assert failure(fakes, job)[0] == "ProviderOutcomeUnknown" and len(sent) == 1


def test_a_job_canceled_during_its_call_is_left_to_the_cancel(
    ctx: Context, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = queued(fakes)
    submit = fakes.provider.submit

    def canceled_meanwhile(*args: Any, **kwargs: Any) -> Any:
        service.cancel(ctx, job.id, job.tenant)
        return submit(*args, **kwargs)

    monkeypatch.setattr(fakes.provider, "submit", canceled_meanwhile)
    run(ctx)
    assert fakes.jobs.get(job.id).status is JobStatus.CANCELED
    assert fakes.callbacks.succeeded == {} == fakes.callbacks.failed  # the cancel stopped it
    assert fakes.queue.items == {}
