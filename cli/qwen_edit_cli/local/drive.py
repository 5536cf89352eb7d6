"""Driving the in-process stack (in_process_stack) as the tests and the benchmarks do: start jobs,
call the API function with API Gateway proxy events built from events/api-*.json, wait for
executions, and read their histories."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import boto3

from qwen_edit.app import service
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.jobs import Job, JobSource
from qwen_edit_cli.local.lambdas import FakeLambdaContext
from qwen_edit_cli.local.stack import LocalStack
from qwen_edit_cli.local.template import ROOT

T = TypeVar("T")


def start(
    stack: LocalStack,
    payload: dict[str, Any],
    capability: Capability = Capability.EDIT,
    tenant: str = "tenant-a",
    **settings: Any,
) -> Job:
    ctx = stack.ctx
    if settings:
        ctx = ctx.with_settings(**settings)
    job, _room = service.accept(
        ctx,
        service.validate(ctx, capability, payload, tenant=tenant),
        tenant=tenant,
        source=JobSource.API,
    )
    return job


def execution_arn(stack: LocalStack, job_id: str) -> str:
    return f"{stack.state_machine_arn.replace(':stateMachine:', ':execution:')}:{job_id}"


def wait_execution(stack: LocalStack, job_id: str, timeout: float = 90) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sfn.describe_execution(
            executionArn=execution_arn(stack, job_id)
        )
        if described["status"] != "RUNNING":
            return described
        if time.monotonic() > deadline:
            raise TimeoutError(f"execution of {job_id} still running after {timeout} s")
        time.sleep(0.2)


def wait_until(condition: Callable[[], T], timeout: float = 30, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


def history(stack: LocalStack, job_id: str) -> list[dict[str, Any]]:
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
    scheduled = sum(1 for e in events if e["type"] in ("LambdaFunctionScheduled", "TaskScheduled"))
    return entered + (scheduled - tasks_entered)


def job_of(stack: LocalStack, job_id: str) -> Job:
    return stack.ctx.jobs.get(job_id)


_MISSING = object()


class ApiAnswer:
    def __init__(self, raw: dict[str, Any]):
        self.status = raw["statusCode"]
        headers = raw.get("multiValueHeaders") or {}
        self.headers = {k: v[0] for k, v in headers.items()} | (raw.get("headers") or {})
        self.body = json.loads(raw["body"]) if raw.get("body") else None

    def __repr__(self) -> str:
        return f"<{self.status} {self.body}>"


def call(
    stack: LocalStack,
    sample: str,
    *,
    body: Any = _MISSING,
    path: str | None = None,
    tenant: str | None = "tenant-a",
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> ApiAnswer:
    event = json.loads((ROOT / "events" / f"{sample}.json").read_text())
    event["headers"].pop("Idempotency-Key", None)
    if body is not _MISSING:
        event["body"] = body if isinstance(body, str) or body is None else json.dumps(body)
    if path is not None:
        event["path"] = path
    event["headers"].update(headers or {})
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in (query or {}).items()} or None
    event["requestContext"]["identity"]["apiKeyId"] = tenant
    function = stack.physical["ApiFunction"]  # through the dispatcher: counted like any call
    return ApiAnswer(stack.dispatcher.call(function, event, FakeLambdaContext(function, function)))
