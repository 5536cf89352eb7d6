"""workflow.py: each Task state of the job workflow, one step at a time, against fakes."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from qwen_edit.app import workflow
from qwen_edit.app.workflow import Admission, Failure, Submission, WorkflowState
from qwen_edit.context import Context
from qwen_edit.domain import admission
from qwen_edit.domain.catalog import Capability, RateLimit
from qwen_edit.domain.errors import (
    DeadlineExceeded,
    JobConflict,
    JobFailed,
    JobNotRecorded,
    NotAdmitted,
    ProviderOutcomeUnknown,
    ProviderRetryable,
    QwenEditError,
    TaskPending,
)
from qwen_edit.domain.jobs import Job, JobStatus, OutputTarget, ProviderCall, now_utc
from qwen_edit.domain.provider import ProviderError, TaskStatus

from .fakes import Fakes, a_job, fake_context, http_error, present, succeeded, task


def queued(fakes: Fakes, **fields: Any) -> Job:
    job = a_job(**fields)
    fakes.jobs.create(job)
    return job


def running(fakes: Fakes, **fields: Any) -> Job:
    job = queued(fakes, **fields)
    return fakes.jobs.transition(job.id, JobStatus.RUNNING, now_utc())


def async_job(fakes: Fakes) -> Job:
    return running(fakes, model="qwen-image-plus", capability=Capability.TEXT_TO_IMAGE)


def caught(error: QwenEditError) -> Failure:
    """What the definition's Catch puts in the state when a Lambda task raised `error`."""
    cause = json.dumps({"errorType": type(error).__name__, "errorMessage": str(error)})
    return Failure(Error=type(error).__name__, Cause=cause)


def state(job: Job, **fields: Any) -> WorkflowState:
    return WorkflowState(job_id=job.id, **fields)


# ---- admit ----------------------------------------------------------------------------------


def test_admit_books_a_slot_now_for_a_fresh_job(ctx: Context, fakes: Fakes) -> None:
    job = queued(fakes)
    admitted = workflow.admit(ctx, state(job))
    assert admitted.attempt == 0 and admitted.provider_attempts == 0
    assert abs((admitted.at - now_utc()).total_seconds()) < 5
    assert len(fakes.limits.reservations["qwen-image-edit-plus"]) == 1


def test_admit_counts_only_provider_calls_that_said_later(ctx: Context, fakes: Fakes) -> None:
    job = queued(fakes)
    earlier = Admission(at=now_utc(), attempt=1, provider_attempts=2)
    later = caught(ProviderRetryable("busy", code="Throttling"))
    again = workflow.admit(ctx, state(job, admission=earlier, failure=later))
    assert again.provider_attempts == 3 and again.attempt == 2
    # Admit's own Retry repeats its input: a failure of another kind is not a provider call.
    same = workflow.admit(ctx, state(job, admission=earlier, failure=caught(NotAdmitted("full"))))
    assert same.provider_attempts == 2


def test_a_job_back_from_submit_keeps_its_place_instead_of_booking_at_the_tail(
    ctx: Context, fakes: Fakes
) -> None:
    family = "qwen-image-edit-plus"
    for _ in range(20):  # a burst booked the next 10 windows
        fakes.limits.reserve(family, RateLimit(2, 1), now_utc().timestamp())
    job = queued(fakes)
    booked = list(fakes.limits.reservations[family])
    earlier = Admission(at=now_utc(), attempt=0)
    missed = workflow.admit(ctx, state(job, admission=earlier, failure=caught(NotAdmitted("x"))))
    assert abs((missed.at - now_utc()).total_seconds()) < 2  # the call log is free now
    assert fakes.limits.reservations[family] == booked  # and it booked nothing
    retry = caught(ProviderRetryable("busy", code="Throttling"))
    again = workflow.admit(ctx, state(job, admission=earlier, failure=retry))
    assert (again.at - now_utc()).total_seconds() < admission.BACKOFF_BASE_SECONDS + 1


def test_a_queued_job_shows_its_place_in_line_until_it_runs(ctx: Context, fakes: Fakes) -> None:
    family, limit = "qwen-image-2.0-pro", RateLimit(2, 60)
    for _ in range(4):  # two windows booked
        fakes.limits.reserve(family, limit, now_utc().timestamp())
    job = queued(fakes, model="qwen-image-2.0-pro")
    admitted = workflow.admit(ctx, state(job))
    place = present(fakes.jobs.get(job.id).queue)
    assert place.position == 4 and place.estimated_start_at == admitted.at
    assert 119 < (admitted.at - now_utc()).total_seconds() < 122
    assert fakes.jobs.get(job.id).public()["queue"]["position"] == 4
    fakes.jobs.transition(job.id, JobStatus.RUNNING, now_utc())
    assert "queue" not in fakes.jobs.get(job.id).public()


def test_the_cli_says_where_a_job_stands() -> None:
    from qwen_edit_cli.main import _place

    start = (now_utc() + timedelta(minutes=18)).isoformat()
    line = _place({"queue": {"position": 36, "estimated_start_at": start}})
    assert line == ", 37th in line, starts in about 18 min"
    assert _place({"status": "running"}) == ""


def test_admit_gives_up_at_max_provider_attempts_with_the_last_error() -> None:
    ctx, fakes = fake_context(max_provider_attempts=3)
    job = queued(fakes)
    earlier = Admission(at=now_utc(), attempt=2, provider_attempts=2)
    last = caught(ProviderRetryable("the provider is overloaded", code="Throttling.RateQuota"))
    with pytest.raises(JobFailed) as failed:
        workflow.admit(ctx, state(job, admission=earlier, failure=last))
    assert failed.value.code == "Throttling.RateQuota"
    assert "3 provider attempts" in failed.value.message and "overloaded" in failed.value.message
    assert fakes.limits.reservations == {}  # no slot booked for a job that gives up


def test_a_workflow_that_finds_no_job_waits_for_it_then_ends_quietly(
    ctx: Context, fakes: Fakes
) -> None:
    # The API starts the execution, then records the job; it may die in between.
    never = WorkflowState(job_id="never-recorded")
    with pytest.raises(JobNotRecorded):  # the Admit state's Retry waits for the record
        workflow.admit(ctx, never)
    failure = caught(JobNotRecorded("job never-recorded is not recorded (yet)"))
    workflow.record_failure(ctx, never.model_copy(update={"failure": failure}))
    workflow.notify(ctx, never)
    workflow.reconcile(ctx, "never-recorded", "FAILED", None)
    assert fakes.events.published == [] and fakes.jobs.all() == []


def test_admit_refuses_a_job_past_its_deadline(ctx: Context, fakes: Fakes) -> None:
    job = queued(fakes)
    fakes.jobs.update(job.id, now_utc(), deadline_at=now_utc() - timedelta(seconds=1))
    with pytest.raises(DeadlineExceeded):
        workflow.admit(ctx, state(job))


def test_admit_waits_while_the_async_places_are_taken(ctx: Context, fakes: Fakes) -> None:
    job = async_job(fakes)
    far = now_utc().timestamp() + 600
    for other in ("other-1", "other-2"):
        assert fakes.limits.acquire_lease("qwen-image-plus", other, 2, far, now_utc().timestamp())
    with pytest.raises(NotAdmitted):
        workflow.admit(ctx, state(job))
    fakes.limits.release_lease("qwen-image-plus", "other-1")
    workflow.admit(ctx, state(job))
    assert job.id in fakes.limits.leases["qwen-image-plus"]


# ---- submit ---------------------------------------------------------------------------------


def test_submit_starts_the_job_calls_the_provider_once_and_records_it(
    ctx: Context, fakes: Fakes
) -> None:
    job = queued(fakes)
    result = workflow.submit(ctx, state(job))
    assert fakes.provider.calls == 1 and result.image_urls and result.task_id is None
    running_job = fakes.jobs.get(job.id)
    assert running_job.status is JobStatus.RUNNING
    info = present(running_job.provider)
    assert (info.name, info.region, info.request_id) == ("dashscope", "singapore", "req-1")


def test_the_provider_reads_s3_inputs_through_presigned_urls(ctx: Context, fakes: Fakes) -> None:
    job = queued(fakes)
    workflow.submit(ctx, state(job))
    [(request, asynchronous)] = fakes.provider.submitted
    assert request.images[0].startswith("https://fake-s3/in/inputs/x/0.png?")
    assert "X-Amz-Signature" in request.images[0] and not asynchronous


def test_submit_of_an_async_model_answers_its_task_id(ctx: Context, fakes: Fakes) -> None:
    job = async_job(fakes)
    result = workflow.submit(ctx, state(job))
    assert result.task_id == "task-1" and result.image_urls == []
    assert present(fakes.jobs.get(job.id).provider).task_id == "task-1"


@pytest.mark.parametrize("status", [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED])
def test_submit_never_calls_the_provider_for_a_final_job(
    ctx: Context, fakes: Fakes, status: JobStatus
) -> None:
    job = running(fakes)
    fakes.jobs.transition(job.id, status, now_utc())
    with pytest.raises(JobConflict, match=f"already {status.value}"):
        workflow.submit(ctx, state(job))
    assert fakes.provider.calls == 0


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_provider_try_later_becomes_provider_retryable(
    ctx: Context, fakes: Fakes, status: int
) -> None:
    job = queued(fakes)
    fakes.provider.submits.append(http_error(status, "Throttling"))
    with pytest.raises(ProviderRetryable) as retry:
        workflow.submit(ctx, state(job))
    assert retry.value.code == "Throttling"
    assert fakes.jobs.get(job.id).status is JobStatus.RUNNING  # not failed: Admit again


def test_a_final_provider_error_fails_the_job_with_the_providers_code(
    ctx: Context, fakes: Fakes
) -> None:
    job = queued(fakes)
    fakes.provider.submits.append(http_error(400, "DataInspectionFailed", "inappropriate"))
    with pytest.raises(JobFailed) as failed:
        workflow.submit(ctx, state(job))
    assert (failed.value.code, failed.value.message) == ("DataInspectionFailed", "inappropriate")


@pytest.mark.parametrize("code", ["RequestTimeout", "ConnectionError"])
def test_a_call_whose_answer_was_lost_is_never_sent_again(
    ctx: Context, fakes: Fakes, code: str
) -> None:
    job = queued(fakes)
    fakes.provider.submits.append(ProviderError(code, "x", retryable=True, outcome_unknown=True))
    with pytest.raises(ProviderOutcomeUnknown, match="not sent again"):
        workflow.submit(ctx, state(job))
    assert fakes.provider.calls == 1
    call = present(fakes.jobs.get(job.id).provider_call)
    assert (call.attempt, call.answered) == (0, False)  # the job's record says so


def test_a_call_that_never_left_is_retried(ctx: Context, fakes: Fakes) -> None:
    job = queued(fakes)
    fakes.provider.submits.append(ProviderError("ConnectionError", "refused", retryable=True))
    with pytest.raises(ProviderRetryable):
        workflow.submit(ctx, state(job))


def test_submit_run_again_after_a_crash_does_not_call_again(ctx: Context, fakes: Fakes) -> None:
    job = queued(fakes)
    admitted = state(job, admission=Admission(at=now_utc(), attempt=3))
    sent = ProviderCall(attempt=3, sent_at=now_utc())  # written, then the Lambda died
    fakes.jobs.update(job.id, now_utc(), provider_call=sent)
    with pytest.raises(ProviderOutcomeUnknown, match="ran again after its call"):
        workflow.submit(ctx, admitted)
    assert fakes.provider.calls == 0


def test_submit_run_again_after_its_call_was_answered_never_calls_twice(
    ctx: Context, fakes: Fakes
) -> None:
    # Step Functions may retry a Submit whose Lambda finished (Lambda.ServiceException).
    sync_job, async_one = queued(fakes), async_job(fakes)
    for job in (sync_job, async_one):
        workflow.submit(ctx, state(job, admission=Admission(at=now_utc(), attempt=2)))
    assert fakes.provider.calls == 2
    again = workflow.submit(ctx, state(async_one, admission=Admission(at=now_utc(), attempt=2)))
    assert again.task_id == "task-1"  # the recorded task goes on being polled
    with pytest.raises(ProviderOutcomeUnknown):  # the sync answer's URLs went with the step
        workflow.submit(ctx, state(sync_job, admission=Admission(at=now_utc(), attempt=2)))
    assert fakes.provider.calls == 2


def test_bookkeeping_trouble_never_turns_try_later_into_a_failure(
    ctx: Context, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = queued(fakes)
    fakes.provider.submits.append(http_error(429, "Throttling.RateQuota"))

    def contended(*_args: Any) -> None:
        raise NotAdmitted("the pace item is contended")

    monkeypatch.setattr(fakes.limits, "throttled", contended)
    with pytest.raises(ProviderRetryable):
        workflow.submit(ctx, state(job))


@pytest.mark.parametrize("code, slows", [("Throttling.RateQuota", True), ("Throttling", False)])
def test_only_a_rate_quota_429_slows_the_pace(
    ctx: Context, fakes: Fakes, code: str, slows: bool
) -> None:
    job = queued(fakes)
    fakes.provider.submits.append(http_error(429, code))
    with pytest.raises(ProviderRetryable):
        workflow.submit(ctx, state(job))
    assert ("qwen-image-edit-plus" in fakes.limits.paces) is slows


def test_each_attempt_calls_once_and_records_the_answer(ctx: Context, fakes: Fakes) -> None:
    job = queued(fakes)
    fakes.provider.submits.append(http_error(429, "Throttling.RateQuota"))
    first = state(job, admission=Admission(at=now_utc(), attempt=0))
    with pytest.raises(ProviderRetryable):
        workflow.submit(ctx, first)
    assert present(fakes.jobs.get(job.id).provider_call).answered
    workflow.submit(ctx, state(job, admission=Admission(at=now_utc(), attempt=1)))
    assert fakes.provider.calls == 2
    assert present(fakes.jobs.get(job.id).provider_call).attempt == 1


def test_submit_goes_back_to_admit_when_the_call_slot_is_far(
    ctx: Context, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = queued(fakes)
    monkeypatch.setattr(fakes.limits, "claim_call", lambda family, limit, now: 30.0)
    with pytest.raises(NotAdmitted):
        workflow.submit(ctx, state(job))
    assert fakes.provider.calls == 0


# ---- poll -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [TaskStatus.PENDING, TaskStatus.RUNNING])
def test_poll_raises_task_pending_until_the_task_is_final(
    ctx: Context, fakes: Fakes, status: TaskStatus
) -> None:
    job = async_job(fakes)
    fakes.provider.fetches.append(task(status))
    with pytest.raises(TaskPending):
        workflow.poll(ctx, state(job, submission=Submission(task_id="task-1")))
    assert fakes.provider.fetched == ["task-1"]


def test_poll_answers_the_results_of_a_finished_task_and_frees_its_place(
    ctx: Context, fakes: Fakes
) -> None:
    job = async_job(fakes)
    fakes.provider.fetches.append(succeeded("https://results.fake/a.png", task_id="task-1"))
    result = workflow.poll(ctx, state(job, submission=Submission(task_id="task-1")))
    assert result.image_urls == ["https://results.fake/a.png"]
    assert fakes.limits.released == [("qwen-image-plus", job.id)]


def test_a_failed_poll_that_may_succeed_later_is_just_pending(ctx: Context, fakes: Fakes) -> None:
    job = async_job(fakes)
    fakes.provider.fetches.append(http_error(503))
    with pytest.raises(TaskPending):
        workflow.poll(ctx, state(job, submission=Submission(task_id="task-1")))


def test_a_failed_task_fails_the_job_with_the_task_error(ctx: Context, fakes: Fakes) -> None:
    job = async_job(fakes)
    fakes.provider.fetches.append(
        task(TaskStatus.FAILED, error_code="InternalError.Algo", error_message="Algorithm error.")
    )
    with pytest.raises(JobFailed) as failed:
        workflow.poll(ctx, state(job, submission=Submission(task_id="task-1")))
    assert (failed.value.code, failed.value.message) == ("InternalError.Algo", "Algorithm error.")


# ---- store ----------------------------------------------------------------------------------


def test_store_writes_every_png_and_the_record_then_succeeds(ctx: Context, fakes: Fakes) -> None:
    job = running(fakes)
    urls = ["https://results.fake/0.png", "https://results.fake/1.png"]
    workflow.store(ctx, state(job, submission=Submission(image_urls=urls)))
    assert fakes.objects.keys("out") == [
        f"results/{job.id}/0.png",
        f"results/{job.id}/1.png",
        f"results/{job.id}/job.json",
    ]
    assert fakes.objects.objects[("out", f"results/{job.id}/0.png")].content_type == "image/png"
    done = fakes.jobs.get(job.id)
    assert done.status is JobStatus.SUCCEEDED and done.completed_at
    assert [(o.width, o.height) for o in done.outputs] == [(3, 2), (3, 2)]
    assert present(done.usage).image_count == 2
    record = fakes.objects.json("out", f"results/{job.id}/job.json")
    assert record["status"] == "succeeded" and "tenant" not in record


def test_store_of_an_upload_job_mirrors_the_inbox_path(ctx: Context, fakes: Fakes) -> None:
    job = running(fakes, output=OutputTarget(prefix="outbox/watercolor/2026/", stem="harbor"))
    workflow.store(
        ctx, state(job, submission=Submission(image_urls=["https://results.fake/0.png"]))
    )
    assert fakes.objects.keys("out") == [
        "outbox/watercolor/2026/harbor.json",
        "outbox/watercolor/2026/harbor.png",
    ]


def test_a_second_store_is_harmless(ctx: Context, fakes: Fakes) -> None:
    job = running(fakes)
    step = state(job, submission=Submission(image_urls=["https://results.fake/0.png"]))
    workflow.store(ctx, step)
    first = fakes.jobs.get(job.id)
    workflow.store(ctx, step)
    assert fakes.jobs.get(job.id) == first
    assert fakes.provider.downloaded == ["https://results.fake/0.png"]  # not downloaded again


def test_store_writes_nothing_for_a_job_canceled_meanwhile(ctx: Context, fakes: Fakes) -> None:
    job = running(fakes)
    fakes.jobs.transition(job.id, JobStatus.CANCELED, now_utc())
    workflow.store(
        ctx, state(job, submission=Submission(image_urls=["https://results.fake/0.png"]))
    )
    assert fakes.objects.writes == [] and fakes.provider.downloaded == []


def test_an_expired_result_url_fails_the_step_with_the_providers_code(
    ctx: Context, fakes: Fakes
) -> None:
    job = running(fakes)
    fakes.provider.downloads.append(http_error(403, "ResultExpired"))
    with pytest.raises(JobFailed) as failed:
        workflow.store(ctx, state(job, submission=Submission(image_urls=["https://x.fake/0.png"])))
    assert failed.value.code == "ResultExpired" and fakes.objects.writes == []


# ---- record_failure, notify, reconcile ------------------------------------------------------


def test_record_failure_fails_the_job_with_the_code_and_message_and_writes_the_record(
    ctx: Context, fakes: Fakes
) -> None:
    job = running(fakes)
    failure = caught(JobFailed("inappropriate content", code="DataInspectionFailed"))
    workflow.record_failure(ctx, state(job, failure=failure))
    failed = fakes.jobs.get(job.id)
    assert failed.status is JobStatus.FAILED and failed.completed_at
    assert (present(failed.error).code, present(failed.error).message) == (
        "DataInspectionFailed",
        "inappropriate content",
    )
    assert fakes.objects.json("out", f"results/{job.id}/job.json")["error"]["code"] == (
        "DataInspectionFailed"
    )


def test_record_failure_leaves_a_final_job_as_it_is(ctx: Context, fakes: Fakes) -> None:
    job = running(fakes)
    canceled = fakes.jobs.transition(job.id, JobStatus.CANCELED, now_utc())
    workflow.record_failure(ctx, state(job, failure=caught(JobFailed("late", code="X"))))
    assert fakes.jobs.get(job.id) == canceled and fakes.objects.writes == []


def test_record_failure_frees_the_async_place(ctx: Context, fakes: Fakes) -> None:
    job = async_job(fakes)
    workflow.record_failure(ctx, state(job, failure=Failure(Error="States.Timeout")))
    assert fakes.limits.released == [("qwen-image-plus", job.id)]
    assert present(fakes.jobs.get(job.id).error).code == "States.Timeout"


def test_notify_publishes_one_event_and_no_webhook_without_one(ctx: Context, fakes: Fakes) -> None:
    job = running(fakes)
    fakes.jobs.transition(job.id, JobStatus.FAILED, now_utc())
    workflow.notify(ctx, state(job))
    assert fakes.events.detail_types == ["Job Failed"] and fakes.outbox.sent == []


def test_notify_queues_the_webhook_of_a_job_that_has_one(ctx: Context, fakes: Fakes) -> None:
    job = running(fakes, webhook_url="https://hooks.example.com/q")
    fakes.jobs.transition(job.id, JobStatus.FAILED, now_utc())
    workflow.notify(ctx, state(job))
    [(delivery, delay)] = fakes.outbox.sent
    assert delay == 0 and delivery.webhook_id == f"msg_{job.id}" and delivery.attempt == 1
    assert json.loads(delivery.body)["type"] == "job.failed"


def test_notify_says_nothing_about_an_unfinished_job(ctx: Context, fakes: Fakes) -> None:
    job = running(fakes)
    workflow.notify(ctx, state(job))
    assert fakes.events.published == []


def test_reconcile_closes_a_job_whose_execution_failed(ctx: Context, fakes: Fakes) -> None:
    job = running(fakes)
    workflow.reconcile(ctx, job.id, "TIMED_OUT", None)
    failed = fakes.jobs.get(job.id)
    assert failed.status is JobStatus.FAILED and present(failed.error).code == "ExecutionTimedOut"
    assert fakes.events.detail_types == ["Job Failed"]


def test_reconcile_leaves_a_canceled_job_alone(ctx: Context, fakes: Fakes) -> None:
    job = running(fakes)
    fakes.jobs.transition(job.id, JobStatus.CANCELED, now_utc())
    workflow.reconcile(ctx, job.id, "ABORTED", None)
    assert fakes.events.published == [] and fakes.objects.writes == []
