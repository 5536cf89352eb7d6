"""Upload-triggered editing under moto: real S3 notifications into the template's queue, the
real trigger handler (through the SQS poller), the real workflow and the emulator."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from qwen_edit.app import uploads
from qwen_edit.domain.jobs import JobSource, JobStatus
from qwen_edit.entrypoints import s3_events
from qwen_edit_cli.local.drive import wait_execution
from qwen_edit_cli.local.lambdas import FakeLambdaContext
from qwen_edit_cli.local.samples import image_bytes, png_size

from conftest import ROOT

RECIPE = {"model": "qwen-image-edit-plus", "prompt": "Turn the photo into a watercolor", "seed": 3}


@pytest.fixture
def s3(stack):
    client = boto3.client("s3")
    client.inbox = stack.physical["InputBucket"]
    client.outbox = stack.physical["OutputBucket"]
    client.put_object(
        Bucket=client.inbox, Key="recipes/watercolor.json", Body=json.dumps(RECIPE).encode()
    )
    return client


def upload(s3, key: str, body: bytes | None = None) -> None:
    s3.put_object(Bucket=s3.inbox, Key=key, Body=image_bytes("jpeg") if body is None else body)


def output(s3, key: str) -> bytes | None:
    try:
        return s3.get_object(Bucket=s3.outbox, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None


def finish(stack, job_ids) -> None:
    for job_id in job_ids:
        assert wait_execution(stack, job_id, timeout=180)["status"] == "SUCCEEDED"


def upload_jobs(stack) -> list:
    return [
        job for job in stack.ctx.jobs.list_for_tenant(uploads.UPLOAD_TENANT, 100, None, None)[0]
    ]


def test_recipe_upload_end_to_end(stack, s3):
    upload(s3, "inbox/watercolor/2026/harbor.jpg")
    assert stack.pump() == 1
    [job] = upload_jobs(stack)
    assert job.source is JobSource.S3 and job.request["prompt"] == RECIPE["prompt"]
    assert job.request["images"] == [f"s3://{s3.inbox}/inbox/watercolor/2026/harbor.jpg"]
    finish(stack, [job.id])
    png = output(s3, "outbox/watercolor/2026/harbor.png")
    assert png is not None and png_size(png)
    record = json.loads(output(s3, "outbox/watercolor/2026/harbor.json"))
    assert record["status"] == "succeeded" and record["id"] == job.id
    original = s3.get_object(Bucket=s3.inbox, Key="inbox/watercolor/2026/harbor.jpg")["Body"]
    assert original.read() == image_bytes("jpeg")  # inputs are never modified


def test_two_outputs_are_numbered(stack, s3):
    s3.put_object(
        Bucket=s3.inbox, Key="recipes/pair.json", Body=json.dumps({**RECIPE, "n": 2}).encode()
    )
    upload(s3, "inbox/pair/boat.png", image_bytes("png"))
    stack.pump()
    finish(stack, [j.id for j in upload_jobs(stack)])
    assert output(s3, "outbox/pair/boat-1.png") and output(s3, "outbox/pair/boat-2.png")
    assert output(s3, "outbox/pair/boat.png") is None
    assert len(json.loads(output(s3, "outbox/pair/boat.json"))["outputs"]) == 2


def test_a_recipe_with_then_keeps_each_steps_output_in_the_outbox(stack, s3):
    chain = {**RECIPE, "n": 2, "then": [{"prompt": "add a frame", "fan_out": True}]}
    s3.put_object(Bucket=s3.inbox, Key="recipes/framed.json", Body=json.dumps(chain).encode())
    upload(s3, "inbox/framed/2026/boat.png", image_bytes("png"))
    stack.pump()
    finish(stack, [j.id for j in upload_jobs(stack)])
    # The first step's two outputs, then the framed edit of each: the last step's are the job's.
    for key in ("boat.step0-1.png", "boat.step0-2.png", "boat-1.png", "boat-2.png"):
        assert output(s3, f"outbox/framed/2026/{key}"), key
    record = json.loads(output(s3, "outbox/framed/2026/boat.json"))
    assert [s["status"] for s in record["steps"]] == ["succeeded", "succeeded"]
    assert [o["s3_uri"].rsplit("/", 1)[1] for o in record["outputs"]] == [
        "boat-1.png",
        "boat-2.png",
    ]


def test_recipe_reference_images_follow_the_upload(stack, s3):
    s3.put_object(Bucket=s3.inbox, Key="assets/dress.png", Body=image_bytes("png"))
    s3.put_object(
        Bucket=s3.inbox,
        Key="recipes/outfit.json",
        Body=json.dumps({**RECIPE, "images": ["assets/dress.png"]}).encode(),
    )
    upload(s3, "inbox/outfit/ana.jpg")
    stack.pump()
    [job] = upload_jobs(stack)
    assert job.request["images"] == [
        f"s3://{s3.inbox}/inbox/outfit/ana.jpg",
        f"s3://{s3.inbox}/assets/dress.png",
    ]


def test_manifest_with_three_images(stack, s3):
    for name in ("girl", "dress", "pose"):
        s3.put_object(Bucket=s3.inbox, Key=f"assets/{name}.png", Body=image_bytes("png"))
    manifest = {
        "model": "qwen-image-2.0",
        "prompt": "The girl in Image 1 wears the dress from Image 2 in the pose of Image 3",
        "images": [
            "assets/girl.png",
            f"s3://{s3.inbox}/assets/dress.png",
            "https://example.com/pose.png",
        ],
    }
    upload(s3, "inbox/fitting.json", json.dumps(manifest).encode())
    stack.pump()
    [job] = upload_jobs(stack)
    assert len(job.request["images"]) == 3
    finish(stack, [job.id])
    assert output(s3, "outbox/fitting.png") and output(s3, "outbox/fitting.json")


@pytest.mark.parametrize(
    "key, body, code, words",
    [
        ("inbox/watercolor/notes.png", b"not an image at all", "InvalidRequest", "not a PNG, JPEG"),
        (
            "inbox/watercolor/huge.png",
            b"\x89PNG\r\n\x1a\n" + b"\0" * (10 * 1024 * 1024),
            "InvalidRequest",
            "the limit is",
        ),
        ("inbox/nosuchrecipe/a.jpg", None, "NotFound", "unknown recipe 'nosuchrecipe'"),
        ("inbox/broken.json", b'{"prompt": ', "MalformedJson", "not valid JSON"),
        (
            "inbox/missing.json",
            json.dumps({"prompt": "x", "images": ["assets/nope.png"]}).encode(),
            "InvalidRequest",
            "does not exist or is not yours",
        ),
        (
            "inbox/rule.json",
            json.dumps(
                {
                    "model": "qwen-image-edit",
                    "n": 3,
                    "prompt": "x",
                    "images": ["https://example.com/a.png"],
                }
            ).encode(),
            "InvalidRequest",
            "exactly 1",
        ),
        ("inbox/watercolor/readme.txt", b"hello", "NotAnImage", "image extension"),
        ("inbox/loose.jpg", None, "NotInARecipe", "inbox/<recipe>/"),
    ],
)
def test_rejected_uploads_explain_themselves_and_cost_nothing(stack, s3, key, body, code, words):
    upload(s3, key, body)
    stack.pump()
    stem = key.removeprefix("inbox/").rsplit(".", 1)[0]
    record = json.loads(output(s3, f"outbox/{stem}.error.json"))
    assert record["input"] == f"s3://{s3.inbox}/{key}"
    assert record["error"]["code"] == code and words in record["error"]["message"], record
    assert upload_jobs(stack) == []
    assert stack.emulator.fake.counters.total() == 0


def test_the_same_event_delivered_twice_makes_one_job(stack, s3):
    upload(s3, "inbox/watercolor/twice.jpg")
    sqs = boto3.client("sqs")
    queue = stack.physical["TriggerQueue"]
    [message] = sqs.receive_message(QueueUrl=queue)["Messages"]
    sqs.send_message(QueueUrl=queue, MessageBody=message["Body"])  # S3 delivers it again
    sqs.change_message_visibility(
        QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
    )
    assert stack.pump() == 2
    [job] = upload_jobs(stack)
    finish(stack, [job.id])
    assert stack.emulator.fake.counters["calls.multimodal-generation"] == 1


def test_a_new_upload_to_the_same_key_is_a_new_job(stack, s3):
    upload(s3, "inbox/watercolor/again.jpg")
    stack.pump()
    time.sleep(0.01)
    upload(s3, "inbox/watercolor/again.jpg", image_bytes("jpeg", color=(1, 2, 3)))
    stack.pump()
    assert len(upload_jobs(stack)) == 2


def test_an_upload_that_died_before_its_workflow_is_restarted(stack, s3):
    notification = json.loads((ROOT / "events" / "s3-notification.json").read_text())
    [upload_] = s3_events.from_s3_notification(notification)
    job_id = uploads.upload_job_id(upload_)
    assert job_id.startswith("s3-") and upload_.key == "inbox/portraits/2026/Ana María.jpg"
    assert upload_.identity == "0062E99A88DC407460"  # the sequencer names the version


def test_unicode_spaces_and_plus_in_keys(stack, s3):
    keys = [
        "inbox/watercolor/Ana María.jpg",
        "inbox/watercolor/a+b c.jpg",
        "inbox/watercolor/日本/猫.jpg",
    ]
    for key in keys:
        upload(s3, key)
    assert stack.pump() == 3
    jobs = upload_jobs(stack)
    finish(stack, [j.id for j in jobs])
    for stem in ["Ana María", "a+b c", "日本/猫"]:
        assert output(s3, f"outbox/watercolor/{stem}.png"), stem


def test_sample_sqs_event_goes_through_the_real_handler(stack, s3):
    event = json.loads((ROOT / "events" / "trigger-sqs.json").read_text())
    body = json.loads(event["Records"][0]["body"])
    body["Records"][0]["s3"]["bucket"]["name"] = s3.inbox
    event["Records"][0]["body"] = json.dumps(body)
    s3.put_object(Bucket=s3.inbox, Key="recipes/portraits.json", Body=json.dumps(RECIPE).encode())
    upload(s3, "inbox/portraits/2026/Ana María.jpg")
    stack.pump()  # the real notification
    answer = stack.handler("TriggerFunction")(event, FakeLambdaContext("t", "t"))
    assert answer == {"batchItemFailures": []}
    assert len(upload_jobs(stack)) == 2  # the sample's sequencer is another version


def test_fifty_uploads_at_once_none_lost(stack, s3):
    fake = stack.emulator.fake
    fake.faults.enforce_rate_limits = True  # the provider's real 2/second for edit-plus
    keys = [f"inbox/watercolor/batch/{i:02d}.jpg" for i in range(50)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: upload(s3, key), keys))
    started = time.monotonic()
    assert stack.pump() == 50
    jobs = upload_jobs(stack)
    assert len(jobs) == 50
    finish(stack, [j.id for j in jobs])
    failed = [
        (j.id, j.error)
        for j in map(stack.ctx.jobs.get, [j.id for j in jobs])
        if j.status is not JobStatus.SUCCEEDED
    ]
    assert failed == []
    assert all(output(s3, key.replace("inbox/", "outbox/").replace(".jpg", ".png")) for key in keys)
    calls, refused = fake.counters["calls.multimodal-generation"], fake.counters["rate_limited"]
    print(
        f"\n50 uploads: {time.monotonic() - started:.1f} s, {calls} provider calls, "
        f"{refused} refused by the provider's limit"
    )
    # Every refused call was retried and its job still succeeded: nothing lost, no duplicate.
    # Refusals stay rare (none in a quiet run; this one process also hosts moto and the
    # emulator, so under a loaded CI a call can arrive later after its claim than it would).
    assert calls == 50 + refused and refused <= 2
