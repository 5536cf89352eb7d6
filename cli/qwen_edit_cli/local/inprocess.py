"""The whole service in this process: AWS emulated by moto (in-process for tests, or moto's server
on loopback for `local serve`), template.yaml's resources, the real handlers as the Lambda
functions, and a provider (the emulator, or DashScope itself)."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

import boto3
import httpx
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from qwen_edit import runtime
from qwen_edit.domain.catalog import MODELS
from qwen_edit_cli.emulator.server import EmulatorServer
from qwen_edit_cli.local.fidelity import as_on_aws
from qwen_edit_cli.local.stack import LocalStack, build_stack

# moto logs every Choice `IsPresent` test of a missing path as an ERROR; it is not one.
logging.getLogger("moto.stepfunctions.parser.asl.component.eval_component").setLevel(
    logging.CRITICAL
)

# One process runs moto, every handler and the emulator, so the emulator stamps a call's arrival
# when this interpreter lets it, later and less evenly than a provider would: calls are spaced
# a little wider. With the emulator in its own process the deployment's margin holds
# (benchmarks/burst.py: 200 calls, none refused).
LOCAL_ADMISSION_MARGIN = 0.2
REGION = "us-east-1"
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


# ModelPrices of the local stack: examples, so that GET /v1/usage shows a cost offline. They are
# no provider's prices, and the answer's pricing.source says so.
LOCAL_PRICES = {
    "currency": "USD",
    "source": "local demo: example prices, not real ones",
    "per_image": dict.fromkeys(MODELS, 0.01),
}


# The local stack's submit-by-event mapping, for its demo: events whose source is this submit
# jobs for one tenant (in `local serve`, the first API key's; here, the tenant tests use).
DEMO_EVENT_SOURCE = "qwen-edit.demo"
DEMO_EVENT_TENANT = "tenant-a"


def event_parameters(
    tenant: str = DEMO_EVENT_TENANT, overrides: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """EventSources and EventSourceTenants: DEMO_EVENT_SOURCE → `tenant`, unless `overrides`
    (template parameters) name their own. A mapping overridden alone brings its sources, so
    `--parameter-overrides EventSourceTenants='{"a.b": "t"}'` is enough."""
    overrides = overrides or {}
    tenants = overrides.get("EventSourceTenants")
    if tenants is None:
        tenants = json.dumps({DEMO_EVENT_SOURCE: tenant})
    sources = overrides.get("EventSources")
    if sources is None:
        sources = ",".join(json.loads(tenants) if tenants else {})
    return {"EventSources": sources, "EventSourceTenants": tenants}


def offline_resolve(host: str, port: int) -> list[str]:
    """DNS that never leaves this machine (for tests): numeric hosts in every form getaddrinfo
    reads (`169.254.169.254`, `2852039166`, `0251.0376.0251.0376`, IPv6) resolve as a real
    resolver would, localhost to 127.0.0.1, and every other name to nothing."""
    if host == "localhost":
        return ["127.0.0.1"]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return []
    return sorted({str(info[4][0]) for info in infos})


@contextmanager
def in_process_stack(
    emulator: EmulatorServer | None,
    *,
    poll_interval: int = 1,
    aws_endpoint: str | None = None,
    dashscope_key: str = "sk-local",
    resolve: Callable[[str, int], list[str]] | None = None,
    template_parameters: Mapping[str, Any] | None = None,
    admission_margin: float = LOCAL_ADMISSION_MARGIN,
) -> Iterator[LocalStack]:
    """Yields the stack with `.ctx` (what the API and trigger functions get) and `.emulator`.

    `template_parameters`: values for template.yaml's parameters. `aws_endpoint`: a moto server
    to use (else moto runs in-process). Without an emulator the parameters must name the real
    provider (DashScopeRegion). `resolve` replaces DNS for every
    handler (tests pass offline_resolve). The environment is restored after.
    """
    saved = dict(os.environ)
    os.environ.update(FAKE_AWS_ENV)
    try:
        with ExitStack() as scope:
            scope.enter_context(as_on_aws())
            if aws_endpoint is None:
                scope.enter_context(
                    mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
                )
            else:
                os.environ["AWS_ENDPOINT_URL"] = aws_endpoint  # every boto3 client, handlers too
                os.environ["MOTO_PORT"] = aws_endpoint.rsplit(":", 1)[-1]  # its interpreter's calls
                httpx.post(
                    f"{aws_endpoint}/moto-api/config",
                    json={"stepfunctions": {"execute_state_machine": True}},
                ).raise_for_status()
            parameters.clear_caches()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated
            secret = boto3.client("secretsmanager").create_secret(
                Name="dashscope", SecretString=dashscope_key
            )["ARN"]
            provider = (
                {
                    "DashScopeBaseUrl": emulator.api_base_url,
                    "TaskApiBaseUrl": emulator.task_api_base_url,
                }
                if emulator
                else {}
            )
            stack = build_stack(
                {
                    "DashScopeApiKeySecretArn": secret,
                    "PollIntervalSeconds": poll_interval,
                    "ModelPrices": json.dumps(LOCAL_PRICES),
                    **provider,
                    **(template_parameters or {}),
                    **event_parameters(overrides=template_parameters),
                },
                endpoint_url=aws_endpoint,
            )
            os.environ["ADMISSION_MARGIN_SECONDS"] = str(admission_margin)
            # receivers and images on this machine (SPEC §7)
            os.environ["ALLOW_LOOPBACK_URLS"] = "true"
            # No X-Ray here (off outside Lambda anyway; tests/integration/test_tracing_xray.py).
            os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
            runtime.clear_overrides()
            # No CloudWatch here: metrics are tallied in memory, and summed up at the end (the
            # EMF adapter has its own test, tests/integration/test_metrics_emf.py).
            runtime.override_ports(
                wake_dispatcher=lambda: stack.wake_dispatcher,
                metrics=lambda: stack.metrics,
                pause=lambda: stack.dispatcher.pause,
            )
            if resolve is not None:
                runtime.override_ports(resolve=lambda: resolve)
            stack.emulator = emulator
            scope.enter_context(stack.dispatcher.installed())
            scope.callback(stack.stop_dispatching)
            stack.pump()  # S3's s3:TestEvent, sent when the notification was configured
            yield stack
    finally:
        os.environ.clear()
        os.environ.update(saved)
        runtime.clear_overrides()
        parameters.clear_caches()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated


class Pump(threading.Thread):
    """Lambda's SQS pollers, running until stopped (uploads and webhook deliveries)."""

    def __init__(self, stack: LocalStack):
        super().__init__(name="sqs-pollers", daemon=True)
        self.stack, self.stopping = stack, threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                if not any(source.poll_once(wait_seconds=1) for source in self.stack.event_sources):
                    self.stopping.wait(0.2)
            except Exception:
                logging.getLogger(__name__).exception("SQS poller")
                self.stopping.wait(1)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)
