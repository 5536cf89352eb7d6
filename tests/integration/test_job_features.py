"""The job API's features of hosted image APIs, end to end on the local stack: deadlines, retry
by id, and waiting without polling."""

from __future__ import annotations

import threading
import time

import boto3

from qwen_edit.domain import keys
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.jobs import JobStatus
from qwen_edit_cli.local.drive import call, job_of, start, wait_execution, wait_until
from qwen_edit_cli.local.samples import data_url

SLOW_FAMILY = {"model": "qwen-image-2.0-pro", "prompt": "a lighthouse at dusk"}  # 2 a minute


def generation_calls(stack) -> int:
    return sum(1 for c in stack.emulator.fake.calls if c["route"] == "multimodal-generation")


def test_a_deadline_cancels_a_queued_job_with_no_provider_call(stack):
    first = start(stack, SLOW_FAMILY, Capability.TEXT_TO_IMAGE)
    wait_until(lambda: job_of(stack, first.id).provider_call, what="the first job's call")
    waiting = start(stack, {**SLOW_FAMILY, "cancel_after": 2}, Capability.TEXT_TO_IMAGE)
    wait_execution(stack, waiting.id, timeout=30)  # its slot was 30 s away
    canceled = job_of(stack, waiting.id)
    assert canceled.status is JobStatus.CANCELED and canceled.error
    assert canceled.error.code == "DeadlineExceeded"
    wait_execution(stack, first.id)
    assert job_of(stack, first.id).status is JobStatus.SUCCEEDED
    assert generation_calls(stack) == 1  # the first job's only


EDIT_PLUS = {"model": "qwen-image-edit-plus", "prompt": "add a red scarf"}


def test_a_waited_create_answers_200_with_the_final_job(stack):
    body = {**EDIT_PLUS, "images": [data_url()]}
    answer = call(stack, "api-create-edit", body=body, headers={"Prefer": "wait=20"})
    assert answer.status == 200, answer
    assert answer.body["status"] == "succeeded" and answer.body["outputs"][0]["url"]
    assert answer.headers["Preference-Applied"] == "wait=20"


def test_a_waited_create_that_does_not_end_in_time_is_the_usual_202(stack):
    stack.emulator.fake.faults.pending_s = 60
    body = {"model": "qwen-image-plus", "prompt": "slow"}
    answer = call(stack, "api-create-generation", body=body, headers={"Prefer": "wait=1"})
    assert answer.status == 202 and answer.body["status"] in ("queued", "running")
    assert answer.headers["Preference-Applied"] == "wait=1"
    ignored = call(stack, "api-create-generation", body=body, headers={"Prefer": "wait=600"})
    assert ignored.status == 202 and "Preference-Applied" not in ignored.headers


def test_a_waiting_get_answers_as_soon_as_the_job_ends(stack):
    stack.emulator.fake.faults.pending_s = 2
    body = {"model": "qwen-image-plus", "prompt": "two seconds"}
    job = call(stack, "api-create-generation", body=body).body
    began = time.monotonic()
    answer = call(stack, "api-get-job", path=f"/jobs/{job['id']}", query={"wait": "20"})
    assert answer.status == 200 and answer.body["status"] == "succeeded"
    assert time.monotonic() - began < 15  # long before the 20 s it could have waited
    too_long = call(stack, "api-get-job", path=f"/jobs/{job['id']}", query={"wait": "21"})
    assert too_long.status == 422


def test_a_failed_job_is_retried_by_id_with_links_both_ways(stack):
    stack.emulator.fake.faults.final_error_rate = 1.0  # DataInspectionFailed
    failed = call(stack, "api-create-edit", body={**EDIT_PLUS, "images": [data_url()]}).body
    wait_execution(stack, failed["id"])
    shown = call(stack, "api-get-job", path=f"/jobs/{failed['id']}").body
    assert shown["error"] == {**shown["error"], "retryable": False}
    stack.emulator.fake.faults.final_error_rate = 0
    key = {"Idempotency-Key": "retry-once"}
    retried = call(stack, "api-retry-job", path=f"/jobs/{failed['id']}/retry", headers=key)
    assert retried.status == 202, retried
    again = call(stack, "api-retry-job", path=f"/jobs/{failed['id']}/retry", headers=key)
    assert again.body["id"] == retried.body["id"]  # the same key: the same retry
    new = retried.body
    assert (
        new["retry_of"] == failed["id"] and new["request"]["images"] == failed["request"]["images"]
    )
    wait_execution(stack, new["id"])
    assert call(stack, "api-get-job", path=f"/jobs/{new['id']}").body["status"] == "succeeded"
    old = call(stack, "api-get-job", path=f"/jobs/{failed['id']}").body
    assert old["retried_by"] == new["id"]
    done = call(stack, "api-retry-job", path=f"/jobs/{new['id']}/retry")
    assert done.status == 409 and done.body["error"]["code"] == "JobConflict"
    other = call(stack, "api-retry-job", path=f"/jobs/{failed['id']}/retry", tenant="tenant-b")
    assert other.status == 404


def test_a_retry_whose_inputs_expired_is_a_clear_409(stack):
    stack.emulator.fake.faults.final_error_rate = 1.0
    failed = call(stack, "api-create-edit", body={**EDIT_PLUS, "images": [data_url()]}).body
    wait_execution(stack, failed["id"])
    bucket, key = keys.parse_s3_uri(failed["request"]["images"][0])
    boto3.client("s3").delete_object(Bucket=bucket, Key=key)  # the lifecycle's 30 days
    answer = call(stack, "api-retry-job", path=f"/jobs/{failed['id']}/retry")
    assert answer.status == 409 and answer.body["error"]["code"] == "InputsExpired"


def test_other_requests_are_answered_while_one_waits(stack):
    """As other Lambda instances would: a waiting GET does not hold the function."""
    stack.emulator.fake.faults.pending_s = 60
    job = call(stack, "api-create-generation", body={"model": "qwen-image-plus", "prompt": "x"})
    waiting = threading.Thread(
        target=call,
        args=(stack, "api-get-job"),
        kwargs={"path": f"/jobs/{job.body['id']}", "query": {"wait": "4"}},
    )
    waiting.start()
    time.sleep(0.5)  # the wait is under way
    began = time.monotonic()
    models = call(stack, "api-list-models")
    assert models.status == 200 and time.monotonic() - began < 3  # not behind the 4 s wait
    assert waiting.is_alive()
    waiting.join()
