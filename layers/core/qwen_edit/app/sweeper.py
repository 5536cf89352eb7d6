"""No job left behind: a scheduled look at the oldest unfinished jobs.

Two things can strand an accepted job. An upload's trigger records the job and then starts its
workflow; if it dies in between and S3's redeliveries run out, the job is queued with no
execution. And an execution can end without reaching Notify (failed, timed out, aborted) while
the EventBridge rule that reconciles it loses the event. The sweep finds both, from the record
and the execution alone, and reports how old the oldest waiting and running jobs are.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from qwen_edit.app import workflow
from qwen_edit.app.service import note
from qwen_edit.context import Context
from qwen_edit.domain.jobs import Job, JobStatus, Step, event

logger = Logger(child=True)
# Younger jobs may still be starting (a trigger between record and start, an EventBridge
# event in flight): the sweep leaves them alone.
GRACE = timedelta(minutes=5)
BATCH = 1000  # jobs looked at per status and sweep; the oldest come first


def sweep(ctx: Context, now: datetime) -> dict[str, int]:
    """Restart, fail or reconcile each stranded job; the counts of each action."""
    done = {"restarted": 0, "failed": 0, "reconciled": 0}
    # A queued job in the dispatcher's line has a workflow waiting on its token: a backlog of
    # them costs the sweep one read of the queue, not a DescribeExecution each.
    waiting = {entry.job_id for entry in ctx.queue.entries()}
    for status in (JobStatus.QUEUED, JobStatus.RUNNING):
        jobs = ctx.jobs.unfinished(status, now, BATCH)
        oldest = (now - jobs[0].created_at).total_seconds() if jobs else 0.0
        ctx.metrics.seconds("OldestJobSeconds", oldest, Status=status.value)
        for job in jobs:
            if now - job.created_at < GRACE or (status is JobStatus.QUEUED and job.id in waiting):
                continue
            action = _settle(ctx, job, now)
            if action:
                done[action] += 1
                ctx.metrics.count("JobsSwept", Action=action)
                logger.warning("swept a stranded job", extra={"job_id": job.id, "action": action})
    return done


def _settle(ctx: Context, job: Job, now: datetime) -> str | None:
    ctx.tracing.follow(job.id, job.model)
    state = ctx.executions.state(job.id)
    if state is None:  # recorded, never started
        if now < job.deadline_at:
            ctx.executions.start(job.id, {"job_id": job.id})
            note(ctx, job.id, event(Step.RETRIED, "restarted: its workflow had not started"))
            return "restarted"
        workflow.reconcile(
            ctx, job.id, "NOT_STARTED", "its workflow never started, and its deadline passed"
        )
        return "failed"
    if state.status == "RUNNING":
        return None
    workflow.reconcile(ctx, job.id, state.status, state.cause)
    return "reconciled"
