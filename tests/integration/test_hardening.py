"""Hostile input, tried as an attacker would: every case is a clear 4xx in the envelope (or an
.error.json for uploads), costs no provider call, reaches no other tenant's data, and no job
runs past its attempt budget."""

from __future__ import annotations

import base64
import json
import struct
import zlib

import boto3
import pytest

from qwen_edit import runtime
from qwen_edit.app import uploads
from qwen_edit.domain import keys
from qwen_edit.domain.jobs import JobStatus
from qwen_edit_cli.local.drive import call, job_of, wait_execution
from qwen_edit_cli.local.samples import data_url, image_bytes

EDIT = {"model": "qwen-image-edit-plus", "prompt": "add a red scarf"}


def edit(**fields):
    return {**EDIT, "images": [data_url()], **fields}


def refused(answer, status: int, code: str, field: str | None = None, rule: str | None = None):
    assert answer.status == status, answer
    error = answer.body["error"]
    assert error["code"] == code and error["message"], error
    if field is not None:
        details = {d["field"]: d["rule"] for d in error["details"]}
        assert field in details, error
        assert rule is None or details[field] == rule, error
    return error


def png(width: int, height: int) -> bytes:
    """A structurally valid PNG (real CRCs) that declares any size: a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def inline(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


@pytest.fixture
def settings(monkeypatch):
    """Change the deployment's environment for every handler of the in-process stack."""

    def change(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        runtime.context.cache_clear()  # as a new Lambda container would read it

    return change


# ---- inputs that used to crash the API --------------------------------------------------------


@pytest.mark.parametrize(
    "body, status, code, field",
    [
        ("[" * 100_000 + "]" * 100_000, 400, "BadRequest", "body"),
        ('{"a": ' * 40 + "1" + "}" * 40, 400, "BadRequest", "body"),
        (json.dumps(edit())[:-1] + ', "seed": ' + "9" * 5000 + "}", 422, "InvalidRequest", "seed"),
        (json.dumps(edit())[:-1] + ', "n": ' + "9" * 30 + "}", 422, "InvalidRequest", "n"),
        ('{"prompt": NaN}', 400, "BadRequest", "body"),
        ("\ufeff{}", 400, "BadRequest", "body"),
    ],
)
def test_bodies_that_used_to_crash_are_answered(stack, body, status, code, field):
    refused(call(stack, "api-create-edit", body=body), status, code, field)
    assert stack.emulator.fake.counters.total() == 0


@pytest.mark.parametrize(
    "size",
    [
        "9" * 5000 + "*1024",
        "²*²",
        "١٠٢٤*١٠٢٤",
        "１０２４*１０２４",
        "1024*1024\n",
        "1024 * 1024",
        "-1*-1",
        "0x400*0x400",
    ],
)
def test_size_is_ascii_width_by_height_only(stack, size):
    refused(call(stack, "api-create-edit", body=edit(size=size)), 422, "InvalidRequest", "size")
    assert stack.emulator.fake.counters.total() == 0


@pytest.mark.parametrize(
    "image",
    [
        "http://[::1/x.png",
        "https://example.com:99999/a.png",
        "http://[fe80::1%zz/x.png",
        "https:///x.png",
        "https://a..example/x.png",  # hosts the IDNA codec refuses crashed DNS
        "https://.example/x.png",
        "https://" + "a" * 64 + ".example/x.png",
        "http://169.254.169.254\\@1.1.1.1/x.png",  # WHATWG reads the host before the backslash
        "http://h.example/a b.png",
    ],
)
def test_image_urls_that_do_not_parse(stack, image):
    refused(
        call(stack, "api-create-edit", body=edit(images=[image])),
        422,
        "InvalidRequest",
        "images[0]",
        "url",
    )


@pytest.mark.parametrize(
    "url", ["https://h.example:70000/x", "https://[::1/", "https://a..example/", "https://h\\x"]
)
def test_webhook_urls_that_do_not_parse(stack, url):
    refused(
        call(stack, "api-create-edit", body=edit(webhook_url=url)),
        422,
        "InvalidRequest",
        "webhook_url",
    )


def test_provider_table_sizes_are_bounded(stack):
    body = {"model": "qwen-image-max", "prompt": "x", "size": "99999*99999"}
    refused(call(stack, "api-create-generation", body=body), 422, "InvalidRequest", "size")


def edited_cursors(cursor: str):
    key = json.loads(base64.urlsafe_b64decode(cursor))
    yield {**key, "id": {"N": "1"}}
    yield {**key, "created_at": {"S": 5}}
    yield {**key, "extra": {"S": "x"}}
    yield {k: v for k, v in key.items() if k != "id"}
    yield {**key, "id": {"S": ""}}
    yield {**key, "id": {"S": "x" * 5000}}
    yield {**key, "id": {"S": "x", "N": "1"}}
    yield [key]
    yield "plain"


def test_cursors_edited_by_their_own_tenant_are_422(stack):
    for i in range(2):
        call(stack, "api-create-generation", body={"model": "qwen-image-plus", "prompt": f"p{i}"})
    cursor = call(stack, "api-list-jobs", query={"limit": "1"}).body["next_cursor"]
    for edited in edited_cursors(cursor):
        forged = base64.urlsafe_b64encode(json.dumps(edited).encode()).decode()
        refused(
            call(stack, "api-list-jobs", query={"cursor": forged}), 422, "InvalidRequest", "cursor"
        )
    refused(call(stack, "api-list-jobs", query={"cursor": "%%%"}), 422, "InvalidRequest", "cursor")


# ---- images are checked, not sniffed ------------------------------------------------------------


@pytest.mark.parametrize(
    "image, rule",
    [
        (inline(image_bytes("png")[:60]), "truncated"),
        (inline(b"GIF89a<script>alert(1)</script>", "image/gif"), "corrupt"),
        (inline(png(30_000, 30_000)), "pixels"),
    ],
)
def test_broken_and_bomb_images_are_refused_before_the_provider(stack, image, rule):
    refused(
        call(stack, "api-create-edit", body=edit(images=[image])),
        422,
        "InvalidRequest",
        "images[0]",
        rule,
    )
    assert stack.emulator.fake.counters.total() == 0


def test_uploaded_bombs_are_refused_at_acceptance(stack):
    s3, bucket = boto3.client("s3"), stack.physical["InputBucket"]
    key = keys.upload_key("tenant-a", "png")
    s3.put_object(Bucket=bucket, Key=key, Body=png(30_000, 30_000))
    refused(
        call(stack, "api-create-edit", body=edit(images=[keys.s3_uri(bucket, key)])),
        422,
        "InvalidRequest",
        "images[0]",
        "pixels",
    )


def test_a_provider_that_keeps_failing_ends_the_job_at_its_attempt_budget(stack, settings):
    settings(MAX_PROVIDER_ATTEMPTS="2")
    stack.emulator.fake.faults.server_error_rate = 1.0  # every call: 500 or 503
    job = call(stack, "api-create-edit", body=edit()).body
    wait_execution(stack, job["id"], timeout=60)
    failed = job_of(stack, job["id"])
    assert failed.status is JobStatus.FAILED
    assert failed.error.code in ("InternalError", "ModelUnavailable")
    assert failed.error.message.startswith("gave up after 2 provider attempts")
    assert stack.emulator.fake.counters["injected_5xx"] == 2


# ---- tenants -----------------------------------------------------------------------------------


def finished_job(stack, tenant: str = "tenant-a") -> dict:
    job = call(stack, "api-create-edit", body=edit(), tenant=tenant).body
    wait_execution(stack, job["id"])
    return call(stack, "api-get-job", path=f"/jobs/{job['id']}", tenant=tenant).body


def test_another_tenants_results_and_inputs_are_not_inputs(stack):
    job = finished_job(stack)
    result = job["outputs"][0]["s3_uri"]
    stored_input = job["request"]["images"][0]
    missing = f"s3://{stack.physical['OutputBucket']}/results/{job['id']}x/0.png"
    messages = []
    for image in (result, stored_input, missing):
        error = refused(
            call(stack, "api-create-edit", body=edit(images=[image]), tenant="tenant-b"),
            422,
            "InvalidRequest",
            "images[0]",
            "not-available",
        )
        messages.append(error["details"][0]["message"].replace(image, "<image>"))
    assert len(set(messages)) == 1  # "not yours" and "no such object" read the same
    own = call(stack, "api-create-edit", body=edit(images=[result]))  # its owner may chain
    assert own.status == 202, own


def test_shared_prefixes_are_open_to_every_tenant(stack, settings):
    bucket = stack.physical["InputBucket"]
    boto3.client("s3").put_object(Bucket=bucket, Key="library/logo.png", Body=image_bytes())
    image = f"s3://{bucket}/library/logo.png"
    refused(
        call(stack, "api-create-edit", body=edit(images=[image]), tenant="tenant-b"),
        422,
        "InvalidRequest",
        "images[0]",
        "not-available",
    )
    settings(SHARED_INPUT_PREFIXES="library/")
    assert (
        call(stack, "api-create-edit", body=edit(images=[image]), tenant="tenant-b").status == 202
    )


def test_an_operator_key_lists_and_cancels_upload_jobs(stack, settings):
    s3, bucket = boto3.client("s3"), stack.physical["InputBucket"]
    s3.put_object(
        Bucket=bucket,
        Key="recipes/slow.json",
        Body=json.dumps({"model": "qwen-image-2.0-pro", "prompt": "x"}).encode(),
    )  # 2 per minute: it waits
    for name in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=f"inbox/slow/{name}.png", Body=image_bytes())
    stack.pump()
    assert call(stack, "api-list-jobs", tenant="operator-key").body["jobs"] == []
    settings(OPERATOR_API_KEY_IDS="operator-key")
    listed = call(stack, "api-list-jobs", tenant="operator-key").body["jobs"]
    assert {job["source"] for job in listed} == {"s3"} and len(listed) == 3
    waiting = next(job for job in listed if job["status"] == "queued")
    canceled = call(
        stack, "api-cancel-job", path=f"/jobs/{waiting['id']}/cancel", tenant="operator-key"
    )
    assert canceled.status == 200 and canceled.body["status"] == "canceled"


# ---- uploads ------------------------------------------------------------------------------------


def output_keys(stack) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=stack.physical["OutputBucket"])
    return [item["Key"] for item in listed.get("Contents", [])]


@pytest.mark.parametrize(
    "key",
    [
        "inbox/r/" + "a" * 1010 + ".png",  # its outputs' keys would pass S3's 1024 bytes
        "inbox/r/../../results/x.png",
        "inbox/r//a.png",
        "inbox/./r/a.png",
        "inbox/r/a\x01.png",
        "inbox/r/..",
    ],
)
def test_keys_with_dot_or_empty_segments_are_refused_in_a_safe_place(stack, key):
    s3, bucket = boto3.client("s3"), stack.physical["InputBucket"]
    s3.put_object(Bucket=bucket, Key="recipes/r.json", Body=b'{"prompt": "x"}')
    s3.put_object(Bucket=bucket, Key=key, Body=image_bytes())
    stack.pump()
    written = output_keys(stack)
    assert written == [keys.rejection_key(key)] and written[0].startswith(keys.REJECTED)
    record = json.loads(
        boto3.client("s3")
        .get_object(Bucket=stack.physical["OutputBucket"], Key=written[0])["Body"]
        .read()
    )
    assert record["error"]["code"] == "UnsafeKey" and record["input"].endswith(key)
    assert stack.emulator.fake.counters.total() == 0


def test_folder_markers_are_ignored(stack):
    boto3.client("s3").put_object(Bucket=stack.physical["InputBucket"], Key="inbox/r/", Body=b"")
    stack.pump()
    assert output_keys(stack) == []


@pytest.mark.parametrize(
    "recipe, says",
    [
        ({"prompt": "x", "images": 5}, "images must be a list of strings"),
        ({"prompt": "x", "images": [{"url": "a"}]}, "images must be a list of strings"),
        ({"prompt": "x", "n": "two"}, "n:"),
        ({"prompt": "x", "metadata": [1]}, "metadata"),
    ],
)
def test_malformed_recipes_are_answered_not_retried(stack, recipe, says):
    s3, bucket = boto3.client("s3"), stack.physical["InputBucket"]
    s3.put_object(Bucket=bucket, Key="recipes/odd.json", Body=json.dumps(recipe).encode())
    s3.put_object(Bucket=bucket, Key="inbox/odd/photo.png", Body=image_bytes())
    assert stack.pump() == 1  # handled once: not back on the queue, not dead-lettered
    record = json.loads(
        boto3.client("s3")
        .get_object(Bucket=stack.physical["OutputBucket"], Key="outbox/odd/photo.error.json")[
            "Body"
        ]
        .read()
    )
    assert says in record["error"]["message"] + json.dumps(record["error"]["details"])
    jobs, _ = stack.ctx.jobs.list_for_tenant(uploads.UPLOAD_TENANT, 10, None, None)
    assert jobs == []


@pytest.mark.parametrize(
    "reference", ["inbox/r/a.png", "/inbox/r/a.png", "s3://{input}/inbox/r/a.png"]
)
def test_manifests_may_not_name_what_triggers_jobs(stack, reference):
    s3, bucket = boto3.client("s3"), stack.physical["InputBucket"]
    manifest = {"prompt": "x", "images": [reference.format(input=bucket)]}
    s3.put_object(Bucket=bucket, Key="inbox/m.json", Body=json.dumps(manifest).encode())
    stack.pump()
    record = json.loads(
        boto3.client("s3")
        .get_object(Bucket=stack.physical["OutputBucket"], Key="outbox/m.error.json")["Body"]
        .read()
    )
    assert "triggers jobs" in record["error"]["message"]


def test_manifests_may_not_name_api_tenants_uploads(stack):
    s3, bucket = boto3.client("s3"), stack.physical["InputBucket"]
    private = keys.upload_key("tenant-a", "png")
    s3.put_object(Bucket=bucket, Key=private, Body=image_bytes())
    s3.put_object(
        Bucket=bucket,
        Key="inbox/m.json",
        Body=json.dumps({"prompt": "x", "images": [private]}).encode(),
    )
    stack.pump()
    record = json.loads(
        boto3.client("s3")
        .get_object(Bucket=stack.physical["OutputBucket"], Key="outbox/m.error.json")["Body"]
        .read()
    )
    assert record["error"]["details"][0]["rule"] == "not-available"


# ---- small rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"n": True}, "n"),
        ({"seed": False}, "seed"),
        ({"n": 2.5}, "n"),  # 2.0 is the integer 2, as JSON Schema reads it
        ({"seed": "5"}, "seed"),
        ({"prompt_extend": "yes"}, "prompt_extend"),
        ({"model": ""}, "model"),
        ({"prompt": "\u200b\u200d\ufeff\u2060 \u3164"}, "prompt"),
    ],
)
def test_small_rules(stack, fields, field):
    refused(call(stack, "api-create-edit", body=edit(**fields)), 422, "InvalidRequest", field)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_json_under_any_content_type_is_read_as_json(stack, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    answer = call(stack, "api-create-edit", body=edit(), headers=headers)
    assert answer.status == 202 and "statusCode" not in answer.body, answer
