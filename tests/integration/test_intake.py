"""Submit by event under moto: the template's rule (its pattern as deployed), the intake queue
and its dead-letter queue, the real intake handler through the SQS poller, the real workflow
and the emulator."""

from __future__ import annotations

import json
from typing import Any

import boto3
from moto import mock_aws

from qwen_edit.app import service
from qwen_edit.domain.intake import event_job_id
from qwen_edit.domain.jobs import JobSource, JobStatus
from qwen_edit_cli.local.drive import job_of, wait_execution
from qwen_edit_cli.local.inprocess import DEMO_EVENT_SOURCE, DEMO_EVENT_TENANT, FAKE_AWS_ENV
from qwen_edit_cli.local.lambdas import FakeLambdaContext
from qwen_edit_cli.local.samples import data_url
from qwen_edit_cli.local.template import Resolver, load_template

from conftest import ROOT

EDIT = {"prompt": "Make the sky a sunset", "images": [], "correlation_id": "order-17"}


def subscribe(pattern: dict[str, Any], name: str) -> Any:
    """An SQS queue behind a rule of `pattern` on the default bus: what a pipeline would run."""
    sqs, events = boto3.client("sqs"), boto3.client("events")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name=name, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": arn}])

    def received() -> list[dict[str, Any]]:
        found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in found]

    return received


def put(detail: Any, *, source: str = DEMO_EVENT_SOURCE, kind: str = "Edit Requested") -> str:
    answer = boto3.client("events").put_events(
        Entries=[{"Source": source, "DetailType": kind, "Detail": json.dumps(detail)}]
    )
    assert answer["FailedEntryCount"] == 0
    return str(answer["Entries"][0]["EventId"])


def edit(**fields: Any) -> dict[str, Any]:
    return {**EDIT, "images": [data_url()], **fields}


# ---- the rule's pattern, as the template states it ----------------------------------------


def test_the_rule_lets_through_only_the_mapped_sources_and_the_two_detail_types(monkeypatch):
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    rule = load_template()["Resources"]["JobRequestsRule"]
    parameters = {"EventSources": "com.example.catalog,com.example.cms"}
    resolve = Resolver(load_template(), parameters, lambda n: n, lambda *a: "arn")
    assert resolve.condition(rule["Condition"])
    assert not Resolver(load_template(), {}, lambda n: n, lambda *a: "").condition(
        rule["Condition"]
    ), "without sources the rule must not exist"
    pattern = resolve.value(rule["Properties"]["EventPattern"])
    with mock_aws():
        received = subscribe(pattern, "intake")
        allowed = [
            (source, kind)
            for source in ("com.example.catalog", "com.example.cms")
            for kind in ("Edit Requested", "Generation Requested")
        ]
        refused = [
            ("com.example.intruder", "Edit Requested"),
            ("com.example.catalog", "Job Requested"),
            ("qwen-edit", "Job Succeeded"),
            ("com.example", "Edit Requested"),
        ]
        for source, kind in allowed + refused:
            put({"prompt": "x"}, source=source, kind=kind)
        delivered = [(e["source"], e["detail-type"]) for e in received()]
        assert sorted(delivered) == sorted(allowed)


# ---- the whole path on the in-process stack ------------------------------------------------


def test_an_event_on_the_bus_becomes_a_job_that_succeeds_and_is_announced_with_its_correlation(
    stack,
):
    # The README's rule: a pipeline waiting for its own step.
    succeeded = subscribe(
        {
            "source": ["qwen-edit"],
            "detail-type": ["Job Succeeded"],
            "detail": {"correlation_id": ["order-17"]},
        },
        "order-17",
    )
    event_id = put(edit(idempotency_key="order-17-hero"))
    assert stack.pump() == 1
    job_id = event_job_id(DEMO_EVENT_TENANT, "order-17-hero")
    job = job_of(stack, job_id)
    assert job.source is JobSource.EVENT and job.tenant == DEMO_EVENT_TENANT
    assert job.correlation_id == "order-17"
    assert wait_execution(stack, job_id)["status"] == "SUCCEEDED"
    assert job_of(stack, job_id).status is JobStatus.SUCCEEDED
    [announced] = succeeded()
    assert announced["detail"]["id"] == job_id and announced["detail"]["source"] == "event"
    assert announced["detail"]["correlation_id"] == "order-17"
    assert event_id  # the job is named by the key, not by this event


def test_an_event_may_carry_a_chain_and_a_step_that_could_never_run_is_rejected(stack):
    followed = subscribe(
        {"source": ["qwen-edit"], "detail": {"correlation_id": ["catalog-9"]}}, "catalog-9"
    )
    chain = {
        "model": "qwen-image-plus",
        "prompt": "a shoe, product shot",
        "correlation_id": "catalog-9",
        "then": [{"prompt": "on white"}, {"prompt": "add a caption"}],
    }
    put(chain, kind="Generation Requested")
    never = {**chain, "then": [{"prompt": "on white", "model": "qwen-image-max"}]}
    put(never, kind="Generation Requested")
    assert stack.pump() == 2
    [job] = stack.ctx.jobs.list_for_tenant(DEMO_EVENT_TENANT, 10, None, None)[0]
    assert wait_execution(stack, job.id)["status"] == "SUCCEEDED"
    seen = {e["detail-type"]: e["detail"] for e in followed() + followed()}
    assert set(seen) == {"Job Succeeded", "Job Rejected"}  # both carry its correlation_id
    assert [s["status"] for s in seen["Job Succeeded"]["steps"]] == ["succeeded"] * 3
    [detail] = seen["Job Rejected"]["error"]["details"]
    assert (detail["field"], detail["rule"]) == ("then[0].model", "capability")


def test_a_broken_event_is_answered_with_job_rejected_on_the_bus(stack):
    rejected = subscribe({"source": ["qwen-edit"], "detail-type": ["Job Rejected"]}, "rejected")
    event_id = put({**EDIT, "images": ["ftp://example.com/a.png"], "n": 99})
    assert stack.pump() == 1
    [event] = rejected()
    detail = event["detail"]
    assert detail["event"] == {
        "id": event_id,
        "source": DEMO_EVENT_SOURCE,
        "detail_type": "Edit Requested",
    }
    assert detail["correlation_id"] == "order-17" and detail["error"]["code"] == "InvalidRequest"
    assert {d["field"] for d in detail["error"]["details"]} >= {"images[0]", "n"}
    assert stack.ctx.jobs.list_for_tenant(DEMO_EVENT_TENANT, 10, None, None)[0] == []
    assert stack.metrics.counts[("JobsRejected", (("Reason", "InvalidRequest"),))] == 1


def test_duplicate_deliveries_make_one_job(stack):
    detail = edit(idempotency_key="once")
    put(detail)
    put(detail)  # a pipeline that sent it twice
    assert stack.pump() == 2
    [job] = stack.ctx.jobs.list_for_tenant(DEMO_EVENT_TENANT, 10, None, None)[0]
    assert job.id == event_job_id(DEMO_EVENT_TENANT, "once")
    assert wait_execution(stack, job.id)["status"] == "SUCCEEDED"


def sample_sqs_event() -> dict[str, Any]:
    return json.loads((ROOT / "events" / "intake-sqs.json").read_text())


def test_the_sample_sqs_event_carries_the_sample_event():
    # events/edit-requested.json is the event as EventBridge delivers it (and as
    # `qwen-edit events put` takes it); the queue carries it unchanged as the message body.
    event = json.loads((ROOT / "events" / "edit-requested.json").read_text())
    [record] = sample_sqs_event()["Records"]
    assert json.loads(record["body"]) == event
    assert event["source"] == DEMO_EVENT_SOURCE  # so that it runs on the local stack as it is


def test_the_sample_sqs_event_goes_through_the_real_handler(stack):
    answer = stack.handler("IntakeFunction")(sample_sqs_event(), FakeLambdaContext("i", "i"))
    assert answer == {"batchItemFailures": []}
    job_id = event_job_id(DEMO_EVENT_TENANT, "order-17-hero")
    assert job_of(stack, job_id).correlation_id == "order-17"
    assert wait_execution(stack, job_id)["status"] == "SUCCEEDED"


def test_a_transient_failure_is_retried_then_dead_lettered(stack, monkeypatch):
    accept = service.accept

    def flaky(ctx: Any, valid: Any, **kwargs: Any) -> Any:
        if valid.body.correlation_id == "order-17":
            raise RuntimeError("DynamoDB is having a bad day")
        return accept(ctx, valid, **kwargs)

    monkeypatch.setattr(service, "accept", flaky)
    batch = sample_sqs_event()
    other = json.loads(json.dumps(batch["Records"][0]))
    body = json.loads(other["body"])
    body["detail"].update(correlation_id="order-18", idempotency_key="order-18-hero")
    other.update(messageId="another-message", body=json.dumps(body))
    batch["Records"].append(other)
    answer = stack.handler("IntakeFunction")(batch, FakeLambdaContext("i", "i"))
    # only the failed record comes back (partial batch response); the other made its job
    assert answer == {"batchItemFailures": [{"itemIdentifier": batch["Records"][0]["messageId"]}]}
    assert job_of(stack, event_job_id(DEMO_EVENT_TENANT, "order-18-hero")).correlation_id == (
        "order-18"
    )

    put(edit())
    assert stack.pump() == 5  # maxReceiveCount: five tries, then the dead-letter queue
    sqs = boto3.client("sqs")
    dead = sqs.receive_message(QueueUrl=stack.physical["IntakeDeadLetterQueue"]).get("Messages")
    assert dead and json.loads(dead[0]["Body"])["detail-type"] == "Edit Requested"
    [only] = stack.ctx.jobs.list_for_tenant(DEMO_EVENT_TENANT, 10, None, None)[0]
    assert only.correlation_id == "order-18"
