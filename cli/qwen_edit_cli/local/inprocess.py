"""The whole service in this process: moto (with Step Functions executing the real definition),
template.yaml's resources, the real handlers as Lambda functions, an emulator as the provider."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import boto3
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from qwen_edit import runtime
from qwen_edit.adapters.aws import StepFunctionsExecutions
from qwen_edit_cli.emulator.server import EmulatorServer
from qwen_edit_cli.local.stack import LocalStack, build_stack

# moto logs every Choice `IsPresent` test of a missing path as an ERROR; it is not one.
logging.getLogger("moto.stepfunctions.parser.asl.component.eval_component").setLevel(
    logging.CRITICAL)

LOCAL_ADMISSION_MARGIN = "0.3"
FAKE_AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@contextmanager
def in_process_stack(emulator: EmulatorServer, *, poll_interval: int = 1,
                     **parameters_: Any) -> Iterator[LocalStack]:
    """Yields the stack with `.ctx`: the context the API and trigger functions get (the same
    as the workflow's, plus STATE_MACHINE_ARN), and `.emulator`. The process environment is
    restored afterwards."""
    saved = dict(os.environ)
    os.environ.update(FAKE_AWS_ENV)
    try:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            parameters.clear_caches()
            secret = boto3.client("secretsmanager").create_secret(
                Name="dashscope", SecretString="sk-local")["ARN"]
            stack = build_stack({"DashScopeApiKeySecretArn": secret,
                                 "DashScopeBaseUrl": emulator.api_base_url,
                                 "TaskApiBaseUrl": emulator.task_api_base_url,
                                 "PollIntervalSeconds": poll_interval, **parameters_})
            # One process runs moto, every handler and the emulator, so a call reaches the
            # emulator later after its claim than it would reach DashScope from its own Lambda.
            os.environ["ADMISSION_MARGIN_SECONDS"] = LOCAL_ADMISSION_MARGIN
            os.environ["WEBHOOK_ALLOW_LOOPBACK"] = "true"  # receivers on this machine
            runtime.context.cache_clear()
            stack.ctx = replace(runtime.context(),
                                executions=StepFunctionsExecutions(stack.state_machine_arn))
            stack.emulator = emulator
            with stack.dispatcher.installed():
                stack.pump()  # S3's s3:TestEvent, sent when the notification was configured
                yield stack
    finally:
        os.environ.clear()
        os.environ.update(saved)
        runtime.context.cache_clear()
        parameters.clear_caches()
