"""The numbers an operator graphs: each use case counts what it did, with few, bounded
dimensions (a model family, an outcome, a reason), never a job id or a tenant."""

from __future__ import annotations

from datetime import timedelta

import pytest

from qwen_edit.app import lifecycle, service, workflow
from qwen_edit.app.workflow import Submission, WorkflowState
from qwen_edit.context import Context
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.errors import TaskPending
from qwen_edit.domain.jobs import JobError, JobSource, JobStatus, ProviderCall, now_utc
from qwen_edit.domain.provider import ProviderError

from .fakes import Fakes, a_job, fake_context, http_error, png_data_url, queued, run

EDIT = {"model": "qwen-image-edit-plus", "prompt": "add a red scarf"}
FAMILY = "qwen-image-edit-plus"


def test_an_accepted_job_is_counted_by_family_and_source(ctx: Context, fakes: Fakes) -> None:
    valid = service.validate(
        ctx, Capability.EDIT, {**EDIT, "images": [png_data_url()]}, tenant="tenant-a"
    )
    service.accept(ctx, valid, tenant="tenant-a", source=JobSource.API)
    assert fakes.metrics.named("JobsAccepted") == [(1, {"Family": FAMILY, "Source": "api"})]


def test_a_finished_job_is_counted_and_timed(ctx: Context, fakes: Fakes) -> None:
    created = now_utc() - timedelta(seconds=30)
    sent = created + timedelta(seconds=20)
    job = a_job(created_at=created).model_copy(
        update={
            "status": JobStatus.FAILED,
            "completed_at": sent + timedelta(seconds=5),
            "error": JobError(code="Throttling.RateQuota", message="slow down"),
            "provider_call": ProviderCall(attempt=0, sent_at=sent, answered=True),
            "polls": 3,
        }
    )
    lifecycle.announce(ctx, job)
    assert fakes.metrics.named("PollsPerJob") == [(3, {"Family": FAMILY})]
    [(_, finished)] = fakes.metrics.named("JobsFinished")
    assert finished == {"Family": FAMILY, "Status": "failed", "Error": "Throttling"}
    assert [v for v, _ in fakes.metrics.named("EndToEndSeconds")] == [pytest.approx(25)]
    assert [v for v, _ in fakes.metrics.named("QueueSeconds")] == [pytest.approx(20)]
    assert [v for v, _ in fakes.metrics.named("ProviderSeconds")] == [pytest.approx(5)]


@pytest.mark.parametrize(
    "error, answer",
    [
        (http_error(429, "Throttling.RateQuota"), "rate-quota-429"),
        (http_error(429, "Throttling"), "busy-429"),
        (http_error(503, "ServiceUnavailable"), "5xx"),
        (http_error(400, "InvalidParameter"), "refused"),
        (ProviderError("ConnectionError", "refused", retryable=True), "not-sent"),
        (ProviderError("RequestTimeout", "x", retryable=True, outcome_unknown=True), "no-answer"),
    ],
)
def test_each_provider_call_is_counted_by_its_answer(
    ctx: Context, fakes: Fakes, error: ProviderError, answer: str
) -> None:
    ctx, fakes = fake_context(max_provider_attempts=1)  # one call, whatever it answers
    queued(fakes)
    fakes.provider.submits.append(error)
    run(ctx)
    assert fakes.metrics.named("ProviderCalls") == [(1, {"Family": FAMILY, "Answer": answer})]
    # The error rate's data point: a refusal is the request's fault, not the provider's.
    assert fakes.metrics.named("ProviderCallFailed") == [(int(answer != "refused"), {})]


def test_a_successful_call_and_each_poll_are_counted(ctx: Context, fakes: Fakes) -> None:
    job = queued(fakes, model="qwen-image-plus", capability=Capability.TEXT_TO_IMAGE)
    run(ctx)
    submitted = Submission(task_id=fakes.callbacks.succeeded[f"token-{job.id}"]["task_id"])
    workflow.poll(ctx, WorkflowState(job_id=job.id, submission=submitted))
    assert fakes.metrics.named("ProviderCalls") == [
        (1, {"Family": "qwen-image-plus", "Answer": "ok"})
    ]
    assert fakes.metrics.named("Polls") == [(1, {"Family": "qwen-image-plus"})]
    assert fakes.metrics.named("ProviderCallFailed") == [(0, {}), (0, {})]  # submit and poll


def test_a_failed_poll_counts_toward_the_provider_error_rate(ctx: Context, fakes: Fakes) -> None:
    job = queued(fakes, model="qwen-image-plus", capability=Capability.TEXT_TO_IMAGE)
    run(ctx)
    fakes.provider.fetches.append(http_error(503))
    with pytest.raises(TaskPending):
        workflow.poll(ctx, WorkflowState(job_id=job.id, submission=Submission(task_id="t")))
    assert fakes.metrics.named("ProviderCallFailed") == [(0, {}), (1, {})]
