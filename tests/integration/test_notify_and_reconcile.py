"""Final statuses are announced once on EventBridge with the documented shape, and executions
that end without Notify are reconciled: no accepted job is left unfinished or unannounced."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import boto3
import pytest

from qwen_edit.app import service, sweeper
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.jobs import JobStatus, Step, now_utc
from qwen_edit_cli.local.drive import job_of, start, wait_execution, wait_until
from qwen_edit_cli.local.lambdas import FakeLambdaContext, load_handler
from qwen_edit_cli.local.samples import data_url

from conftest import ROOT


@pytest.fixture
def job_events(stack):
    """An SQS queue subscribed to the service's events on the default bus."""
    sqs, events = boto3.client("sqs"), boto3.client("events")
    url = sqs.create_queue(QueueName="job-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name="qwen-edit-jobs", EventPattern=json.dumps({"source": ["qwen-edit"]}))
    events.put_targets(Rule="qwen-edit-jobs", Targets=[{"Id": "queue", "Arn": arn}])

    def received() -> list[dict]:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    return received


def underway(stack, job):
    """moto's StopExecution fails on an execution whose worker has not started yet."""
    return wait_until(lambda: job_of(stack, job.id).provider, what="the provider task")


def stopped_underway(stack):
    """An async job at the provider whose execution is stopped behind the job's back."""
    stack.emulator.fake.faults.pending_s = 60
    job = start(stack, {"model": "qwen-image", "prompt": "slow"}, Capability.TEXT_TO_IMAGE)
    underway(stack, job)
    boto3.client("stepfunctions").stop_execution(
        executionArn=stack.ctx.executions.execution_arn(job.id)
    )
    wait_execution(stack, job.id)  # moto stops it a moment later
    return job


def reconcile_event(job_id: str, status: str) -> dict:
    event = json.loads((ROOT / "events" / "reconcile.json").read_text())
    event["detail"].update(name=job_id, status=status)
    return event


def run_reconcile(stack, event: dict) -> None:
    handler = load_handler(ROOT / "functions" / "reconcile", "app.handler")
    handler(event, FakeLambdaContext("reconcile", "arn:aws:lambda:us-east-1:1:function:r"))


def test_each_final_status_is_announced_once_with_the_job(stack, job_events):
    job = start(
        stack,
        {
            "model": "qwen-image-edit-plus",
            "prompt": "x",
            "images": [data_url()],
            "metadata": {"order": "A-17"},
            "correlation_id": "pipeline-9",
        },
    )
    wait_execution(stack, job.id)
    [event] = job_events()
    assert event["detail"]["correlation_id"] == "pipeline-9"
    assert event["source"] == "qwen-edit" and event["detail-type"] == "Job Succeeded"
    assert event["detail"]["id"] == job.id and event["detail"]["status"] == "succeeded"
    assert event["detail"]["metadata"] == {"order": "A-17"} and event["detail"]["outputs"]
    assert "tenant" not in event["detail"]


def test_failed_and_canceled_jobs_are_announced(stack, job_events):
    stack.emulator.fake.faults.final_error_rate = 1.0
    failed = start(stack, {"prompt": "x", "images": [data_url()]})
    wait_execution(stack, failed.id)
    stack.emulator.fake.faults.final_error_rate = 0
    stack.emulator.fake.faults.pending_s = 60
    pending = start(stack, {"model": "qwen-image", "prompt": "y"}, Capability.TEXT_TO_IMAGE)
    underway(stack, pending)
    service.cancel(stack.ctx, pending.id, "tenant-a")
    seen = {e["detail"]["id"]: e for e in job_events() + job_events()}
    assert seen[failed.id]["detail-type"] == "Job Failed"
    assert seen[failed.id]["detail"]["error"]["code"] == "DataInspectionFailed"
    assert seen[pending.id]["detail-type"] == "Job Canceled"


def test_reconcile_fails_a_job_whose_execution_timed_out(stack, job_events):
    job = stopped_underway(stack)  # stands in for a time-out
    run_reconcile(stack, reconcile_event(job.id, "TIMED_OUT"))
    failed = job_of(stack, job.id)
    assert failed.status is JobStatus.FAILED
    assert (failed.error.code, failed.error.message) == (
        "ExecutionTimedOut",
        "The execution timed out",
    )
    assert [e["detail-type"] for e in job_events()] == ["Job Failed"]


def test_reconcile_leaves_canceled_jobs_alone(stack, job_events):
    stack.emulator.fake.faults.pending_s = 60
    job = start(stack, {"model": "qwen-image", "prompt": "x"}, Capability.TEXT_TO_IMAGE)
    underway(stack, job)
    service.cancel(stack.ctx, job.id, "tenant-a")
    job_events()  # the cancel's own announcement
    run_reconcile(stack, reconcile_event(job.id, "ABORTED"))
    assert job_of(stack, job.id).status is JobStatus.CANCELED
    assert job_events() == []


def test_the_sweep_starts_a_job_recorded_without_a_workflow(stack, job_events, monkeypatch):
    """A job orphaned on purpose: recorded, its workflow never started (its trigger died)."""
    with monkeypatch.context() as lost:
        lost.setattr(stack.ctx.executions, "start", lambda name, payload: None)
        orphan = start(stack, {"model": "qwen-image", "prompt": "orphan"}, Capability.TEXT_TO_IMAGE)
    assert stack.ctx.executions.state(orphan.id) is None
    run_reconcile(stack, sweep_event())  # the scheduled run: too young to touch yet
    assert stack.ctx.executions.state(orphan.id) is None
    later = now_utc() + sweeper.GRACE + timedelta(seconds=1)
    assert sweeper.sweep(stack.ctx, later) == Counter(restarted=1)
    wait_execution(stack, orphan.id)
    done = job_of(stack, orphan.id)
    assert done.status is JobStatus.SUCCEEDED
    assert [e.step for e in done.events][:2] == [Step.QUEUED, Step.RETRIED]
    assert [e["detail-type"] for e in job_events()] == ["Job Succeeded"]


def test_the_sweep_reconciles_a_job_whose_workflow_ended_unseen(stack, job_events):
    job = stopped_underway(stack)  # and the EventBridge event that would reconcile it is lost
    later = now_utc() + sweeper.GRACE + timedelta(seconds=1)
    assert sweeper.sweep(stack.ctx, later) == Counter(reconciled=1)
    failed = job_of(stack, job.id)
    assert failed.status is JobStatus.FAILED and failed.error
    assert failed.error.code == "ExecutionAborted"
    assert [e["detail-type"] for e in job_events()] == ["Job Failed"]
    assert sweeper.sweep(stack.ctx, later) == Counter()  # settled: nothing more to do


def sweep_event() -> dict:
    return json.loads((ROOT / "events" / "reconcile-sweep.json").read_text())
