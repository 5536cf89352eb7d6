"""sweeper.py: no job left behind, judged from the record and its execution alone."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from qwen_edit.app import sweeper
from qwen_edit.context import Context
from qwen_edit.domain.jobs import Job, JobStatus, Step, now_utc
from qwen_edit.ports import ExecutionState, OpenJob

from .fakes import Fakes, a_job, in_queue

LONG_AGO = now_utc() - timedelta(hours=1)


def recorded(fakes: Fakes, minutes_ago: float, started: bool, **fields: object) -> Job:
    job = a_job(created_at=now_utc() - timedelta(minutes=minutes_ago), **fields)
    fakes.jobs.create(job)
    if started:
        fakes.executions.start(job.id, {"job_id": job.id})
    return job


def stranded(fakes: Fakes, status: str, stopped_at: object = LONG_AGO) -> Job:
    """A running job whose execution ended `status` without settling it."""
    job = recorded(fakes, minutes_ago=20, started=True)
    fakes.jobs.transition(job.id, JobStatus.RUNNING, now_utc())
    fakes.executions.ended[job.id] = ExecutionState(status, "Lambda.ServiceException", stopped_at)
    return job


def test_a_job_whose_workflow_never_started_is_started(ctx: Context, fakes: Fakes) -> None:
    orphan = recorded(fakes, minutes_ago=10, started=False)
    assert sweeper.sweep(ctx, now_utc()) == Counter(restarted=1)
    assert fakes.executions.started[orphan.id] == {"job_id": orphan.id}
    assert fakes.jobs.get(orphan.id).events[-1].step is Step.RETRIED
    assert fakes.metrics.named("JobsSwept") == [(1, {"Action": "restarted"})]


def test_young_waiting_and_running_jobs_are_left_alone(ctx: Context, fakes: Fakes) -> None:
    young = recorded(fakes, minutes_ago=1, started=False)  # its trigger may still start it
    in_line = recorded(fakes, minutes_ago=30, started=True)
    in_queue(fakes, in_line)  # its workflow waits on its token: no need to ask
    running = recorded(fakes, minutes_ago=30, started=True)
    fakes.jobs.transition(running.id, JobStatus.RUNNING, now_utc())
    assert sweeper.sweep(ctx, now_utc()) == Counter()
    assert young.id not in fakes.executions.started
    assert fakes.executions.described == [running.id]
    assert fakes.jobs.get(in_line.id).status is JobStatus.QUEUED


def test_a_never_started_job_past_its_deadline_fails_and_is_announced(
    ctx: Context, fakes: Fakes
) -> None:
    late = recorded(fakes, minutes_ago=90, started=False)  # a_job's deadline: an hour
    sweeper.sweep(ctx, now_utc())
    job = fakes.jobs.get(late.id)
    assert job.status is JobStatus.FAILED and job.error
    assert job.error.code == "ExecutionNotStarted"
    assert [j.id for j in fakes.events.published] == [late.id]
    assert late.id not in fakes.executions.started


def test_a_job_whose_workflow_ended_unseen_is_reconciled(ctx: Context, fakes: Fakes) -> None:
    job = stranded(fakes, "FAILED")
    assert sweeper.sweep(ctx, now_utc()) == Counter(reconciled=1)
    failed = fakes.jobs.get(job.id)
    assert failed.status is JobStatus.FAILED and failed.error
    assert (failed.error.code, failed.error.message) == (
        "ExecutionFailed",
        "Lambda.ServiceException",
    )
    assert [j.id for j in fakes.events.published] == [job.id]


def test_an_execution_that_settles_its_job_itself_is_left_to_it(ctx: Context, fakes: Fakes) -> None:
    went_through_notify = stranded(fakes, "SUCCEEDED")
    redriven = stranded(fakes, "PENDING_REDRIVE")
    just_stopped = stranded(fakes, "FAILED", stopped_at=now_utc())  # its event is on its way
    assert sweeper.sweep(ctx, now_utc()) == Counter()
    for job in (went_through_notify, redriven, just_stopped):
        assert fakes.jobs.get(job.id).status is JobStatus.RUNNING
    assert fakes.events.published == []


def test_a_job_that_ended_after_the_index_was_read_is_not_announced_again(
    ctx: Context, fakes: Fakes
) -> None:
    job = stranded(fakes, "FAILED")
    done = fakes.jobs.transition(job.id, JobStatus.SUCCEEDED, now_utc())
    fakes.jobs.unfinished = lambda status: iter(  # type: ignore[method-assign]
        [] if status is JobStatus.QUEUED else [OpenJob(job.id, job.created_at)]
    )  # the index lags the record
    assert sweeper.sweep(ctx, now_utc()) == Counter()
    assert fakes.jobs.get(job.id) == done and fakes.events.published == []


def test_one_jobs_trouble_leaves_the_others_settled_and_the_ages_written(
    ctx: Context, fakes: Fakes
) -> None:
    first = recorded(fakes, minutes_ago=40, started=False)
    second = recorded(fakes, minutes_ago=30, started=False)
    starts = fakes.executions.start

    def throttled_once(name: str, payload: dict[str, object]) -> None:
        if name == first.id:
            raise RuntimeError("ThrottlingException")
        starts(name, payload)

    fakes.executions.start = throttled_once  # type: ignore[method-assign]
    assert sweeper.sweep(ctx, now_utc()) == Counter(error=1, restarted=1)
    assert second.id in fakes.executions.started
    assert {dims["Status"] for _, dims in fakes.metrics.named("OldestJobSeconds")} == {
        "queued",
        "running",
    }


def test_the_oldest_waiting_and_running_ages_are_measured(ctx: Context, fakes: Fakes) -> None:
    recorded(fakes, minutes_ago=30, started=True)
    recorded(fakes, minutes_ago=2, started=True)
    sweeper.sweep(ctx, now_utc())
    ages = {dims["Status"]: age for age, dims in fakes.metrics.named("OldestJobSeconds")}
    assert 30 * 60 - 5 < ages["queued"] < 30 * 60 + 5 and ages["running"] == 0
