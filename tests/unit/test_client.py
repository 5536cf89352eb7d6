"""The CLI's client honours Retry-After on a 429, for every request, within its bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from qwen_edit_cli import main
from qwen_edit_cli.client import LONGEST_WAIT_S, RETRIES_ON_429, ApiError, QwenEditClient

JOB = {"id": "job-1", "status": "queued", "model": "qwen-image-plus"}


def too_many(limit: str, retry_after: str) -> httpx.Response:
    details = [{"limit": limit}]
    body = {"error": {"code": "Throttled", "message": "slow down", "details": details}}
    return httpx.Response(429, json=body, headers={"Retry-After": retry_after})


def scripted(*answers: httpx.Response) -> tuple[QwenEditClient, list[float], list[str]]:
    """A client whose requests get `answers` in turn; the waits it slept, and the paths sent."""
    queue, sent, slept = list(answers), [], []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(f"{request.method} {request.url.path}")
        return queue.pop(0)

    client = QwenEditClient(
        "http://api.test/v1", "key", on_wait=main._say_wait, transport=httpx.MockTransport(handle)
    )
    client.sleep = slept.append
    return client, slept, sent


def test_a_429_is_sent_again_after_its_retry_after(capsys):
    client, slept, sent = scripted(
        too_many("throttle", "1"), too_many("queue", "30"), httpx.Response(202, json=JOB)
    )
    assert client.create("generations", {"prompt": "a fox"}) == JOB
    assert slept == [1, 30] and sent == ["POST /v1/generations"] * 3
    said = capsys.readouterr().err
    assert "429 Throttled (throttle limit); waiting 1 s as Retry-After says (retry 1 of 5)" in said
    assert "waiting 30 s" in said


def test_every_request_waits_an_http_date_too():
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    client, slept, _ = scripted(too_many("throttle", later), httpx.Response(200, json=JOB))
    assert client.get("job-1") == JOB
    assert len(slept) == 1 and 3 < slept[0] <= 5


def test_the_retries_are_bounded():
    client, slept, sent = scripted(*[too_many("throttle", "1")] * (RETRIES_ON_429 + 1))
    with pytest.raises(ApiError) as failed:
        client.list()
    assert failed.value.status == 429 and len(sent) == RETRIES_ON_429 + 1
    assert slept == [1] * RETRIES_ON_429


@pytest.mark.parametrize("retry_after", [str(int(LONGEST_WAIT_S) + 1), "86400", "soon", ""])
def test_a_wait_too_long_or_unreadable_is_not_waited(retry_after):
    client, slept, sent = scripted(too_many("quota", retry_after))
    with pytest.raises(ApiError) as failed:
        client.cancel("job-1")
    assert failed.value.code == "Throttled" and slept == [] and len(sent) == 1
