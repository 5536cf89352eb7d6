"""Multi-step jobs (`then`): validated whole at submission, run call by call in one workflow."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from qwen_edit.app import service, workflow
from qwen_edit.app.workflow import AdmitRequest, Failure, Submission, WorkflowState
from qwen_edit.context import Context
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.dispatch import QueueEntry
from qwen_edit.domain.errors import InvalidRequest, JobFailed, QwenEditError, TaskPending
from qwen_edit.domain.jobs import Job, JobSource, JobStatus, Lane, now_utc
from qwen_edit.domain.pricing import Prices
from qwen_edit.domain.provider import TaskStatus
from qwen_edit.domain.usage import GroupBy, JobUsage, report, window

from .fakes import Fakes, http_error, present, run, succeeded, task, tiny_png

GENERATE = {"model": "qwen-image-plus", "prompt": "a product shot of a teapot"}
WHITE = {"model": "qwen-image-edit-plus", "prompt": "put it on a white background"}
CAPTION = {"model": "qwen-image-edit-plus", "prompt": "add the caption 'Tea time'"}


def accept(ctx: Context, payload: dict[str, Any]) -> Job:
    capability = Capability.EDIT if "images" in payload else Capability.TEXT_TO_IMAGE
    valid = service.validate(ctx, capability, payload, tenant="tenant-a")
    job, _room = service.accept(ctx, valid, tenant="tenant-a", source=JobSource.API)
    return job


def refused(ctx: Context, payload: dict[str, Any]) -> set[tuple[str, str]]:
    with pytest.raises(InvalidRequest) as error:
        service.validate(ctx, Capability.TEXT_TO_IMAGE, payload, tenant="tenant-a")
    return {(d["field"], d["rule"]) for d in error.value.details}


def _failed(ctx: Context, job_id: str, error: str, cause: str) -> Job:
    failure = Failure(Error=error, Cause=json.dumps({"errorMessage": cause}))
    workflow.record_failure(ctx, WorkflowState(job_id=job_id, failure=failure))
    workflow.notify(ctx, WorkflowState(job_id=job_id))
    return ctx.jobs.get(job_id)


def drive(ctx: Context, fakes: Fakes, job_id: str, *, calls: int = 20) -> Job:
    """The job's workflow on the fakes, state by state as statemachine/job.asl.json runs it,
    for at most `calls` provider calls."""
    for call in range(calls):
        token = f"token-{job_id}-{call}"
        try:
            workflow.admit(ctx, AdmitRequest(job_id=job_id, task_token=token))
        except QwenEditError as error:
            return _failed(ctx, job_id, type(error).__name__, str(error))
        run(ctx)
        if token in fakes.callbacks.failed:
            error_name, cause = fakes.callbacks.failed[token]
            return _failed(ctx, job_id, error_name, json.loads(cause)["errorMessage"])
        submission = Submission.model_validate(fakes.callbacks.succeeded[token])
        state = WorkflowState(job_id=job_id, submission=submission)
        while submission.task_id is not None:
            try:
                submission = workflow.poll(ctx, state)
            except TaskPending:
                continue
            except JobFailed as failed:
                return _failed(ctx, job_id, "JobFailed", str(failed))
        stored = workflow.store(ctx, WorkflowState(job_id=job_id, submission=submission))
        if not stored.more:
            workflow.notify(ctx, WorkflowState(job_id=job_id))
            return ctx.jobs.get(job_id)
    return ctx.jobs.get(job_id)


# ---- validation -----------------------------------------------------------------------------


def test_a_step_that_could_never_run_is_refused_by_name(ctx: Context, fakes: Fakes) -> None:
    # qwen-image-plus only generates: it cannot edit the previous step's output.
    payload = {**GENERATE, "then": [WHITE, {**CAPTION, "model": "qwen-image-plus"}]}
    assert refused(ctx, payload) == {("then[1].model", "capability")}
    assert fakes.provider.calls == 0 and not fakes.jobs._records


def test_every_step_keeps_its_own_models_rules(ctx: Context) -> None:
    payload = {
        **GENERATE,
        "then": [
            {**WHITE, "n": 7},
            {**CAPTION, "model": "qwen-image-ultra"},
            {**CAPTION, "model": "qwen-image-edit", "size": "1024*1024"},
        ],
    }
    assert refused(ctx, payload) == {
        ("then[0].n", "range"),
        ("then[1].model", "known-model"),
        ("then[2].size", "not-settable"),
    }
    # The shape first, as for the request itself.
    assert refused(ctx, {**GENERATE, "then": [{"prompt": " ", "strength": 1}]}) == {
        ("then[0].prompt", "value_error"),
        ("then[0].strength", "unknown-field"),
    }


def test_a_chain_is_at_most_four_steps_and_sixteen_images(ctx: Context) -> None:
    assert refused(ctx, {**GENERATE, "then": [WHITE] * 5}) == {("then", "too_long")}
    fanned = {**WHITE, "n": 3, "fan_out": True}
    # 1, then 3, then 3 × 3 fanned out, then 9 × 3: 40 images at worst.
    assert refused(ctx, {**GENERATE, "then": [{**WHITE, "n": 3}, fanned, fanned]}) == {
        ("then", "max-images")
    }


def test_steps_without_a_model_edit_with_the_default_edit_model(ctx: Context) -> None:
    job = accept(ctx, {**GENERATE, "then": [{"prompt": "make it blue"}]})
    assert job.models == ["qwen-image-plus", "qwen-image-edit-plus"]
    assert job.request["then"] == [{"model": "qwen-image-edit-plus", "prompt": "make it blue"}]


# ---- running -----------------------------------------------------------------------------------


def test_a_three_step_chain_edits_each_output_in_turn(ctx: Context, fakes: Fakes) -> None:
    job = accept(ctx, {**GENERATE, "then": [WHITE, {**CAPTION, "n": 2}]})
    assert job.public()["steps"][0]["status"] == "queued"
    done = drive(ctx, fakes, job.id)

    assert done.status is JobStatus.SUCCEEDED
    requests = [request for request, _ in fakes.provider.submitted]
    assert [r.model for r in requests] == ["qwen-image-plus", *["qwen-image-edit-plus"] * 2]
    assert [r.prompt for r in requests] == [GENERATE["prompt"], WHITE["prompt"], CAPTION["prompt"]]
    # Each edit reads the previous step's stored output (presigned for the provider).
    assert f"results/{job.id}/step0/0.png" in requests[1].images[0]
    assert f"results/{job.id}/step1/0.png" in requests[2].images[0]
    view = done.public()
    assert [s["status"] for s in view["steps"]] == ["succeeded"] * 3
    assert [len(s["outputs"]) for s in view["steps"]] == [1, 1, 2]
    assert view["outputs"] == view["steps"][2]["outputs"]
    assert [o["s3_uri"].rsplit("/", 1)[1] for o in view["outputs"]] == ["0.png", "1.png"]
    assert view["usage"]["image_count"] == 4  # every step's images
    assert [e["detail"] for e in view["events"] if e["step"] == "stored"] == [
        "step 0: 1 image(s)",
        "step 1: 1 image(s)",
        "step 2: 2 image(s)",
    ]
    assert len(fakes.events.published) == 1  # one job, announced once


def test_fan_out_edits_every_output_of_the_step_before(ctx: Context, fakes: Fakes) -> None:
    job = accept(
        ctx,
        {
            **WHITE,
            "images": [_uploaded(ctx, fakes)],
            "n": 2,
            "then": [{**CAPTION, "fan_out": True}],
        },
    )
    done = drive(ctx, fakes, job.id)
    requests = [request for request, _ in fakes.provider.submitted]
    assert len(requests) == 3  # the first edit, then one per output of it
    assert [r.images[0].split("?")[0].rsplit("/", 1)[1] for r in requests[1:]] == [
        "0.png",
        "1.png",
    ]
    assert [o.s3_uri.rsplit("/", 1)[1] for o in done.outputs] == ["0.png", "1.png"]


def test_a_failed_second_step_fails_the_job_and_keeps_the_first(ctx: Context, fakes: Fakes) -> None:
    job = accept(ctx, {**GENERATE, "then": [WHITE, CAPTION]})
    fakes.provider.submits.extend(
        [task(TaskStatus.PENDING), http_error(400, "DataInspectionFailed", "unsafe output")]
    )
    done = drive(ctx, fakes, job.id)

    assert done.status is JobStatus.FAILED
    assert done.error is not None and done.error.code == "DataInspectionFailed"
    assert done.error.step == 1 and done.error.message.startswith("step 1 (qwen-image-edit-plus)")
    steps = done.public()["steps"]
    assert [s["status"] for s in steps] == ["succeeded", "failed", "skipped"]
    assert steps[0]["outputs"] and steps[1]["error"]["code"] == "DataInspectionFailed"
    assert fakes.objects.get("out", f"results/{job.id}/step0/0.png")
    assert fakes.events.detail_types == ["Job Failed"]


def test_a_cancel_between_steps_stops_before_the_next(ctx: Context, fakes: Fakes) -> None:
    job = accept(ctx, {**GENERATE, "then": [WHITE, CAPTION]})
    first = drive(ctx, fakes, job.id, calls=1)
    assert first.status is JobStatus.RUNNING and first.cursor and first.cursor.step == 1
    service.cancel(ctx, job.id, "tenant-a")
    done = drive(ctx, fakes, job.id)  # its workflow, if it ran on: Admit refuses

    assert done.status is JobStatus.CANCELED and len(fakes.provider.submitted) == 1
    assert [s["status"] for s in done.public()["steps"]] == ["succeeded", "canceled", "skipped"]


def test_a_start_deadline_is_the_first_calls_only(ctx: Context, fakes: Fakes) -> None:
    job = accept(ctx, {**GENERATE, "cancel_after": 60, "then": [WHITE]})
    drive(ctx, fakes, job.id, calls=1)
    passed = (now_utc() - timedelta(seconds=1)).isoformat()
    fakes.jobs.update(job.id, now_utc(), start_by=passed)  # the first call started in time
    assert drive(ctx, fakes, job.id).status is JobStatus.SUCCEEDED


def test_a_steps_leftover_queue_entry_gives_the_next_step_a_fresh_one(
    ctx: Context, fakes: Fakes
) -> None:
    job = accept(ctx, {**GENERATE, "then": [WHITE]})
    workflow.admit(ctx, AdmitRequest(job_id=job.id, task_token="t0"))
    run(ctx)
    # The dispatcher answered step 0 and died before removing its entry (claimed, 3 calls).
    stale = QueueEntry(
        job_id=job.id,
        tenant="tenant-a",
        family="qwen-image-plus",
        lane=Lane.INTERACTIVE,
        enqueued_at=0,
        deadline_at=9e9,
        start_by=1.0,
        calls=3,
        claimed_by=7,
        claimed_at=0,
    )
    fakes.queue.items[("tenant-a", job.id)] = (stale, "t0")
    submission = Submission.model_validate(fakes.callbacks.succeeded["t0"])
    result = workflow.poll(ctx, WorkflowState(job_id=job.id, submission=submission))
    assert workflow.store(ctx, WorkflowState(job_id=job.id, submission=result)).more
    workflow.admit(ctx, AdmitRequest(job_id=job.id, task_token="t1"))
    fresh = present(fakes.queue.entry(job.id))
    assert (fresh.family, fresh.calls, fresh.claimed_by, fresh.start_by) == (
        "qwen-image-edit-plus",
        0,
        None,
        None,
    )


def test_a_retried_store_of_a_call_stored_already_goes_on(ctx: Context, fakes: Fakes) -> None:
    job = accept(ctx, {**GENERATE, "then": [WHITE]})
    workflow.admit(ctx, AdmitRequest(job_id=job.id, task_token="t"))
    run(ctx)
    submission = Submission.model_validate(fakes.callbacks.succeeded["t"])
    result = workflow.poll(ctx, WorkflowState(job_id=job.id, submission=submission))
    state = WorkflowState(job_id=job.id, submission=result)
    assert workflow.store(ctx, state).more
    puts = len(fakes.objects.objects)
    assert workflow.store(ctx, state).more  # its Lambda died before answering: again
    assert len(fakes.objects.objects) == puts and ctx.jobs.get(job.id).cursor.step == 1


def test_usage_counts_every_steps_images_at_its_models_price(ctx: Context, fakes: Fakes) -> None:
    job = accept(ctx, {**GENERATE, "then": [WHITE, CAPTION]})
    fakes.provider.submits.extend([task(TaskStatus.PENDING), succeeded(), http_error(400)])
    drive(ctx, fakes, job.id)
    usage = JobUsage.of(ctx.jobs.get(job.id).model_dump(mode="json"))
    # Failed at its last step: the two before it were made, and billed.
    assert usage.images_by_model == {"qwen-image-plus": 1, "qwen-image-edit-plus": 1}
    per_image = {"qwen-image-plus": 0.03, "qwen-image-edit-plus": 0.2}
    prices = Prices(currency="USD", per_image=per_image)
    span = window(None, None, now_utc() + timedelta(minutes=1))
    totals = report([usage], span, GroupBy.MODEL, prices).totals
    assert totals.images == 2 and totals.estimated_cost == pytest.approx(0.23)


def _uploaded(ctx: Context, fakes: Fakes) -> str:
    answer = service.new_upload(ctx, "tenant-a", "image/png", None)
    bucket, key = answer["image"].removeprefix("s3://").split("/", 1)
    fakes.objects.put(bucket, key, tiny_png(), "image/png")
    return str(answer["image"])
