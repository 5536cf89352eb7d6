"""`qwen-edit local serve` as a person uses it: a subprocess, its ready file, plain HTTP, the CLI,
and boto3 against its S3 endpoint."""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
import pytest

from qwen_edit_cli.local.samples import data_url, image_bytes, png_size

from processes import ServedProcess, serving
from webhook_receiver import Receiver

KEY_A, KEY_B = "qe-test-tenant-a", "qe-test-tenant-b"


SERVE = [
    sys.executable,
    "-m",
    "qwen_edit_cli.main",
    "local",
    "serve",
    "--port",
    "0",
    "--poll-interval",
    "1",
    "--api-key",
    KEY_A,
    "--api-key",
    KEY_B,
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with serving(SERVE, tmp_path_factory.mktemp("serve")) as ready:
        yield ready


def cli(served, *args, key=KEY_A):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "qwen_edit_cli.main",
            *args,
            "--api-url",
            served["api_url"],
            "--api-key",
            key,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ready_file_names_everything(served):
    assert set(served) == {
        "api_url",
        "api_key",
        "s3_endpoint_url",
        "region",
        "input_bucket",
        "output_bucket",
        "dashscope_url",
        "webhook_secret",
    }
    assert served["api_key"] == KEY_A and served["api_url"].endswith("/v1")
    assert served["webhook_secret"].startswith("whsec_")


def test_plain_http_with_and_without_a_key(served):
    api = served["api_url"]
    models = httpx.get(f"{api}/models", headers={"x-api-key": KEY_A})
    assert models.status_code == 200 and models.json()["models"]
    for headers in ({}, {"x-api-key": "not-a-key"}):
        refused = httpx.get(f"{api}/models", headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "InvalidApiKey"
    assert httpx.get(f"{api}/nothing", headers={"x-api-key": KEY_A}).status_code == 404


def test_bodies_over_the_lambda_limit_are_413(served):
    too_big = httpx.post(
        f"{served['api_url']}/edits",
        content=b"x" * (6 * 1024 * 1024 + 1),
        headers={"x-api-key": KEY_A, "content-type": "application/json"},
    )
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "RequestTooLarge"


def test_cli_edit_uploads_waits_and_downloads(served, tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(image_bytes("jpeg", (800, 600)))
    result = cli(
        served,
        "edit",
        str(photo),
        "-p",
        "make it dusk",
        "-n",
        "2",
        "--seed",
        "5",
        "--out",
        str(tmp_path / "out"),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["status"] == "succeeded" and len(job["saved"]) == 2
    assert all(png_size(Path(path).read_bytes()) for path in job["saved"])
    listed = json.loads(cli(served, "jobs", "list", "--json").stdout)
    assert job["id"] in [j["id"] for j in listed["jobs"]]
    again = cli(served, "jobs", "get", job["id"], "--json")
    assert json.loads(again.stdout)["status"] == "succeeded"
    assert cli(served, "jobs", "cancel", job["id"]).returncode == 5  # already finished
    assert cli(served, "jobs", "get", job["id"], key=KEY_B).returncode == 4  # another tenant


def test_cli_generate_without_waiting_and_errors(served):
    queued = cli(served, "generate", "-p", "a kite", "--model", "qwen-image", "--no-wait", "--json")
    assert queued.returncode == 0 and json.loads(queued.stdout)["status"] == "queued"
    invalid = cli(served, "generate", "-p", "x", "--model", "qwen-image-max", "-n", "3")
    assert invalid.returncode == 6 and "n: qwen-image-max" in invalid.stderr
    assert cli(served, "jobs", "get", "nope").returncode == 4
    assert cli(served, "jobs", "list", key="wrong").returncode == 3


def test_cli_deadlines_and_retries(served):
    args = ("generate", "-p", "a kite", "--model", "qwen-image", "--no-wait", "--json")
    queued = json.loads(cli(served, *args, "--cancel-after", "600").stdout)
    assert queued["start_by"] and queued["request"]["cancel_after"] == 600
    both = cli(served, *args, "--cancel-after", "6", "--deadline", "2030-01-01T00:00:00Z")
    assert both.returncode == 2  # argparse: one or the other
    canceled = json.loads(cli(served, "jobs", "cancel", queued["id"], "--json").stdout)
    assert canceled["error"]["retryable"] is True
    retried = json.loads(cli(served, "jobs", "retry", queued["id"], "--json").stdout)
    assert retried["retry_of"] == queued["id"] and retried["status"] == "queued"
    assert cli(served, "jobs", "retry", retried["id"]).returncode == 5  # not failed: 409


def test_cli_chains_steps_and_shows_each(served, tmp_path):
    step = '{"prompt": "add a caption", "n": 2}'
    args = ("generate", "-p", "a teapot", "--model", "qwen-image-plus", "--then", "on white")
    result = cli(served, *args, "--then", step, "--correlation-id", "order-17", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "step 0   succeeded  qwen-image-plus" in result.stdout
    assert "step 2   succeeded  qwen-image-edit-plus      2 image(s)" in result.stdout
    assert len(list(tmp_path.glob("*.png"))) == 2  # the last step's outputs
    bad = cli(served, *args, "--then", '{"prompt": "x", "model": "qwen-image-max"}')
    assert bad.returncode == 6 and "then[1].model" in bad.stderr
    assert cli(served, *args, "--then", "{not json").returncode == 2


def test_cli_usage_shows_the_tenants_own_numbers(served, tmp_path):
    made = cli(
        served, "generate", "-p", "a kite", "--model", "qwen-image-2.0", "-n", "2",
        "--out", str(tmp_path), "--json", key=KEY_B,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    report = json.loads(cli(served, "usage", "--group-by", "model", "--json", key=KEY_B).stdout)
    group = next(g for g in report["groups"] if g["key"] == "qwen-image-2.0")
    assert group["jobs"]["succeeded"] == 1 and group["images"] == 2
    assert group["estimated_cost"] == pytest.approx(0.02)  # the local stack's example prices
    table = cli(served, "usage", "--group-by", "model", key=KEY_B)
    assert table.returncode == 0, table.stderr
    assert "qwen-image-2.0" in table.stdout and "cost (USD)" in table.stdout
    assert "prices: local demo: example prices, not real ones" in table.stdout
    mine = json.loads(cli(served, "usage", "--group-by", "model", "--json").stdout)
    assert "qwen-image-2.0" not in [g["key"] for g in mine["groups"]]  # only tenant B's job
    refused = cli(served, "usage", "--from", "2026-11-02", "--to", "2026-11-01")
    assert refused.returncode == 6 and "from must be before to" in refused.stderr


def test_cli_webhook_events_arrive_in_order_each_signed(served, tmp_path):
    receiver = Receiver(served["webhook_secret"], [])  # it verifies every delivery
    made = cli(
        served, "generate", "-p", "a kite", "--webhook-url", receiver.url,
        "--webhook-events", "queued,running,succeeded", "--out", str(tmp_path), "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    job = json.loads(made.stdout)
    assert job["webhook_events"] == ["queued", "running", "succeeded"]
    deadline = time.monotonic() + 30
    while len(receiver.seen) < 3:
        assert time.monotonic() < deadline, receiver.seen
        time.sleep(0.2)
    ids, payloads, _ = zip(*receiver.seen, strict=True)
    assert [(p["type"], p["sequence"]) for p in payloads] == [
        ("job.queued", 1),
        ("job.running", 2),
        ("job.succeeded", 3),
    ]
    assert list(ids) == [f"msg_{job['id']}_1", f"msg_{job['id']}_2", f"msg_{job['id']}"]
    receiver.stop()
    refused = cli(served, "generate", "-p", "x", "--webhook-events", "queued,queued")
    assert refused.returncode == 6 and "webhook_events" in refused.stderr


def test_uploads_to_the_inbox_over_s3(served):
    s3 = boto3.client(
        "s3",
        endpoint_url=served["s3_endpoint_url"],
        region_name=served["region"],
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    s3.put_object(
        Bucket=served["input_bucket"],
        Key="recipes/sketch.json",
        Body=json.dumps({"prompt": "Make it a pencil sketch"}).encode(),
    )
    s3.put_object(
        Bucket=served["input_bucket"], Key="inbox/sketch/park bench.jpg", Body=image_bytes("jpeg")
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            png = s3.get_object(Bucket=served["output_bucket"], Key="outbox/sketch/park bench.png")[
                "Body"
            ].read()
            break
        except s3.exceptions.NoSuchKey:
            time.sleep(0.5)
    else:
        pytest.fail("no output for the upload")
    assert png_size(png)


def test_events_put_submits_a_job_for_the_first_keys_tenant(served, tmp_path):
    """README "Pipelines": the local stack maps qwen-edit.demo to the first key's tenant, and
    `qwen-edit events put` puts the sample event on its bus."""
    ready_file = tmp_path / "ready.json"
    ready_file.write_text(json.dumps(served))
    sample = Path(__file__).resolve().parents[2] / "events" / "edit-requested.json"
    put = subprocess.run(
        [
            *(sys.executable, "-m", "qwen_edit_cli.main", "events", "put", str(sample)),
            *("--ready-file", str(ready_file), "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert put.returncode == 0, put.stderr
    outcome = json.loads(put.stdout)
    assert len(outcome["event_ids"]) == 1 and outcome["failed"] == []
    headers = {"x-api-key": KEY_A}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = httpx.get(f"{served['api_url']}/jobs", headers=headers).json()["jobs"]
        mine = [j for j in jobs if j["source"] == "event" and j["status"] == "succeeded"]
        if mine:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"no succeeded job from the event: {jobs}")
    assert mine[0]["correlation_id"] == "order-17" and mine[0]["id"].startswith("ev-")
    other = httpx.get(f"{served['api_url']}/jobs/{mine[0]['id']}", headers={"x-api-key": KEY_B})
    assert other.status_code == 404  # the other tenant's


def test_stops_within_seconds_in_the_middle_of_a_burst(tmp_path):
    """SIGTERM while dozens of jobs wait for provider slots: it exits 0 at once (an exit that
    took longer than 10 s fails; the watchdog in `local serve` forces one after 10 s)."""
    # A burst of 40 at once: over the usage plan's default burst of 20 (test_rate_limits.py).
    server = ServedProcess([*SERVE, "--parameter-overrides", "ApiThrottleBurstLimit=40"], tmp_path)
    ready = server.start()
    image = data_url()
    with (
        httpx.Client(base_url=ready["api_url"], headers={"x-api-key": KEY_A}, timeout=60) as api,
        ThreadPoolExecutor(max_workers=8) as pool,
    ):
        created = list(
            pool.map(
                lambda i: (
                    api.post("/edits", json={"prompt": f"burst {i}", "images": [image]}).status_code
                ),
                range(40),
            )
        )
        assert created == [202] * 40
        waiting = api.get("/jobs", params={"status": "queued"}).json()["jobs"]
    assert waiting, "the burst should still be queued when the server is stopped"
    server.stop(timeout=10)


def test_undecodable_pixel_data_fails_at_once_not_after_retries(served):
    """Chunks and CRCs intact, pixel data not zlib: only decoding finds it. The provider (the
    emulator, which fetches the stored input from the local S3) answers 400 InvalidParameter,
    a final error: the job fails after one call instead of retrying."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    broken = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"not zlib at all" * 4)
        + chunk(b"IEND", b"")
    )
    image = "data:image/png;base64," + base64.b64encode(broken).decode()
    api = httpx.Client(base_url=served["api_url"], headers={"x-api-key": KEY_A}, timeout=30)
    job = api.post("/edits", json={"prompt": "x", "images": [image]}).json()
    deadline = time.monotonic() + 60
    while (job := api.get(f"/jobs/{job['id']}").json())["status"] not in ("failed", "succeeded"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    assert job["status"] == "failed" and job["error"]["code"] == "InvalidParameter", job


def test_the_console_loads_without_a_key_and_s3_answers_its_upload_preflight(served):
    root = served["api_url"].removesuffix("/v1")
    assert httpx.get(root + "/").headers["location"] == "/v1/console"
    page = httpx.get(served["api_url"] + "/console")  # no x-api-key
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert served["s3_endpoint_url"] in page.headers["content-security-policy"]
    assert httpx.get(served["api_url"] + "/models").status_code == 401  # the rest needs a key
    upload = httpx.post(
        served["api_url"] + "/uploads",
        headers={"x-api-key": KEY_A},
        json={"content_type": "image/png"},
    ).json()
    asked = {"Origin": root, "Access-Control-Request-Headers": "content-type"}
    preflight = httpx.options(
        upload["upload_url"], headers={**asked, "Access-Control-Request-Method": "PUT"}
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "PUT" in preflight.headers["access-control-allow-methods"]
    # As S3 answers a preflight that no rule of the bucket allows (template.yaml: PUT only).
    refused = httpx.options(
        upload["upload_url"], headers={**asked, "Access-Control-Request-Method": "DELETE"}
    )
    assert refused.status_code == 403
