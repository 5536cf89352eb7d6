"""The Vtrix-style task API provider behind the same interface, against the emulator."""

from __future__ import annotations

import time

import httpx
import pytest

from qwen_edit.adapters.task_api import TaskApiClient
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.provider import ProviderError, ProviderRequest, TaskStatus
from qwen_edit_cli.local.samples import data_url, png_size


@pytest.fixture
def task_api(emulator):
    client = TaskApiClient("sk-task", base_url=emulator.task_api_base_url)
    yield client
    client.close()


def call(model="qwen_image_edit_plus", **parameters):
    return ProviderRequest(
        model=model,
        capability=Capability.EDIT,
        prompt="swap the dress",
        images=(data_url("png", (700, 700)),),
        parameters=parameters,
    )


def until_final(client, task):
    for _ in range(100):
        if task.status.is_final:
            return task
        time.sleep(0.1)
        task = client.fetch(task.task_id)
    raise AssertionError("task never finished")


def test_create_poll_and_read_content_urls(task_api):
    created = task_api.submit(call(n=2, size="1024*1024"))
    assert created.status is TaskStatus.PENDING and created.task_id
    done = until_final(task_api, created)
    assert done.status is TaskStatus.SUCCEEDED and len(done.image_urls) == 2
    assert done.usage.image_count == 2
    assert png_size(task_api.download(done.image_urls[0])) == (1024, 1024)


def test_failed_task_keeps_its_error(task_api, emulator):
    emulator.fake.faults.task_failure_rate = 1.0
    done = until_final(task_api, task_api.submit(call()))
    assert done.status is TaskStatus.FAILED
    assert (done.error_code, done.error_message) == ("500", "Algorithm process error.")


def test_errors_keep_code_and_message(task_api):
    with pytest.raises(ProviderError) as caught:
        task_api.fetch("missing")
    assert (caught.value.code, caught.value.http_status, caught.value.retryable) == (
        "404",
        404,
        False,
    )
    with pytest.raises(ProviderError) as caught:
        task_api.submit(call("qwen-image-edit-plus"))  # a DashScope model, not this provider's
    assert caught.value.code == "404" and "Model not exist" in caught.value.message


def test_rules_are_checked_by_the_provider(task_api):
    with pytest.raises(ProviderError) as caught:
        task_api.submit(call(n=7))
    assert (caught.value.code, caught.value.retryable) == ("400", False)


def test_cancel_is_not_offered():
    with pytest.raises(ProviderError) as caught:
        TaskApiClient("k", base_url="http://127.0.0.1:9").cancel("t")
    assert (caught.value.code, caught.value.retryable) == ("CancelNotSupported", False)


def test_statuses_map_onto_the_shared_ones():
    answers = iter(
        [
            {"task_id": "t", "status": "processing"},
            {"task_id": "t", "status": "something-new"},
            {
                "task_id": "t",
                "status": "completed",
                "output": [
                    {
                        "content": [
                            {"type": "text", "text": "x"},
                            {"type": "image", "url": "https://u"},
                        ]
                    }
                ],
            },
        ]
    )
    client = TaskApiClient(
        "k",
        base_url="https://tasks.example.com/v1",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=next(answers))),
    )
    assert client.fetch("t").status is TaskStatus.RUNNING
    assert client.fetch("t").status is TaskStatus.RUNNING  # unrecognised: keep polling
    done = client.fetch("t")
    assert done.status is TaskStatus.SUCCEEDED and done.image_urls == ["https://u"]
