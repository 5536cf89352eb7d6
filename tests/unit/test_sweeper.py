"""sweeper.py: no job left behind, judged from the record and its execution alone."""

from __future__ import annotations

from datetime import timedelta

from qwen_edit.app import sweeper
from qwen_edit.context import Context
from qwen_edit.domain.jobs import Job, JobStatus, Step, now_utc
from qwen_edit.ports import ExecutionState

from .fakes import Fakes, a_job, in_queue


def recorded(fakes: Fakes, minutes_ago: float, started: bool, **fields: object) -> Job:
    job = a_job(created_at=now_utc() - timedelta(minutes=minutes_ago), **fields)
    fakes.jobs.create(job)
    if started:
        fakes.executions.start(job.id, {"job_id": job.id})
    return job


def test_a_job_whose_workflow_never_started_is_started(ctx: Context, fakes: Fakes) -> None:
    orphan = recorded(fakes, minutes_ago=10, started=False)
    assert sweeper.sweep(ctx, now_utc()) == {"restarted": 1, "failed": 0, "reconciled": 0}
    assert fakes.executions.started[orphan.id] == {"job_id": orphan.id}
    assert fakes.jobs.get(orphan.id).events[-1].step is Step.RETRIED
    assert fakes.metrics.named("JobsSwept") == [(1, {"Action": "restarted"})]


def test_young_waiting_and_running_jobs_are_left_alone(ctx: Context, fakes: Fakes) -> None:
    young = recorded(fakes, minutes_ago=1, started=False)  # its trigger may still start it
    in_line = recorded(fakes, minutes_ago=30, started=True)
    in_queue(fakes, in_line)  # its workflow waits on its token: no need to ask
    running = recorded(fakes, minutes_ago=30, started=True)
    fakes.jobs.transition(running.id, JobStatus.RUNNING, now_utc())
    assert sweeper.sweep(ctx, now_utc()) == {"restarted": 0, "failed": 0, "reconciled": 0}
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
    stranded = recorded(fakes, minutes_ago=20, started=True)
    fakes.jobs.transition(stranded.id, JobStatus.RUNNING, now_utc())
    fakes.executions.ended[stranded.id] = ExecutionState("FAILED", "Lambda.ServiceException")
    assert sweeper.sweep(ctx, now_utc())["reconciled"] == 1
    job = fakes.jobs.get(stranded.id)
    assert job.status is JobStatus.FAILED and job.error
    assert (job.error.code, job.error.message) == ("ExecutionFailed", "Lambda.ServiceException")


def test_the_oldest_waiting_and_running_ages_are_measured(ctx: Context, fakes: Fakes) -> None:
    recorded(fakes, minutes_ago=30, started=True)
    recorded(fakes, minutes_ago=2, started=True)
    sweeper.sweep(ctx, now_utc())
    ages = {dims["Status"]: age for age, dims in fakes.metrics.named("OldestJobSeconds")}
    assert 30 * 60 - 5 < ages["queued"] < 30 * 60 + 5 and ages["running"] == 0
