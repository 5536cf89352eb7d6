"""workflow.py: each Task state of the job workflow, one step at a time, against fakes."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from qwen_edit.app import workflow
from qwen_edit.app.workflow import Failure, Submission, WorkflowState
from qwen_edit.context import Context
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.errors import (
    DeadlineExceeded,
    JobConflict,
    JobFailed,
    JobNotRecorded,
    QwenEditError,
    TaskPending,
)
from qwen_edit.domain.jobs import Job, JobSource, JobStatus, OutputTarget, now_utc
from qwen_edit.domain.provider import TaskStatus

from .fakes import Fakes, a_job, http_error, present, succeeded, task


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


def admitting(job: Job, token: str = "token-1") -> workflow.AdmitRequest:
    return workflow.AdmitRequest(job_id=job.id, task_token=token)


def test_admit_queues_the_job_with_its_token_and_wakes_the_dispatcher(
    ctx: Context, fakes: Fakes
) -> None:
    job = queued(fakes)
    workflow.admit(ctx, admitting(job))
    entry = present(fakes.queue.entry(job.id))
    assert (entry.tenant, entry.family) == ("tenant-a", "qwen-image-edit-plus")
    assert entry.lane == "interactive"
    assert entry.calls == 0 and not entry.claimed and fakes.wakes == ["wake"]
    assert fakes.queue.claim(entry, 1, 0.0) == "token-1"


def test_admit_wakes_no_one_while_a_dispatcher_runs(ctx: Context, fakes: Fakes) -> None:
    fakes.dispatch_lease.until = now_utc().timestamp() + 30
    workflow.admit(ctx, admitting(queued(fakes)))
    assert fakes.wakes == []


def test_admit_run_again_keeps_the_place_and_hands_over_the_new_token(
    ctx: Context, fakes: Fakes
) -> None:
    job = queued(fakes)
    workflow.admit(ctx, admitting(job, "token-1"))
    first = present(fakes.queue.entry(job.id))
    workflow.admit(ctx, admitting(job, "token-2"))
    assert present(fakes.queue.entry(job.id)).enqueued_at == first.enqueued_at
    assert fakes.queue.claim(first, 1, 0.0) == "token-2"


def test_an_upload_job_waits_in_the_batch_lane(ctx: Context, fakes: Fakes) -> None:
    job = queued(fakes, source=JobSource.S3)
    workflow.admit(ctx, admitting(job))
    assert present(fakes.queue.entry(job.id)).lane == "batch"


def test_a_workflow_that_finds_no_job_waits_for_it_then_ends_quietly(
    ctx: Context, fakes: Fakes
) -> None:
    # The API starts the execution, then records the job; it may die in between.
    never = WorkflowState(job_id="never-recorded")
    with pytest.raises(JobNotRecorded):  # the Admit state's Retry waits for the record
        workflow.admit(ctx, workflow.AdmitRequest(job_id="never-recorded", task_token="t"))
    failure = caught(JobNotRecorded("job never-recorded is not recorded (yet)"))
    workflow.record_failure(ctx, never.model_copy(update={"failure": failure}))
    workflow.notify(ctx, never)
    workflow.reconcile(ctx, "never-recorded", "FAILED", None)
    assert fakes.events.published == [] and fakes.jobs.all() == [] and fakes.queue.items == {}


def test_admit_refuses_a_job_past_its_deadline(ctx: Context, fakes: Fakes) -> None:
    job = queued(fakes, created_at=now_utc() - timedelta(hours=2))
    with pytest.raises(DeadlineExceeded):
        workflow.admit(ctx, admitting(job))
    assert fakes.queue.items == {}


def test_admit_queues_nothing_for_a_job_canceled_before_it(ctx: Context, fakes: Fakes) -> None:
    job = queued(fakes)
    fakes.jobs.transition(job.id, JobStatus.CANCELED, now_utc())
    with pytest.raises(JobConflict):
        workflow.admit(ctx, admitting(job))
    assert fakes.queue.items == {}


def test_the_cli_says_where_a_job_stands() -> None:
    from qwen_edit_cli.main import _place

    start = (now_utc() + timedelta(minutes=18)).isoformat()
    line = _place({"queue": {"lane": "batch", "position": 37, "estimated_start_at": start}})
    assert line == ", 37th in line, starts in about 18 min"
    assert _place({"status": "running"}) == ""


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


def test_record_failure_leaves_a_final_job_as_it_is_and_writes_its_record(
    ctx: Context, fakes: Fakes
) -> None:
    job = running(fakes)
    canceled = fakes.jobs.transition(job.id, JobStatus.CANCELED, now_utc())
    workflow.record_failure(ctx, state(job, failure=caught(JobFailed("late", code="X"))))
    assert fakes.jobs.get(job.id) == canceled
    assert fakes.objects.json("out", f"results/{job.id}/job.json")["status"] == "canceled"


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
