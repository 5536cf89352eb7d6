"""Traces: the job store's writes, S3 puts and provider calls are spans, each about the job its
thread works for (FakeTracing records them; the X-Ray adapter has its own test in
tests/integration/test_tracing_xray.py)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from qwen_edit.adapters.tracing import NoTracing, enabled, traced
from qwen_edit.app import service, uploads, workflow
from qwen_edit.app.workflow import Failure, Submission, WorkflowState
from qwen_edit.context import Context
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.errors import JobFailed
from qwen_edit.domain.jobs import JobStatus, ProviderInfo, now_utc
from qwen_edit.domain.provider import ProviderRequest, ProviderTask, TaskStatus

from .fakes import (
    Fakes,
    FakeTracing,
    ScriptedProvider,
    Span,
    a_job,
    fake_context,
    http_error,
    queued,
    run,
    task,
)

Traced = tuple[Context, Fakes, FakeTracing]


@pytest.fixture
def traced_context() -> Traced:
    tracing = FakeTracing()
    ctx, fakes = fake_context(tracing=tracing)
    return ctx, fakes, tracing


def test_a_jobs_call_copies_and_writes_are_spans_about_it(traced_context: Traced) -> None:
    ctx, fakes, tracing = traced_context
    job = queued(fakes)
    run(ctx)  # the dispatcher's worker thread sends the call
    result = Submission(**fakes.callbacks.succeeded[f"token-{job.id}"])
    workflow.store(ctx, WorkflowState(job_id=job.id, submission=result))
    assert [span.name for span in tracing.spans] == [
        "dynamodb.transition",  # running
        "dynamodb.update",  # the call, recorded before it is sent
        "provider.submit",
        "dynamodb.update",  # its answer
        "dynamodb.note",  # the timeline: submitted
        "provider.download",
        "s3.put",  # the result image
        "dynamodb.transition",  # succeeded
        "dynamodb.note",  # the timeline: stored
        "s3.put",  # job.json
    ]
    assert {(span.job_id, span.model, span.error) for span in tracing.spans} == {
        (job.id, "qwen-image-edit-plus", None)
    }


def test_admit_queues_the_job_in_a_span_about_it(traced_context: Traced) -> None:
    ctx, fakes, tracing = traced_context
    job = a_job()
    fakes.jobs.create(job)
    workflow.admit(ctx, workflow.AdmitRequest(job_id=job.id, task_token="token-1"))
    assert tracing.spans == [
        Span("dynamodb.queue.put", job.id, job.model),
        Span("dynamodb.note", job.id, job.model),  # the timeline: admitted
    ]


def test_a_poll_and_the_failure_it_leads_to_are_spans_about_the_job(traced_context: Traced) -> None:
    ctx, fakes, tracing = traced_context
    job = queued(fakes, model="qwen-image-plus", capability=Capability.TEXT_TO_IMAGE)
    run(ctx)
    fakes.provider.fetches.append(task(TaskStatus.FAILED, error_code="DataInspectionFailed"))
    state = WorkflowState(job_id=job.id, submission=Submission(task_id="task-1"))
    with pytest.raises(JobFailed):
        workflow.poll(ctx, state)
    assert tracing.spans[-2:] == [
        Span("provider.fetch", job.id, "qwen-image-plus"),
        Span("dynamodb.note", job.id, "qwen-image-plus"),  # counted, with what it said
    ]
    tracing.spans.clear()
    workflow.record_failure(ctx, state.model_copy(update={"failure": Failure(Error="JobFailed")}))
    assert tracing.spans == [
        Span("dynamodb.transition", job.id, "qwen-image-plus"),
        Span("dynamodb.note", job.id, "qwen-image-plus"),
        Span("s3.put", job.id, "qwen-image-plus"),
    ]


def test_an_error_is_recorded_on_its_span_and_reaches_the_use_case_unchanged(
    traced_context: Traced,
) -> None:
    ctx, fakes, tracing = traced_context
    job = queued(fakes)
    fakes.provider.submits.append(http_error(400, "InvalidParameter"))
    run(ctx)
    assert tracing.named("provider.submit") == [
        Span("provider.submit", job.id, job.model, error="ProviderError")
    ]
    assert fakes.callbacks.failed[f"token-{job.id}"][0] == "JobFailed"  # as without traces


class MeetingProvider(ScriptedProvider):
    """Each submit waits until the other job's is sent too: both calls are in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.both_sent = threading.Barrier(2, timeout=10)

    def submit(self, request: ProviderRequest, *, asynchronous: bool) -> ProviderTask:
        self.both_sent.wait()
        return super().submit(request, asynchronous=asynchronous)


def test_two_jobs_in_two_worker_threads_each_get_their_own_annotations() -> None:
    tracing = FakeTracing()
    ctx, fakes = fake_context(tracing=tracing, provider=MeetingProvider())
    first = queued(fakes, tenant="tenant-a", model="qwen-image-edit-plus")
    second = queued(fakes, tenant="tenant-b", model="qwen-image-edit")
    run(ctx)
    assert fakes.provider.calls == 2
    sent = {(span.job_id, span.model) for span in tracing.named("provider.submit")}
    assert sent == {(first.id, first.model), (second.id, second.model)}
    for job in (first, second):  # every write of each worker is about its own job
        writes = [s for s in tracing.spans if s.name.startswith("dynamodb.") and s.job_id == job.id]
        assert [s.model for s in writes] == [job.model] * 4  # running, call, answer, timeline


def test_a_cancel_is_traced_as_the_job_it_cancels(traced_context: Traced) -> None:
    ctx, fakes, tracing = traced_context
    job = a_job(model="qwen-image-plus", capability=Capability.TEXT_TO_IMAGE)
    fakes.jobs.create(job)
    fakes.jobs.transition(job.id, JobStatus.RUNNING, now_utc())
    fakes.jobs.update(job.id, now_utc(), provider=ProviderInfo(name="dashscope", task_id="t-1"))
    service.cancel(ctx, job.id, job.tenant)
    assert tracing.spans == [
        Span("dynamodb.transition", job.id, job.model),
        Span("dynamodb.note", job.id, job.model),  # the timeline: canceled
        Span("s3.put", job.id, job.model),
        Span("dynamodb.note", job.id, job.model),  # notified
        Span("provider.cancel", job.id, job.model),  # last: it may take seconds
    ]


def test_a_rejected_upload_is_traced_under_the_job_id_it_would_have_had(
    traced_context: Traced,
) -> None:
    ctx, _, tracing = traced_context
    upload = uploads.Upload(bucket="in", key="inbox/notes.txt", size=5, identity="v1")
    assert uploads.handle(ctx, upload) is None
    assert tracing.spans == [Span("s3.put", uploads.upload_job_id(upload), None)]


def test_with_tracing_off_no_port_is_wrapped() -> None:
    port = object()
    assert traced(NoTracing(), "objects", port) is port
    ctx, fakes = fake_context()
    assert ctx.jobs is fakes.jobs and ctx.objects is fakes.objects


LAMBDA = {
    "LAMBDA_TASK_ROOT": "/var/task",
    "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793",
}


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        (LAMBDA, True),
        ({**LAMBDA, "POWERTOOLS_TRACE_DISABLED": "true"}, False),
        ({**LAMBDA, "POWERTOOLS_TRACE_DISABLED": "false"}, True),
        ({**LAMBDA, "AWS_SAM_LOCAL": "true"}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task"}, False),  # no trace header: tracing is not active
        ({"_X_AMZN_TRACE_ID": LAMBDA["_X_AMZN_TRACE_ID"]}, False),  # not in Lambda
        ({}, False),  # tests, the local stack, the CLI
    ],
)
def test_tracing_is_on_only_in_lambda_with_a_trace_header(environ: Any, on: bool) -> None:
    assert enabled(environ) is on
