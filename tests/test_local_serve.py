"""`qwen-edit local serve` as a person uses it: a subprocess, its ready file, plain HTTP, the CLI,
and boto3 against its S3 endpoint."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import boto3
import httpx
import pytest

from conftest import image_bytes, png_size

KEY_A, KEY_B = "qe-test-tenant-a", "qe-test-tenant-b"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import sys
    ready_file = tmp_path_factory.mktemp("serve") / "ready.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "qwen_edit_cli.main", "local", "serve", "--port", "0",
         "--poll-interval", "1", "--api-key", KEY_A, "--api-key", KEY_B,
         "--ready-file", str(ready_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        for _ in range(300):
            if ready_file.exists() and ready_file.read_text():
                break
            assert process.poll() is None, process.stderr.read()
            time.sleep(0.1)
        ready = json.loads(ready_file.read_text())
        yield ready
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def cli(served, *args, key=KEY_A):
    import sys
    return subprocess.run([sys.executable, "-m", "qwen_edit_cli.main", *args,
                           "--api-url", served["api_url"], "--api-key", key],
                          capture_output=True, text=True, timeout=120)


def test_ready_file_names_everything(served):
    assert set(served) == {"api_url", "api_key", "s3_endpoint_url", "region", "input_bucket",
                           "output_bucket", "dashscope_url", "webhook_secret"}
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
    too_big = httpx.post(f"{served['api_url']}/edits", content=b"x" * (6 * 1024 * 1024 + 1),
                         headers={"x-api-key": KEY_A, "content-type": "application/json"})
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "RequestTooLarge"


def test_cli_edit_uploads_waits_and_downloads(served, tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(image_bytes("jpeg", (800, 600)))
    result = cli(served, "edit", str(photo), "-p", "make it dusk", "-n", "2", "--seed", "5",
                 "--out", str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["status"] == "succeeded" and len(job["saved"]) == 2
    assert all(png_size(open(path, "rb").read()) for path in job["saved"])
    listed = json.loads(cli(served, "jobs", "list", "--json").stdout)
    assert job["id"] in [j["id"] for j in listed["jobs"]]
    again = cli(served, "jobs", "get", job["id"], "--json")
    assert json.loads(again.stdout)["status"] == "succeeded"
    assert cli(served, "jobs", "cancel", job["id"]).returncode == 5  # already finished
    assert cli(served, "jobs", "get", job["id"], key=KEY_B).returncode == 4  # another tenant


def test_cli_generate_without_waiting_and_errors(served):
    queued = cli(served, "generate", "-p", "a kite", "--model", "qwen-image", "--no-wait",
                 "--json")
    assert queued.returncode == 0 and json.loads(queued.stdout)["status"] == "queued"
    invalid = cli(served, "generate", "-p", "x", "--model", "qwen-image-max", "-n", "3")
    assert invalid.returncode == 6 and "n: qwen-image-max" in invalid.stderr
    assert cli(served, "jobs", "get", "nope").returncode == 4
    assert cli(served, "jobs", "list", key="wrong").returncode == 3


def test_uploads_to_the_inbox_over_s3(served):
    s3 = boto3.client("s3", endpoint_url=served["s3_endpoint_url"], region_name=served["region"],
                      aws_access_key_id="local", aws_secret_access_key="local")
    s3.put_object(Bucket=served["input_bucket"], Key="recipes/sketch.json",
                  Body=json.dumps({"prompt": "Make it a pencil sketch"}).encode())
    s3.put_object(Bucket=served["input_bucket"], Key="inbox/sketch/park bench.jpg",
                  Body=image_bytes("jpeg"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            png = s3.get_object(Bucket=served["output_bucket"],
                                Key="outbox/sketch/park bench.png")["Body"].read()
            break
        except s3.exceptions.NoSuchKey:
            time.sleep(0.5)
    else:
        pytest.fail("no output for the upload")
    assert png_size(png)
