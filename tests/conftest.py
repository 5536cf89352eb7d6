from __future__ import annotations

import sys
from pathlib import Path

import pytest

from qwen_edit.adapters.dashscope import DashScopeClient
from qwen_edit_cli.emulator.faults import Faults
from qwen_edit_cli.emulator.server import EmulatorServer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def emulator():
    # Fast task timings; provider limits off except in the tests about them.
    faults = Faults(pending_s=0.3, running_s=0.3, sync_latency_s=0, enforce_rate_limits=False)
    with EmulatorServer(faults=faults) as server:
        yield server


@pytest.fixture
def client(emulator):
    dashscope = DashScopeClient("sk-test", base_url=emulator.api_base_url)
    yield dashscope
    dashscope.close()


@pytest.fixture
def qwen_edit_cmd() -> list[str]:
    return [sys.executable, "-m", "qwen_edit_cli.main"]


# ---- the stack under moto: template.yaml's resources, real handlers, the emulator ------------


@pytest.fixture
def stack(emulator):
    """template.yaml under moto with real Step Functions execution, polling every second."""
    from qwen_edit_cli.local.inprocess import in_process_stack, offline_resolve

    with in_process_stack(emulator, poll_interval=1, resolve=offline_resolve) as local:
        yield local


@pytest.fixture
def tables(monkeypatch):
    """Only moto's DynamoDB, with the template's tables (no workflow, no provider)."""
    import boto3
    from moto import mock_aws

    from qwen_edit_cli.local.fidelity import atomic_dynamodb
    from qwen_edit_cli.local.inprocess import FAKE_AWS_ENV
    from qwen_edit_cli.local.template import Resolver, load_template

    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with mock_aws(), atomic_dynamodb():
        resources = load_template()["Resources"]
        resolve = Resolver(load_template(), {}, lambda name: name, lambda *a: "")
        dynamodb = boto3.client("dynamodb")
        for logical in ("JobsTable", "LimitsTable", "QueueTable"):
            spec = resolve.value(resources[logical]["Properties"])
            dynamodb.create_table(
                TableName=logical,
                KeySchema=spec["KeySchema"],
                AttributeDefinitions=spec["AttributeDefinitions"],
                BillingMode="PAY_PER_REQUEST",
                **(
                    {"GlobalSecondaryIndexes": spec["GlobalSecondaryIndexes"]}
                    if "GlobalSecondaryIndexes" in spec
                    else {}
                ),
            )
        yield dynamodb
