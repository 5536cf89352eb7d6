"""`qwen-edit local serve`: the whole service on this machine, offline (SPEC §7)."""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import boto3

from qwen_edit.adapters.dashscope import base_url_for
from qwen_edit.settings import ProviderAccess
from qwen_edit_cli.emulator.server import EmulatorServer
from qwen_edit_cli.local.apigateway import LocalApiGateway, key_id
from qwen_edit_cli.local.fidelity import MotoServer
from qwen_edit_cli.local.inprocess import REGION, Pump, event_parameters, in_process_stack

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request


@dataclass
class Ready:
    api_url: str
    api_key: str
    s3_endpoint_url: str
    region: str
    input_bucket: str
    output_bucket: str
    dashscope_url: str
    webhook_secret: str


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextmanager
def local_service(
    *,
    host: str = "127.0.0.1",
    port: int = 3000,
    poll_interval: int = 2,
    api_keys: list[str] | None = None,
    operator_keys: list[str] | None = None,
    provider: str = "emulator",
    region: str = "singapore",
    log_level: str = "INFO",
    parameters: dict[str, str] | None = None,
) -> Iterator[Ready]:
    """`parameters`: template.yaml's, e.g. the usage plan's ApiThrottleRateLimit."""
    api_keys = api_keys or [f"qe-local-{secrets.token_hex(12)}"]
    operator_keys = operator_keys or []
    parameters = {
        # As OperatorApiKeyIds in a deployment: these keys act for the upload-triggered jobs.
        "OperatorApiKeyIds": ",".join(key_id(key) for key in operator_keys),
        "LogLevel": log_level,
        **(parameters or {}),
    }
    # Events from qwen-edit.demo submit jobs for the first key's tenant (README "Pipelines").
    parameters.update(event_parameters(key_id(api_keys[0]), parameters))
    with ExitStack() as scope:
        aws_port = _free_port(host)
        moto = MotoServer(ip_address=host, port=aws_port, verbose=False)
        moto.start()
        scope.callback(moto.stop)
        aws_url = f"http://{host}:{aws_port}"
        if provider == "emulator":
            emulator = scope.enter_context(EmulatorServer(host))
            stack = scope.enter_context(
                in_process_stack(
                    emulator,
                    poll_interval=poll_interval,
                    aws_endpoint=aws_url,
                    template_parameters=parameters,
                )
            )
            dashscope_url = emulator.api_base_url
        else:
            key = os.environ.get("DASHSCOPE_API_KEY")
            if not key:
                raise SystemExit("--provider dashscope needs DASHSCOPE_API_KEY")
            stack = scope.enter_context(
                in_process_stack(
                    None,
                    poll_interval=poll_interval,
                    aws_endpoint=aws_url,
                    dashscope_key=key,
                    template_parameters={**parameters, "DashScopeRegion": region},
                )
            )
            dashscope_url = base_url_for(stack.ctx.need(ProviderAccess).region)
        # Last out: what the functions measured, as the dashboard would show it.
        scope.callback(lambda: print(stack.metrics.summary(), file=sys.stderr, flush=True))
        pump = Pump(stack)
        pump.start()
        scope.callback(pump.stop)
        gateway = LocalApiGateway(stack, [*api_keys, *operator_keys], host, port).start()
        scope.callback(gateway.stop)
        secret = boto3.client("secretsmanager").get_secret_value(
            SecretId=stack.physical["WebhookSecret"]
        )["SecretString"]
        yield Ready(
            api_url=gateway.url,
            api_key=api_keys[0],
            s3_endpoint_url=aws_url,
            region=REGION,
            input_bucket=stack.physical["InputBucket"],
            output_bucket=stack.physical["OutputBucket"],
            dashscope_url=dashscope_url,
            webhook_secret=f"whsec_{secret}",
        )


def announce_ready(ready: Ready, ready_file: Path | None) -> None:
    """The ready document on stdout and in `ready_file`. Stdout often ends up in a log file, so
    with a ready file the webhook secret is only there; without one, stdout carries it."""
    document = asdict(ready)
    shown = (
        document if ready_file is None else {**document, "webhook_secret": "(in the ready file)"}
    )
    print(json.dumps(shown), flush=True)
    if ready_file is not None:
        ready_file.write_text(json.dumps(document))
