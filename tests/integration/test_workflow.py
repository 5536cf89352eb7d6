"""The real definition in statemachine/ executed by moto's interpreter, the real handlers as the
Lambda tasks, the emulator as the provider (issue 3's list of paths)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from qwen_edit.app import service
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.errors import JobConflict
from qwen_edit.domain.jobs import JobStatus
from qwen_edit_cli.emulator.faults import LimitOverride
from qwen_edit_cli.local.drive import (
    billed_transitions,
    history,
    job_of,
    start,
    wait_execution,
    wait_until,
)
from qwen_edit_cli.local.samples import data_url, png_size

EDIT = {"model": "qwen-image-edit-plus", "prompt": "add a red scarf", "n": 2}


def edit(**fields):
    return {**EDIT, "images": [data_url("png", (800, 600))], **fields}


def output_object(stack, s3_uri: str) -> dict:
    bucket, key = s3_uri.removeprefix("s3://").split("/", 1)
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)


def test_sync_edit_succeeds_with_results_in_s3(stack):
    job = start(stack, edit())
    assert job.status is JobStatus.QUEUED and job.request["images"][0].startswith("s3://")
    assert wait_execution(stack, job.id)["status"] == "SUCCEEDED"
    done = job_of(stack, job.id)
    assert done.status is JobStatus.SUCCEEDED and done.completed_at and not done.error
    assert [o.s3_uri.rsplit("/", 2)[-2:] for o in done.outputs] == [
        [job.id, "0.png"],
        [job.id, "1.png"],
    ]
    for output in done.outputs:
        stored = output_object(stack, output.s3_uri)
        assert stored["ContentType"] == "image/png"
        assert png_size(stored["Body"].read()) == (output.width, output.height)
    assert done.usage.image_count == 2 and done.provider.request_id
    record = json.loads(
        output_object(stack, f"s3://{stack.physical['OutputBucket']}/results/{job.id}/job.json")[
            "Body"
        ].read()
    )
    assert record["status"] == "succeeded" and "tenant" not in record
    events = history(stack, job.id)
    # Admit (waits on its token), IsAsyncTask, Store, HasNextStep, Notify
    assert billed_transitions(events) == 5
    assert stack.emulator.fake.counters["calls.multimodal-generation"] == 1


def test_async_text_to_image_succeeds_after_polls(stack):
    stack.emulator.fake.faults.pending_s = 1.0
    stack.emulator.fake.faults.running_s = 1.5
    job = start(
        stack, {"model": "qwen-image-plus", "prompt": "a lighthouse"}, Capability.TEXT_TO_IMAGE
    )
    assert wait_execution(stack, job.id)["status"] == "SUCCEEDED"
    done = job_of(stack, job.id)
    assert done.status is JobStatus.SUCCEEDED and done.provider.task_id
    assert (done.outputs[0].width, done.outputs[0].height) == (1024, 1024)
    polls = stack.emulator.fake.counters["calls.task-fetch"]
    assert polls >= 2
    events = history(stack, job.id)
    # 7 states entered (Admit, IsAsyncTask, WaitForTask, Poll, Store, HasNextStep, Notify) and
    # one Poll retry for every poll after the first.
    assert billed_transitions(events) == 7 + (polls - 1)


def test_a_three_step_chain_runs_in_one_execution(stack):
    job = start(
        stack,
        {
            "model": "qwen-image-plus",
            "prompt": "a teapot, product shot",
            "then": [
                {"prompt": "put it on a white background"},
                {"model": "qwen-image-edit-plus", "prompt": "add the caption 'Tea'", "n": 2},
            ],
        },
        Capability.TEXT_TO_IMAGE,
    )
    assert wait_execution(stack, job.id)["status"] == "SUCCEEDED"
    done = job_of(stack, job.id)
    assert done.status is JobStatus.SUCCEEDED, done.error
    steps = done.public()["steps"]
    assert [(s["model"], s["status"], len(s["outputs"])) for s in steps] == [
        ("qwen-image-plus", "succeeded", 1),
        ("qwen-image-edit-plus", "succeeded", 1),
        ("qwen-image-edit-plus", "succeeded", 2),
    ]
    prefix = f"results/{job.id}/"
    assert [o.s3_uri.split(prefix)[1] for o in done.outputs] == ["0.png", "1.png"]
    for step in steps:
        for output in step["outputs"]:
            assert output_object(stack, output["s3_uri"])["ContentType"] == "image/png"
    assert stack.emulator.fake.counters["calls.multimodal-generation"] == 2
    assert len(history(stack, job.id)) > 0 and done.usage.image_count == 4


def test_final_provider_error_fails_the_job_once(stack):
    stack.emulator.fake.faults.final_error_rate = 1.0
    job = start(stack, edit())
    assert wait_execution(stack, job.id)["status"] == "SUCCEEDED"  # the workflow handled it
    failed = job_of(stack, job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error.code == "DataInspectionFailed"
    assert "inappropriate" in failed.error.message
    assert stack.emulator.fake.counters["calls.multimodal-generation"] == 1  # never retried


@pytest.mark.parametrize("fault", ["throttle_rate", "server_error_rate"])
def test_retryable_errors_back_off_then_succeed(stack, fault):
    setattr(stack.emulator.fake.faults, fault, 1.0)
    job = start(stack, edit(n=1))
    counter = "injected_429" if fault == "throttle_rate" else "injected_5xx"
    wait_until(lambda: stack.emulator.fake.counters[counter] >= 2, what="two refusals")
    setattr(stack.emulator.fake.faults, fault, 0.0)
    assert wait_execution(stack, job.id)["status"] == "SUCCEEDED"
    assert job_of(stack, job.id).status is JobStatus.SUCCEEDED
    assert stack.emulator.fake.counters["calls.multimodal-generation"] >= 3


def test_failed_task_fails_the_job_with_the_provider_code(stack):
    stack.emulator.fake.faults.task_failure_rate = 1.0
    job = start(stack, {"model": "qwen-image", "prompt": "x"}, Capability.TEXT_TO_IMAGE)
    wait_execution(stack, job.id)
    failed = job_of(stack, job.id)
    assert failed.status is JobStatus.FAILED
    assert (failed.error.code, failed.error.message) == (
        "InternalError.Algo",
        "Algorithm process error.",
    )


def test_result_url_expired_before_store(stack):
    stack.emulator.fake.faults.result_ttl_s = 0
    job = start(stack, edit())
    wait_execution(stack, job.id)
    failed = job_of(stack, job.id)
    assert failed.status is JobStatus.FAILED and failed.error.code == "ResultExpired"
    assert not failed.outputs


def test_deadline_fails_the_job_with_a_clear_code(stack):
    stack.emulator.fake.faults.running_s = 60
    job = start(
        stack,
        {"model": "qwen-image-plus", "prompt": "slow"},
        Capability.TEXT_TO_IMAGE,
        job_deadline_seconds=3,
    )
    wait_execution(stack, job.id)
    failed = job_of(stack, job.id)
    assert failed.status is JobStatus.FAILED and failed.error.code == "DeadlineExceeded"
    assert "deadline" in failed.error.message


def test_cancel_while_pending_stops_everything(stack):
    stack.emulator.fake.faults.pending_s = 60
    job = start(
        stack, {"model": "qwen-image-plus", "prompt": "never mind"}, Capability.TEXT_TO_IMAGE
    )
    running = wait_until(lambda: (j := job_of(stack, job.id)).provider and j, what="a task id")
    canceled = service.cancel(stack.ctx, job.id, "tenant-a")
    assert canceled.status is JobStatus.CANCELED and canceled.error.code == "Canceled"
    # AWS says ABORTED. moto's interpreter, stopped while a Lambda task of the execution is in
    # flight, can end it FAILED instead (a race of its worker thread): either way it has ended.
    assert wait_execution(stack, job.id)["status"] in ("ABORTED", "FAILED")
    assert job_of(stack, job.id).status is JobStatus.CANCELED
    task = stack.ctx.provider(canceled_model_provider(canceled)).fetch(running.provider.task_id)
    assert task.status.value == "CANCELED"
    with pytest.raises(JobConflict):
        service.cancel(stack.ctx, job.id, "tenant-a")


def canceled_model_provider(job):
    from qwen_edit.domain.catalog import get_model

    return get_model(job.model).provider


def test_cancel_of_a_finished_job_is_a_conflict(stack):
    job = start(stack, edit(n=1))
    wait_execution(stack, job.id)
    with pytest.raises(JobConflict, match="succeeded"):
        service.cancel(stack.ctx, job.id, "tenant-a")


def test_the_same_job_started_twice_makes_one_execution(stack):
    job = start(stack, edit(n=1))
    stack.ctx.executions.start(job.id, {"job_id": job.id})  # while it runs: the same one
    wait_execution(stack, job.id)
    stack.ctx.executions.start(job.id, {"job_id": job.id})  # once finished: refused, swallowed
    executions = boto3.client("stepfunctions").list_executions(
        stateMachineArn=stack.state_machine_arn
    )["executions"]
    assert [e["name"] for e in executions] == [job.id]
    with pytest.raises(JobConflict):
        stack.ctx.jobs.create(job)


def test_a_burst_keeps_to_the_provider_limit(stack):
    """20 jobs at once on a 2-per-second family: all succeed, none twice. The emulator judges the
    limit by arrival time; on a loaded 2-core machine (one process runs moto, every handler and
    the emulator) a call can arrive late enough to meet the window of the next pair, so a rare
    429 is allowed: it is retried, and costs no job."""
    fake = stack.emulator.fake
    fake.faults.enforce_rate_limits = True
    fake.faults.rate_limits = {"qwen-image-edit-plus": LimitOverride(requests=2, per_seconds=1)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        jobs = list(pool.map(lambda i: start(stack, edit(n=1, seed=i)), range(20)))
    for job in jobs:
        assert wait_execution(stack, job.id, timeout=120)["status"] == "SUCCEEDED"
    assert all(job_of(stack, j.id).status is JobStatus.SUCCEEDED for j in jobs)
    calls = [c for c in fake.calls if c["route"] == "multimodal-generation"]
    accepted = [c for c in calls if c["status"] == 200]
    assert len(accepted) == 20 and fake.counters["rate_limited"] <= 2
    assert len(calls) == 20 + fake.counters["rate_limited"]


def test_async_concurrency_is_capped_at_two_tasks(stack):
    fake = stack.emulator.fake
    fake.faults.enforce_rate_limits = True
    fake.faults.running_s = 2.0
    jobs = [
        start(stack, {"model": "qwen-image", "prompt": f"p{i}"}, Capability.TEXT_TO_IMAGE)
        for i in range(4)
    ]
    for job in jobs:
        assert wait_execution(stack, job.id, timeout=120)["status"] == "SUCCEEDED"
    assert fake.counters["concurrency_limited"] == 0 and fake.counters["rate_limited"] == 0
    assert all(job_of(stack, j.id).status is JobStatus.SUCCEEDED for j in jobs)


def test_no_queue_entry_or_dispatcher_outlives_the_work(stack):
    job = start(stack, edit(n=1))
    assert wait_execution(stack, job.id)["status"] == "SUCCEEDED"
    assert stack.ctx.queue.entries() == []
    wait_until(lambda: not stack.ctx.dispatch_lease.held(time.time()), what="the lease freed")


def test_the_task_api_provider_runs_through_the_workflow(stack):
    job = start(stack, edit(model="qwen_image_edit_plus", n=2))
    assert wait_execution(stack, job.id)["status"] == "SUCCEEDED"
    done = job_of(stack, job.id)
    assert done.status is JobStatus.SUCCEEDED and done.provider.name == "task-api"
    assert done.provider.task_id and len(done.outputs) == 2
    assert stack.emulator.fake.counters["calls.task-api-create"] == 1
    assert stack.emulator.fake.counters["calls.task-api-fetch"] >= 1
