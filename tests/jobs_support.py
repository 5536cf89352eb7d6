"""Helpers for tests that run jobs through the real workflow."""

from __future__ import annotations

import time
from typing import Any

import boto3

from qwen_edit.app import service
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.jobs import Job, JobSource


def start(
    stack,
    payload: dict[str, Any],
    capability: Capability = Capability.EDIT,
    tenant: str = "tenant-a",
    **settings: Any,
) -> Job:
    ctx = stack.ctx
    if settings:
        ctx = ctx.with_settings(**settings)
    return service.accept(
        ctx,
        service.validate(ctx, capability, payload, tenant=tenant),
        tenant=tenant,
        source=JobSource.API,
    )


def execution_arn(stack, job_id: str) -> str:
    return stack.ctx.executions.execution_arn(job_id)


def wait_execution(stack, job_id: str, timeout: float = 90) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        described = sfn.describe_execution(executionArn=execution_arn(stack, job_id))
        if described["status"] != "RUNNING":
            return described
        assert time.monotonic() < deadline, f"execution of {job_id} still running"
        time.sleep(0.2)


def wait_until(condition, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def history(stack, job_id: str) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions")
    events, token = [], None
    while True:
        page = sfn.get_execution_history(
            executionArn=execution_arn(stack, job_id),
            maxResults=1000,
            **({"nextToken": token} if token else {}),
        )
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return events


def billed_transitions(events: list[dict[str, Any]]) -> int:
    """Step Functions bills every state entered and every retry of a Task."""
    entered = sum(1 for e in events if e["type"].endswith("StateEntered"))
    tasks_entered = sum(1 for e in events if e["type"] == "TaskStateEntered")
    scheduled = sum(1 for e in events if e["type"] == "LambdaFunctionScheduled")
    return entered + (scheduled - tasks_entered)


def job_of(stack, job_id: str) -> Job:
    return stack.ctx.jobs.get(job_id)
