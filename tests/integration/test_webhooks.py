"""Signed webhooks: a real receiver on loopback verifies every delivery with the standardwebhooks
library; retries, 410, redirects, the SSRF guard at submit and at delivery, secrets not logged."""

from __future__ import annotations

import json
import logging
import random
import socket
import time

import boto3
import pytest

from qwen_edit import runtime
from qwen_edit.app import webhooks
from qwen_edit.domain.errors import InvalidRequest
from qwen_edit.domain.jobs import DeliveryStatus, JobStatus
from qwen_edit_cli.local.drive import job_of, start, wait_execution, wait_until
from qwen_edit_cli.local.samples import data_url

from conftest import ROOT
from webhook_receiver import Receiver

# ---- the guard, on its own ---------------------------------------------------------------------


def resolver(*addresses):
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fc00::1",
        "fe80::1",
        "::ffff:10.0.0.1",
        "fd00:ec2::254",
    ],
)
def test_non_public_addresses_are_refused(address):
    with pytest.raises(ValueError, match="not a public address"):
        webhooks.check_target("https://hooks.example.com/x", resolver(address))


def test_public_https_targets_pass_and_http_does_not():
    public = resolver("93.184.216.34")
    assert webhooks.check_target("https://hooks.example.com/x", public) == ["93.184.216.34"]
    with pytest.raises(ValueError, match="https"):
        webhooks.check_target("http://hooks.example.com/x", public)


def test_one_private_answer_among_public_ones_is_refused():
    with pytest.raises(ValueError, match=r"10\.0\.0\.7"):
        webhooks.check_target("https://h.example.com", resolver("93.184.216.34", "10.0.0.7"))


def test_loopback_http_only_where_allowed():
    url = "http://127.0.0.1:8080/hook"
    assert webhooks.check_target(url, resolver("127.0.0.1"), allow_loopback_http=True)
    with pytest.raises(ValueError):
        webhooks.check_target(url, resolver("127.0.0.1"))
    with pytest.raises(ValueError):  # the local allowance covers loopback, nothing else
        webhooks.check_target(
            "http://10.0.0.2/hook", resolver("10.0.0.2"), allow_loopback_http=True
        )


def test_names_that_do_not_resolve_are_refused():
    with pytest.raises(ValueError, match="does not resolve"):
        webhooks.check_target("https://nowhere.invalid/x", resolver())


def test_the_schedule_retries_for_at_least_24_hours():
    assert webhooks.retry_window().total_seconds() * (1 - webhooks.JITTER) >= 24 * 3600 * 0.9
    assert webhooks.retry_window().total_seconds() >= 24 * 3600
    rng = random.Random(2)
    for attempt, base in enumerate(webhooks.SCHEDULE, start=1):
        assert base * 0.8 <= webhooks.next_wait(attempt, rng) <= base * 1.2
    assert webhooks.next_wait(len(webhooks.SCHEDULE) + 1) is None


@pytest.mark.parametrize(
    "status, outcome",
    [
        (200, "delivered"),
        (204, "delivered"),
        (410, "stop"),
        (302, "retry"),
        (301, "retry"),
        (404, "retry"),
        (429, "retry"),
        (500, "retry"),
        (None, "retry"),
    ],
)
def test_answers_are_classified(status, outcome):
    assert webhooks.classify(status).value == outcome


# ---- deliveries through the stack ----------------------------------------------------------------


def signing_secret(stack) -> str:
    value = boto3.client("secretsmanager").get_secret_value(
        SecretId=stack.physical["WebhookSecret"]
    )["SecretString"]
    return f"whsec_{value}"


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr(webhooks, "SCHEDULE", (1, 1, 1))
    monkeypatch.setattr(webhooks, "JITTER", 0.0)


def deliver_until(stack, condition, timeout=30):
    return wait_until(
        lambda: stack.pump() is not None and condition(), timeout=timeout, what="the webhook"
    )


def edit_with_hook(stack, url, **fields):
    return start(stack, {"prompt": "x", "images": [data_url()], "webhook_url": url, **fields})


def test_delivered_once_signed_with_links_not_bytes(stack):
    receiver = Receiver(signing_secret(stack), [200])
    job = edit_with_hook(stack, receiver.url, metadata={"order": "A-17"})
    wait_execution(stack, job.id)
    deliver_until(stack, lambda: receiver.seen)
    [(webhook_id, payload, _)] = receiver.seen
    assert webhook_id == f"msg_{job.id}" and payload["type"] == "job.succeeded"
    data = payload["data"]
    assert data["id"] == job.id and data["metadata"] == {"order": "A-17"}
    assert data["links"] == {"job": f"/v1/jobs/{job.id}"}
    assert data["outputs"][0]["url"].startswith("https://")
    assert "data:image" not in json.dumps(payload)  # inline inputs were stored: links only
    record = job_of(stack, job.id).webhook
    assert record.status is DeliveryStatus.DELIVERED and len(record.attempts) == 1
    assert record.attempts[0].status == 200
    receiver.stop()


def test_a_filtered_stream_arrives_in_order_each_event_signed(stack):
    receiver = Receiver(signing_secret(stack), [])
    job = edit_with_hook(
        stack, receiver.url, webhook_events=["queued", "running", "succeeded", "failed"]
    )
    wait_execution(stack, job.id)
    deliver_until(stack, lambda: len(receiver.seen) == 3)
    ids, payloads, _ = zip(*receiver.seen, strict=True)  # each verified by the receiver
    assert [p["type"] for p in payloads] == ["job.queued", "job.running", "job.succeeded"]
    assert [p["sequence"] for p in payloads] == [1, 2, 3]
    assert list(ids) == [f"msg_{job.id}_1", f"msg_{job.id}_2", f"msg_{job.id}"]
    assert [p["data"]["status"] for p in payloads] == ["queued", "running", "succeeded"]
    record = job_of(stack, job.id).webhook  # the final delivery's, as before
    assert record.status is DeliveryStatus.DELIVERED and len(record.attempts) == 1
    receiver.stop()


def test_by_default_only_the_final_event_is_delivered(stack):
    receiver = Receiver(signing_secret(stack), [])
    job = edit_with_hook(stack, receiver.url)
    wait_execution(stack, job.id)
    deliver_until(stack, lambda: receiver.seen)
    stack.pump()
    [(webhook_id, payload, _)] = receiver.seen
    assert (webhook_id, payload["type"], payload["sequence"]) == (
        f"msg_{job.id}",
        "job.succeeded",
        3,
    )
    receiver.stop()


def test_failed_jobs_are_delivered_too(stack):
    receiver = Receiver(signing_secret(stack), [])
    stack.emulator.fake.faults.final_error_rate = 1.0
    job = edit_with_hook(stack, receiver.url)
    wait_execution(stack, job.id)
    deliver_until(stack, lambda: receiver.seen)
    assert receiver.seen[0][1]["type"] == "job.failed"
    assert receiver.seen[0][1]["data"]["error"]["code"] == "DataInspectionFailed"
    receiver.stop()


def test_receiver_down_then_up_gets_it_once_with_the_same_id(stack, fast_retries):
    with socket.socket() as probe:  # a port nobody listens on, for now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hooks/qwen"
    job = edit_with_hook(stack, url)
    wait_execution(stack, job.id)
    deliver_until(stack, lambda: job_of(stack, job.id).webhook.attempts)
    first = job_of(stack, job.id).webhook.attempts[0]
    assert first.status is None and "could not connect" in first.error
    receiver = Receiver(signing_secret(stack), [503, 200], port=port)  # up, then a 503 first
    deliver_until(stack, lambda: job_of(stack, job.id).webhook.status is DeliveryStatus.DELIVERED)
    assert [status for _, _, status in receiver.seen] == [503, 200]
    assert {webhook_id for webhook_id, _, _ in receiver.seen} == {f"msg_{job.id}"}
    assert [a.status for a in job_of(stack, job.id).webhook.attempts] == [None, 503, 200]
    time.sleep(1.5)
    stack.pump()
    assert len(receiver.seen) == 2  # delivered once: nothing more comes
    receiver.stop()


def test_410_stops_for_good(stack, fast_retries):
    receiver = Receiver(signing_secret(stack), [410, 200, 200])
    job = edit_with_hook(stack, receiver.url)
    wait_execution(stack, job.id)
    deliver_until(stack, lambda: job_of(stack, job.id).webhook.status is DeliveryStatus.STOPPED)
    time.sleep(1.5)
    stack.pump()
    assert len(receiver.seen) == 1
    receiver.stop()


def test_redirects_are_failures_not_followed_and_the_end_is_visible(stack, fast_retries):
    receiver = Receiver(signing_secret(stack), [302, 302, 302, 302])
    job = edit_with_hook(stack, receiver.url)
    wait_execution(stack, job.id)
    deliver_until(
        stack, lambda: job_of(stack, job.id).webhook.status is DeliveryStatus.FAILED, timeout=60
    )
    done = job_of(stack, job.id)
    assert done.status is JobStatus.SUCCEEDED  # webhook trouble never touches the job
    assert [a.status for a in done.webhook.attempts] == [302, 302, 302, 302]
    assert all(seen[2] == 302 for seen in receiver.seen)  # /elsewhere was never asked
    dead = boto3.client("sqs").receive_message(QueueUrl=stack.physical["WebhookDeadLetterQueue"])[
        "Messages"
    ]
    assert json.loads(dead[0]["Body"])["webhook_id"] == f"msg_{job.id}"
    # ...and counted (WebhookDeliveries, Outcome=failed): tests/unit/test_webhook_delivery.py
    receiver.stop()


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.8/hook",
        "https://169.254.169.254/latest",
        "https://[fd00::1]/hook",
        "http://hooks.example.com/x",
    ],
)
def test_forbidden_targets_are_refused_at_submit(stack, url):
    with pytest.raises(InvalidRequest) as refused:
        edit_with_hook(stack, url)
    assert refused.value.details[-1]["field"] == "webhook_url"
    assert stack.emulator.fake.counters.total() == 0


def resolving(monkeypatch, stack, answer):
    """Swap the DNS port of the API-side context and of every handler's context."""
    monkeypatch.setattr(stack.ctx, "resolve", answer)
    runtime.override_ports(resolve=lambda: answer)  # the stack's teardown clears it


def test_a_name_that_resolves_to_a_private_address_is_refused_at_submit(stack, monkeypatch):
    resolving(monkeypatch, stack, lambda host, port: ["192.168.0.10"])
    with pytest.raises(InvalidRequest, match=r"192\.168\.0\.10"):
        edit_with_hook(stack, "https://innocent.example.com/hook")


def test_dns_that_turns_private_by_delivery_time_is_refused_then(stack, monkeypatch):
    answers = {"now": ["93.184.216.34"]}
    resolving(monkeypatch, stack, lambda host, port: answers["now"])
    job = edit_with_hook(stack, "https://rebind.example.com/hook")
    answers["now"] = ["169.254.169.254"]
    wait_execution(stack, job.id)
    deliver_until(stack, lambda: job_of(stack, job.id).webhook.status is DeliveryStatus.FAILED)
    [attempt] = job_of(stack, job.id).webhook.attempts
    assert attempt.status is None and "169.254.169.254" in attempt.error


def test_the_signing_secret_never_reaches_the_logs(stack, caplog):
    secret = signing_secret(stack)
    receiver = Receiver(secret, [200])
    with caplog.at_level(logging.DEBUG):  # botocore stays at INFO: adapters.secrets sees to it
        job = edit_with_hook(stack, receiver.url)
        wait_execution(stack, job.id)
        deliver_until(stack, lambda: receiver.seen)
    raw = secret.removeprefix("whsec_")
    assert caplog.text and raw not in caplog.text
    assert raw not in json.dumps(job_of(stack, job.id).public())
    receiver.stop()


def test_the_sample_delivery_event_is_a_delivery():

    event = json.loads((ROOT / "events" / "webhook-sqs.json").read_text())
    delivery = webhooks.Delivery.model_validate_json(event["Records"][0]["body"])
    assert delivery.webhook_id == f"msg_{delivery.job_id}" and delivery.attempt == 1
