"""A job's timeline (JobView.events): what each step adds, and what it counts."""

from __future__ import annotations

import contextlib

import pytest

from qwen_edit.app import service, workflow
from qwen_edit.app.workflow import Submission, WorkflowState
from qwen_edit.context import Context
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.errors import JobFailed, TaskPending
from qwen_edit.domain.jobs import MAX_EVENTS, Job, Step
from qwen_edit.domain.provider import TaskStatus

from .fakes import Fakes, a_job, http_error, run, task


def accepted(fakes: Fakes, **fields: object) -> Job:
    job = a_job(model="qwen-image-plus", capability=Capability.TEXT_TO_IMAGE, **fields)
    fakes.jobs.create(job)
    return job


def steps(fakes: Fakes, job: Job) -> list[tuple[Step, str | None]]:
    return [(e.step, e.detail) for e in fakes.jobs.get(job.id).events]


def polled_until_final(ctx: Context, job: Job) -> Submission:
    state = WorkflowState(job_id=job.id, submission=Submission(task_id="task-1"))
    while True:
        try:
            return workflow.poll(ctx, state)
        except TaskPending:
            continue


def test_an_async_job_tells_its_whole_story(ctx: Context, fakes: Fakes) -> None:
    job = accepted(fakes)
    workflow.admit(ctx, workflow.AdmitRequest(job_id=job.id, task_token=f"token-{job.id}"))
    fakes.provider.submits.append(http_error(429, "Throttling"))  # once, then it goes again
    run(ctx)
    fakes.provider.fetches.extend(
        [task(TaskStatus.PENDING)] * 3 + [http_error(503)] + [task(TaskStatus.RUNNING)] * 2
    )
    result = polled_until_final(ctx, job)
    state = WorkflowState(job_id=job.id, submission=result)
    workflow.store(ctx, state)
    workflow.notify(ctx, state)

    assert steps(fakes, job) == [
        (Step.QUEUED, None),
        (Step.ADMITTED, "interactive lane"),
        (Step.RETRIED, "busy-429: Throttling"),
        (Step.SUBMITTED, "PENDING"),
        (Step.RETRIED, "poll: HTTP503"),
        (Step.ANSWERED, "RUNNING"),  # three PENDING polls said nothing new
        (Step.ANSWERED, "SUCCEEDED"),
        (Step.STORED, "1 image(s)"),
        (Step.NOTIFIED, None),
    ]
    done = fakes.jobs.get(job.id)
    assert [e.polls for e in done.events if e.step is Step.ANSWERED] == [5, 7]
    assert (done.provider_calls, done.polls, done.events_dropped) == (2 + 7, 7, 0)
    assert done.public()["events"][0]["step"] == "queued"  # clients see it


def test_failures_and_cancels_end_the_timeline_with_their_reason(
    ctx: Context, fakes: Fakes
) -> None:
    failed = accepted(fakes)
    fakes.provider.fetches.append(task(TaskStatus.FAILED, error_code="InternalError.Algo"))
    with pytest.raises(JobFailed) as error:
        polled_until_final(ctx, failed)
    # The workflow's Catch hands it to RecordFailure.
    failure = workflow.Failure(Error="JobFailed", Cause=str(error.value))
    workflow.record_failure(ctx, WorkflowState(job_id=failed.id, failure=failure))
    assert steps(fakes, failed)[-1][0] is Step.FAILED

    canceled = accepted(fakes)
    service.cancel(ctx, canceled.id, canceled.tenant)
    assert [s for s, _ in steps(fakes, canceled)] == [Step.QUEUED, Step.CANCELED, Step.NOTIFIED]


def test_a_long_story_keeps_its_beginning_and_counts_the_rest(ctx: Context, fakes: Fakes) -> None:
    job = accepted(fakes)
    fakes.provider.fetches.extend(http_error(503) for _ in range(MAX_EVENTS + 10))
    state = WorkflowState(job_id=job.id, submission=Submission(task_id="task-1"))
    for _ in range(MAX_EVENTS + 10):
        with contextlib.suppress(TaskPending):
            workflow.poll(ctx, state)
    done = fakes.jobs.get(job.id)
    assert len(done.events) == MAX_EVENTS and done.events_dropped == 11
    assert done.polls == MAX_EVENTS + 10


def test_a_lost_note_never_fails_the_step(ctx: Context, fakes: Fakes) -> None:
    job = accepted(fakes)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("DynamoDB throttled the write")

    fakes.jobs.note = broken  # type: ignore[method-assign]
    workflow.admit(ctx, workflow.AdmitRequest(job_id=job.id, task_token="token-1"))
    assert fakes.queue.items  # queued all the same


def test_the_cli_shows_the_timeline(capsys) -> None:
    from qwen_edit_cli.main import _show

    job = {
        "id": "j-1",
        "status": "succeeded",
        "model": "qwen-image-plus",
        "created_at": "2026-11-26T10:00:00.000000Z",
        "events": [
            {"at": "2026-11-26T10:00:00.000000Z", "step": "queued"},
            {
                "at": "2026-11-26T10:00:01.500000Z",
                "step": "answered",
                "detail": "RUNNING",
                "polls": 2,
            },
        ],
        "events_dropped": 3,
    }
    _show(job, as_json=False)
    out = capsys.readouterr().out
    assert "    +1.5 s  answered   RUNNING (poll 2)" in out
    assert "3 later event(s) not kept" in out
