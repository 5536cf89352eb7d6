"""Spend caps reserved before admission, settled when the job ends (README "Budgets and
keys"), on fakes whose ledger keeps the DynamoDB adapter's promise under a lock."""

from __future__ import annotations

import contextlib
import json
import threading
from decimal import Decimal
from typing import Any

import pytest

from qwen_edit.app import intake, lifecycle, service, uploads, workflow
from qwen_edit.context import Context
from qwen_edit.domain.budgets import Period
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.errors import BudgetExceeded, InvalidRequest
from qwen_edit.domain.intake import RequestEvent
from qwen_edit.domain.jobs import (
    UPLOAD_TENANT,
    Job,
    JobError,
    JobOutput,
    JobSource,
    JobStatus,
    StepResult,
    now_utc,
)
from qwen_edit.domain.provider import Usage
from qwen_edit.domain.tenants import TenantSettings

from .fakes import Fakes, fake_context, tiny_png

PRICES = {
    "currency": "USD",
    "per_image": {"qwen-image-plus": 0.02, "qwen-image-edit-plus": 0.03},
}
TENANT = "tenant-a"


def wired(**settings: Any) -> tuple[Context, Fakes]:
    ctx, fakes = fake_context(model_prices=PRICES)
    if settings:
        fakes.tenants.put(TenantSettings.model_validate({"tenant": TENANT, **settings}))
    return ctx, fakes


def submit(ctx: Context, tenant: str = TENANT, **body: Any) -> Job:
    request = {"model": "qwen-image-plus", "prompt": "a lighthouse", **body}
    valid = service.validate(ctx, Capability.TEXT_TO_IMAGE, request, tenant=tenant)
    return service.accept(ctx, valid, tenant=tenant, source=JobSource.API)[0]


def month(fakes: Fakes, tenant: str = TENANT) -> tuple[Decimal, Decimal]:
    balance = fakes.budgets.balances(tenant, [Period.MONTH.id_at(now_utc())])[0]
    return balance.spent, balance.reserved


def end(ctx: Context, job: Job, status: JobStatus, **fields: Any) -> Job:
    """The job made final as the workflow would, then announced (Notify)."""
    if status is not JobStatus.CANCELED:
        ctx.jobs.transition(job.id, JobStatus.RUNNING, now_utc())
    ctx.jobs.transition(job.id, status, now_utc(), completed_at=now_utc(), **fields)
    workflow.notify(ctx, workflow.WorkflowState(job_id=job.id))
    return ctx.jobs.get(job.id)


def outputs(count: int) -> list[JobOutput]:
    return [JobOutput(s3_uri=f"s3://out/results/x/{i}.png") for i in range(count)]


def test_a_tenant_without_caps_reserves_nothing() -> None:
    ctx, fakes = wired()
    job = submit(ctx, n=4)
    assert job.budget is None and fakes.budgets.writes == 0
    end(ctx, job, JobStatus.SUCCEEDED, outputs=outputs(4), usage=Usage(image_count=4))
    assert fakes.budgets.items == {} and fakes.budgets.settled == set()


def test_the_worst_case_is_reserved_and_success_settles_to_the_billed_images() -> None:
    ctx, fakes = wired(monthly_cap=1)
    job = submit(ctx, n=4)
    assert job.budget is not None and job.budget.amount == Decimal("0.08")
    assert month(fakes) == (0, Decimal("0.08"))
    # partial success: 3 of the 4 images made (the provider bills those)
    end(ctx, job, JobStatus.SUCCEEDED, outputs=outputs(3), usage=Usage(image_count=3))
    assert month(fakes) == (Decimal("0.06"), 0)


def test_a_failed_or_canceled_job_costs_nothing() -> None:
    ctx, fakes = wired(monthly_cap=1)
    failed = submit(ctx, n=2)
    end(ctx, failed, JobStatus.FAILED, error=JobError(code="InternalError", message="no"))
    canceled = submit(ctx)
    service.cancel(ctx, canceled.id, TENANT)
    assert month(fakes) == (0, 0)


def test_a_cancel_whose_function_died_before_announcing_is_settled_by_reconcile() -> None:
    ctx, fakes = wired(monthly_cap=1)
    job = submit(ctx)
    ctx.jobs.transition(job.id, JobStatus.CANCELED, now_utc(), completed_at=now_utc())
    assert month(fakes) == (0, Decimal("0.02"))  # the cancel's function died here
    workflow.reconcile(ctx, job.id, "ABORTED", None)  # its execution's end, as EventBridge says
    assert month(fakes) == (0, 0) and fakes.events.detail_types == []  # settled, not announced
    workflow.reconcile(ctx, job.id, "ABORTED", None)
    assert month(fakes) == (0, 0)  # once


def test_a_chain_reserves_every_step_and_settles_the_steps_that_ran() -> None:
    ctx, fakes = wired(monthly_cap=5)
    job = submit(ctx, n=2, then=[{"prompt": "frame it", "n": 2, "fan_out": True}])
    # 2 images at 0.02, then 2 runs of n=2 edits at 0.03: 0.04 + 0.12
    assert job.budget is not None and job.budget.amount == Decimal("0.16")
    step0 = StepResult(model="qwen-image-plus", outputs=outputs(2), images=2)
    end(ctx, job, JobStatus.FAILED, step_results=[step0], error=JobError(code="X", message="x"))
    assert month(fakes) == (Decimal("0.04"), 0)


def test_settling_twice_settles_once() -> None:
    ctx, fakes = wired(monthly_cap=1)
    job = end(ctx, submit(ctx), JobStatus.SUCCEEDED, outputs=outputs(1), usage=Usage(image_count=1))
    workflow.notify(ctx, workflow.WorkflowState(job_id=job.id))  # a retried Notify
    lifecycle.announce(ctx, job)
    assert month(fakes) == (Decimal("0.02"), 0)


def test_over_the_cap_is_402_budget_exceeded_with_the_numbers() -> None:
    ctx, fakes = wired(monthly_cap=0.05)
    submit(ctx, n=2)
    with pytest.raises(BudgetExceeded) as refused:
        submit(ctx, n=1)
    assert refused.value.http_status == 402 and refused.value.code == "BudgetExceeded"
    [detail] = refused.value.details
    assert detail["cap"] == 0.05 and detail["spent"] == 0 and detail["reserved"] == 0.04
    assert detail["cost"] == 0.02 and detail["resets_at"].endswith("01T00:00:00Z")
    assert fakes.executions.started.keys() == {j.id for j in fakes.jobs.all()}  # one job
    assert month(fakes) == (0, Decimal("0.04"))


def test_a_daily_cap_refuses_within_the_months_room_and_writes_neither() -> None:
    ctx, fakes = wired(monthly_cap=10, daily_cap=0.03)
    submit(ctx)
    with pytest.raises(BudgetExceeded) as refused:
        submit(ctx)
    assert [d["period"][:3] for d in refused.value.details] == ["mon", "day"]
    assert "your daily spend cap has 0.01 left" in refused.value.message  # the one that refused
    assert month(fakes) == (0, Decimal("0.02"))


def test_a_capped_tenant_cannot_use_a_model_without_a_price() -> None:
    ctx, _ = wired(monthly_cap=1)
    with pytest.raises(InvalidRequest) as refused:
        submit(ctx, model="qwen-image-max")
    assert refused.value.details[0]["field"] == "model"
    assert refused.value.details[0]["rule"] == "priced"


def test_a_job_that_was_not_made_gives_its_reservation_back() -> None:
    ctx, fakes = wired(monthly_cap=1)
    fakes.executions.failure = RuntimeError("Step Functions is down")
    with pytest.raises(RuntimeError):
        submit(ctx)
    assert month(fakes) == (0, 0)


def test_concurrent_submissions_never_overspend() -> None:
    ctx, fakes = wired(monthly_cap=0.2)  # room for exactly 10 jobs of 0.02
    accepted: list[Job] = []
    barrier = threading.Barrier(20)

    def one() -> None:
        barrier.wait()
        with contextlib.suppress(BudgetExceeded):
            accepted.append(submit(ctx))

    threads = [threading.Thread(target=one) for _ in range(100)]
    for thread in threads[:20]:
        thread.start()
    for thread in threads[20:]:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(accepted) == 10
    spent, reserved = month(fakes)
    assert spent + reserved == Decimal("0.2")


def test_thresholds_are_announced_once_each() -> None:
    ctx, fakes = wired(monthly_cap=0.1)
    for _ in range(4):
        submit(ctx)  # 0.08: 80%
    assert [a.threshold for a in fakes.events.thresholds] == [80]
    submit(ctx)  # 0.10: 100%
    with pytest.raises(BudgetExceeded):
        submit(ctx)
    assert [a.threshold for a in fakes.events.thresholds] == [80, 100]
    alert = fakes.events.thresholds[1]
    assert (alert.tenant, alert.cap, alert.reserved, alert.currency) == (TENANT, 0.1, 0.1, "USD")


def test_a_tenant_with_a_webhook_hears_of_each_threshold_there_too() -> None:
    ctx, fakes = wired(monthly_cap=0.1, webhook_url="https://hooks.example.com/budget")
    for _ in range(4):
        submit(ctx)  # 0.08: 80%
    [(notice, delay)] = [(d, s) for d, s in fakes.outbox.sent if d.job_id is None]
    body = json.loads(notice.body)
    assert notice.url == "https://hooks.example.com/budget" and delay == 0
    assert body["type"] == "budget.threshold_reached" and body["data"]["threshold"] == 80
    assert notice.webhook_id == f"msg_budget_{TENANT}_month-{now_utc():%Y-%m}_80"


def test_a_refusal_for_want_of_room_is_the_100_percent_notice() -> None:
    ctx, fakes = wired(monthly_cap=0.05)
    submit(ctx, n=2)  # 0.04: 80%
    with pytest.raises(BudgetExceeded):
        submit(ctx, n=2)
    assert [a.threshold for a in fakes.events.thresholds] == [80, 100]


def test_observe_only_refuses_nothing_and_records_what_it_would_have() -> None:
    ctx, fakes = wired(monthly_cap=0.03, observe_only=True)
    submit(ctx)
    submit(ctx)  # over: accepted all the same
    assert len(fakes.jobs.all()) == 2
    assert fakes.metrics.named("BudgetWouldRefuse") == [(1, {})]
    [status] = service.usage(ctx, TENANT, start=None, end=None, group_by="day").budgets or []
    assert status.would_refuse == 1 and status.observe_only and status.reserved == 0.04


def test_usage_shows_cap_spent_reserved_and_reset() -> None:
    ctx, _ = wired(monthly_cap=1)
    job = submit(ctx, n=2)
    end(ctx, job, JobStatus.SUCCEEDED, outputs=outputs(1), usage=Usage(image_count=1))
    submit(ctx)
    [status] = service.usage(ctx, TENANT, start=None, end=None, group_by="day").budgets or []
    assert (status.cap, status.spent, status.reserved) == (1, 0.02, 0.02)
    assert status.resets_at == Period.MONTH.resets_at(now_utc())


def test_tenant_settings_set_the_lane_and_the_queue_cap() -> None:
    ctx, _ = wired(lane="batch", max_queued_jobs=7)
    job, room = service.accept(
        ctx,
        service.validate(ctx, Capability.TEXT_TO_IMAGE, {"prompt": "x"}, tenant=TENANT),
        tenant=TENANT,
        source=JobSource.API,
    )
    assert job.lane.value == "batch" and room.limit == 7


def test_an_upload_over_the_cap_gets_an_error_json_and_stays_replayable() -> None:
    ctx, fakes = fake_context(model_prices=PRICES)
    fakes.tenants.put(TenantSettings.model_validate({"tenant": UPLOAD_TENANT, "monthly_cap": 0}))
    fakes.objects.put("in", "recipes/r.json", b'{"prompt": "watercolor"}', "application/json")
    fakes.objects.put("in", "inbox/r/photo.png", tiny_png(), "image/png")
    upload = uploads.Upload(bucket="in", key="inbox/r/photo.png", size=100, identity="v1")
    assert uploads.handle(ctx, upload) is None
    rejection = fakes.objects.json("out", "outbox/r/photo.error.json")
    assert rejection["error"]["code"] == "BudgetExceeded"
    assert rejection["error"]["details"][0]["cap"] == 0
    assert fakes.objects.get("in", "inbox/r/photo.png") is not None  # the input stays
    # a raised cap, and a new version of the object (copied onto itself) makes the job
    fakes.tenants.put(TenantSettings.model_validate({"tenant": UPLOAD_TENANT, "monthly_cap": 1}))
    replay = upload.model_copy(update={"identity": "v2"})
    job = uploads.handle(ctx, replay)
    assert job is not None and job.budget is not None


def test_an_event_over_the_cap_is_a_job_rejected_with_the_same_numbers() -> None:
    sources = {"com.example.catalog": TENANT}
    ctx, fakes = fake_context(
        model_prices=PRICES,
        event_sources=",".join(sources),
        event_source_tenants=json.dumps(sources),
    )
    fakes.tenants.put(TenantSettings.model_validate({"tenant": TENANT, "monthly_cap": 0.01}))
    detail = {"model": "qwen-image-plus", "prompt": "a lighthouse", "correlation_id": "c-9"}
    event = RequestEvent(
        id="e-1", source="com.example.catalog", detail_type="Generation Requested", detail=detail
    )
    assert intake.submit(ctx, event) is None and fakes.jobs.all() == []
    [rejection] = fakes.events.rejected
    assert rejection.error.code == "BudgetExceeded" and rejection.correlation_id == "c-9"
    assert rejection.error.details[0]["cap"] == 0.01 and rejection.error.retryable
