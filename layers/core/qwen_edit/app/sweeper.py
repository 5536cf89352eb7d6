"""No job left behind: a scheduled look at the oldest unfinished jobs.

Two things can strand an accepted job. An upload's trigger records the job and then starts its
workflow; if it dies in between and the trigger queue's redeliveries run out, the job is queued
with no execution. And an execution can end without reaching Notify (failed, timed out,
aborted) while the EventBridge rule that reconciles it loses the event. The sweep finds both,
from the record and the execution alone, and reports how old the oldest waiting and running
jobs are.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from qwen_edit.app import workflow
from qwen_edit.app.lifecycle import load_job, note
from qwen_edit.context import Context
from qwen_edit.domain.jobs import JobStatus, Step, event
from qwen_edit.ports import OpenJob

logger = Logger(child=True)
# Younger jobs may still be starting (a trigger between record and start), and an execution
# that stopped more recently may still have its EventBridge event on the way.
GRACE = timedelta(minutes=5)
CHECKS = 200  # executions described per status and sweep, the oldest jobs first
# Statuses of an execution that will still settle its job itself: it runs, or it went through
# Notify, or Step Functions is about to redrive it.
UNDER_WAY = frozenset({"RUNNING", "SUCCEEDED", "PENDING_REDRIVE"})


def sweep(ctx: Context, now: datetime) -> Counter[str]:
    """Restart, fail or reconcile each stranded job; how many of each (and of errors)."""
    for status in (JobStatus.QUEUED, JobStatus.RUNNING):  # first: the alarms' numbers
        oldest = next(ctx.jobs.unfinished(status), None)
        age = (now - oldest.created_at).total_seconds() if oldest else 0.0
        ctx.metrics.seconds("OldestJobSeconds", age, Status=status.value)
    # A queued job in the dispatcher's line has a workflow waiting on its token: a backlog of
    # them costs one read of the queue, not a DescribeExecution each.
    in_line = {entry.job_id for entry in ctx.queue.entries()}
    done: Counter[str] = Counter()
    for status in (JobStatus.QUEUED, JobStatus.RUNNING):
        suspects = (
            job
            for job in ctx.jobs.unfinished(status)
            if now - job.created_at >= GRACE
            and not (status is JobStatus.QUEUED and job.job_id in in_line)
        )
        for suspect in itertools.islice(suspects, CHECKS):
            try:
                action = _settle(ctx, suspect, now)
            except Exception:  # one job's trouble must not keep the others stranded
                logger.exception("could not sweep a job", extra={"job_id": suspect.job_id})
                action = "error"
            if action:
                done[action] += 1
                ctx.metrics.count("JobsSwept", Action=action)
    return done


def _settle(ctx: Context, suspect: OpenJob, now: datetime) -> str | None:
    state = ctx.executions.state(suspect.job_id)
    job = load_job(ctx, suspect.job_id)  # after its execution: one that ended meanwhile is left
    if job.status.is_final:
        return None
    if state is None:  # recorded, never started
        if now < job.deadline_at:
            ctx.executions.start(job.id, {"job_id": job.id})
            note(ctx, job.id, event(Step.RETRIED, "restarted: its workflow had not started"))
            logger.warning("restarted a job with no workflow", extra={"job_id": job.id})
            return "restarted"
        workflow.reconcile(
            ctx, job.id, "NOT_STARTED", "its workflow never started, and its deadline passed"
        )
        return "failed"
    if state.status in UNDER_WAY or (state.stopped_at and now - state.stopped_at < GRACE):
        return None
    workflow.reconcile(ctx, job.id, state.status, state.cause)
    logger.warning("reconciled a job whose workflow ended", extra={"job_id": job.id})
    return "reconciled"
