"""A request's own deadline (`deadline` or `cancel_after`): a job not started at the provider by
then ends canceled with DeadlineExceeded, at no provider cost; one already called runs on."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from qwen_edit.app import service, uploads, workflow
from qwen_edit.app.uploads import Upload
from qwen_edit.context import Context
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.errors import InvalidRequest, JobConflict
from qwen_edit.domain.jobs import JobSource, JobStatus, Step, now_utc

from .fakes import Fakes, png_data_url, present, queued, run, tiny_png

EDIT = {"prompt": "add a red scarf", "images": [png_data_url()]}


def rules(ctx: Context, **fields: object) -> list[tuple[str, str]]:
    with pytest.raises(InvalidRequest) as refused:
        service.validate(ctx, Capability.EDIT, {**EDIT, **fields}, tenant="tenant-a")
    return [(d["field"], d["rule"]) for d in refused.value.details]


def test_a_deadline_is_an_rfc_3339_time_in_the_future_or_seconds_never_both(
    ctx: Context,
) -> None:
    soon = (now_utc() + timedelta(minutes=5)).isoformat()
    assert rules(ctx, deadline="tomorrow") == [("deadline", "date-time")]
    assert rules(ctx, deadline="2026-11-26") == [("deadline", "date-time")]
    assert rules(ctx, deadline="2020-01-01T00:00:00Z") == [("deadline", "future")]
    assert rules(ctx, deadline=soon, cancel_after=60) == [("cancel_after", "one-deadline")]
    assert rules(ctx, cancel_after=0) == [("cancel_after", "greater_than_equal")]


def test_an_accepted_job_carries_when_it_must_have_started(ctx: Context, fakes: Fakes) -> None:
    valid = service.validate(ctx, Capability.EDIT, {**EDIT, "cancel_after": 90}, tenant="t")
    job, _room = service.accept(ctx, valid, tenant="t", source=JobSource.API)
    start_by = present(fakes.jobs.get(job.id).start_by)
    assert timedelta(seconds=89) < start_by - job.created_at < timedelta(seconds=91)
    assert "start_by" in job.public()  # clients see it


def test_a_job_past_its_deadline_at_admit_is_canceled_and_never_queued(
    ctx: Context, fakes: Fakes
) -> None:
    job = queued(fakes, start_by=now_utc() - timedelta(seconds=1))
    fakes.queue.items.clear()  # not yet in line: Admit is about to put it there
    with pytest.raises(JobConflict):
        workflow.admit(ctx, workflow.AdmitRequest(job_id=job.id, task_token="token-1"))
    missed(fakes, job.id)
    assert fakes.queue.items == {} and fakes.provider.calls == 0


def test_a_waiting_job_past_its_deadline_is_canceled_with_no_provider_call(
    ctx: Context, fakes: Fakes
) -> None:
    late = queued(fakes, start_by=now_utc() - timedelta(seconds=1))
    on_time = queued(fakes, start_by=now_utc() + timedelta(minutes=5))
    run(ctx)
    missed(fakes, late.id)
    error, cause = fakes.callbacks.failed[f"token-{late.id}"]
    assert error == "JobConflict"
    # The workflow's Catch: RecordFailure finds it final and writes its record; Notify tells.
    failure = workflow.Failure(Error=error, Cause=cause)
    workflow.record_failure(ctx, workflow.WorkflowState(job_id=late.id, failure=failure))
    assert fakes.jobs.get(late.id).status is JobStatus.CANCELED
    assert f"results/{late.id}/job.json" in fakes.objects.keys("out")
    assert fakes.provider.calls == 1 and f"token-{on_time.id}" in fakes.callbacks.succeeded


def test_a_job_already_at_the_provider_runs_to_its_end(ctx: Context, fakes: Fakes) -> None:
    job = queued(
        fakes,
        model="qwen-image-plus",
        capability=Capability.TEXT_TO_IMAGE,
        start_by=now_utc() + timedelta(minutes=1),
    )
    run(ctx)  # called in time: an async task at the provider
    fakes.jobs.update(job.id, now_utc(), start_by=now_utc() - timedelta(seconds=1))
    state = workflow.WorkflowState(job_id=job.id, submission=workflow.Submission(task_id="t"))
    workflow.store(ctx, state.model_copy(update={"submission": workflow.poll(ctx, state)}))
    assert fakes.jobs.get(job.id).status is JobStatus.SUCCEEDED


def test_an_upload_recipe_may_set_one_too(ctx: Context, fakes: Fakes) -> None:
    recipe = {"prompt": "Turn the photo into a watercolor", "cancel_after": 3600}
    fakes.objects.put("in", "recipes/w.json", json.dumps(recipe).encode(), "application/json")
    fakes.objects.put("in", "inbox/w/a.png", tiny_png(), "image/png")
    upload = Upload(bucket="in", key="inbox/w/a.png", size=len(tiny_png()), identity="v1")
    job = present(uploads.handle(ctx, upload))
    assert fakes.jobs.get(job.id).start_by is not None


def missed(fakes: Fakes, job_id: str) -> None:
    job = fakes.jobs.get(job_id)
    assert job.status is JobStatus.CANCELED and job.error
    assert job.error.code == "DeadlineExceeded" and "no provider call" in job.error.message
    assert job.events[-1].step is Step.CANCELED
