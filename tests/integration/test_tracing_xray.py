"""The X-Ray adapter (adapters/tracing.py) with the real aws_xray_sdk recorder, as in Lambda
(`LAMBDA_TASK_ROOT` and a trace header): what reaches the emitter is the subsegments' documents,
kept in memory here (nothing is sent to the daemon). The patching of botocore (not httpx), and the
no-op when tracing is off, are checked in fresh interpreters: both are process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Tracer
from aws_xray_sdk.core.emitters.udp_emitter import UDPEmitter
from aws_xray_sdk.core.recorder import AWSXRayRecorder

from qwen_edit.adapters.tracing import XRayTracing, traced
from qwen_edit.domain.provider import ProviderError

TRACE_ID = "1-5759e988-bd862e3fe1be46a994272793"
IN_LAMBDA = {
    "LAMBDA_TASK_ROOT": "/var/task",
    "_X_AMZN_TRACE_ID": f"Root={TRACE_ID};Parent=53995c3f42cd8ad8;Sampled=1",
}
STORE_ENV = {  # the Store function's settings (settings.model_for("store"))
    "JOBS_TABLE": "jobs",
    "QUEUE_TABLE": "queue",
    "INPUT_BUCKET": "in",
    "OUTPUT_BUCKET": "out",
    "DASHSCOPE_API_KEY_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:k",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "x",
    "POWERTOOLS_SERVICE_NAME": "qwen-edit",
}
SWITCHES_OFF = ("POWERTOOLS_TRACE_DISABLED", "AWS_SAM_LOCAL")  # unless a test sets them


class Emitted(UDPEmitter):
    """The emitter, keeping each document it would send (no socket)."""

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []

    def send_entity(self, entity: Any) -> None:
        self.documents.append(json.loads(entity.serialize()))

    def named(self, name: str) -> dict[str, Any]:
        (document,) = [d for d in self.documents if d["name"] == name]
        return document


@pytest.fixture
def xray(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[XRayTracing, Emitted]]:
    for name, value in IN_LAMBDA.items():
        monkeypatch.setenv(name, value)
    for name in SWITCHES_OFF:
        monkeypatch.delenv(name, raising=False)
    emitted = Emitted()
    recorder = AWSXRayRecorder()  # in Lambda: one facade segment per invocation and thread
    recorder.configure(emitter=emitted, sampling=False, streaming_threshold=0)
    Tracer._reset_config()  # Tracer's settings are shared by every instance: start clean
    try:
        yield XRayTracing(Tracer(provider=recorder, auto_patch=False)), emitted
    finally:
        Tracer._reset_config()


class Port:
    def __init__(self, error: Exception | None = None):
        self.error = error

    def transition(self, job_id: str) -> str:
        return f"{job_id} moved"

    def submit(self) -> None:
        if self.error is not None:
            raise self.error


def test_spans_are_subsegments_annotated_with_the_job_and_its_model(xray: Any) -> None:
    tracing, emitted = xray
    jobs = traced(tracing, "jobs", Port())
    tracing.follow("job-1", "qwen-image-edit-plus")
    assert jobs.transition("job-1") == "job-1 moved"
    document = emitted.named("dynamodb.transition")
    assert document["annotations"] == {"job_id": "job-1", "model": "qwen-image-edit-plus"}
    assert (document["trace_id"], document["parent_id"]) == (TRACE_ID, "53995c3f42cd8ad8")


def test_an_error_is_recorded_on_the_subsegment_and_raised_unchanged(xray: Any) -> None:
    tracing, emitted = xray
    refused = ProviderError(code="Throttling.RateQuota", message="slow down", retryable=True)
    provider = traced(tracing, "provider", Port(error=refused))
    tracing.follow("job-2", "qwen-image-plus")
    with pytest.raises(ProviderError) as raised:
        provider.submit()
    assert raised.value is refused
    document = emitted.named("provider.submit")
    assert document["fault"] is True
    assert document["cause"]["exceptions"][0]["type"] == "ProviderError"
    assert document["annotations"]["job_id"] == "job-2"


def test_threads_annotate_with_their_own_job(xray: Any) -> None:
    tracing, emitted = xray
    provider = traced(tracing, "provider", Port())
    followed = threading.Barrier(2, timeout=10)

    def call(job_id: str) -> None:
        tracing.follow(job_id, "qwen-image-edit")
        followed.wait()  # both threads follow their job before either one sends
        provider.submit()

    workers = [threading.Thread(target=call, args=(job_id,)) for job_id in ("job-a", "job-b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(d["annotations"]["job_id"] for d in emitted.documents) == ["job-a", "job-b"]


def _fresh_python(code: str, env: dict[str, str]) -> Any:
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**{k: v for k, v in os.environ.items() if k not in SWITCHES_OFF}, **env},
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent,
    )
    return json.loads(done.stdout.splitlines()[-1])


NESTED = """
import json, httpx
from aws_xray_sdk.core import xray_recorder
from botocore.stub import Stubber
from qwen_edit import runtime
from qwen_edit.adapters.tracing import traced
from test_tracing_xray import Emitted

emitted = Emitted()
xray_recorder.configure(emitter=emitted, sampling=False)
ctx = runtime.context("store")
ctx.tracing.follow("job-3", "qwen-image-edit-plus")
with Stubber(ctx.objects.client) as s3:  # the real S3 adapter, answered without the network
    s3.add_response("put_object", {})
    ctx.objects.put("out", "results/job-3/0.png", b"png", "image/png")
http = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200)))

class Provider:
    def download(self, url):
        return http.get(url).content

traced(ctx.tracing, "provider", Provider()).download("https://dashscope.example/0.png")
print(json.dumps(emitted.documents))
"""


def test_the_aws_sdk_calls_nest_inside_the_spans_and_no_url_is_recorded() -> None:
    documents = {d["name"]: d for d in _fresh_python(NESTED, {**STORE_ENV, **IN_LAMBDA})}
    put, download = documents["s3.put"], documents["provider.download"]
    assert put["annotations"] == {"job_id": "job-3", "model": "qwen-image-edit-plus"}
    assert documents["s3"]["parent_id"] == put["id"]  # botocore's own subsegment
    assert documents["s3"]["aws"]["operation"] == "PutObject"
    # httpx is not patched: a webhook URL's path may hold its receiver's secret.
    assert "dashscope.example" not in documents and "http" not in download


OFF = """
import json, sys
from qwen_edit import runtime
ctx = runtime.context("store")
ctx.tracing.follow("job-4")
print(json.dumps([type(ctx.tracing).__name__, type(ctx.objects).__name__,
                  "aws_xray_sdk" in sys.modules]))
"""


@pytest.mark.parametrize(
    "env",
    [{}, {**IN_LAMBDA, "POWERTOOLS_TRACE_DISABLED": "true"}, {"LAMBDA_TASK_ROOT": "/var/task"}],
    ids=["outside Lambda", "disabled", "no trace header"],
)
def test_with_tracing_off_nothing_is_imported_or_wrapped(env: dict[str, str]) -> None:
    assert _fresh_python(OFF, {**STORE_ENV, **env}) == ["NoTracing", "S3ObjectStore", False]
