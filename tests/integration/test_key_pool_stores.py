"""The key pool's adapters on moto: the pool's secret (never echoed), the dead keys' item shared
by every function, the tenants' own keys, and the runtime's clients per key."""

from __future__ import annotations

import json
import logging

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from qwen_edit.adapters.dashscope import DashScopeClient
from qwen_edit.adapters.provider_keys import DynamoKeyHealth, DynamoTenantKeys, tenant_keys
from qwen_edit.adapters.secrets import KeyRing
from qwen_edit.domain.catalog import Provider
from qwen_edit.domain.errors import JobFailed
from qwen_edit.domain.provider import Region
from qwen_edit.domain.provider_keys import DEFAULT_KEY_ID

POOL = [
    {"id": "sg-2", "api_key": "sk-pool-secret-2", "region": "singapore"},
    {"id": "bj-1", "api_key": "sk-pool-secret-3", "region": "beijing"},
    {"id": "vtrix", "api_key": "sk-pool-secret-4", "provider": "task-api"},
]


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        parameters.clear_caches()
        yield
    parameters.clear_caches()


def secret(name: str, value: str) -> str:
    return str(boto3.client("secretsmanager").create_secret(Name=name, SecretString=value)["ARN"])


def table(name: str, key: str) -> str:
    boto3.client("dynamodb").create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def test_the_pool_is_the_default_key_and_the_secrets_list(aws, caplog):
    ring = KeyRing(
        secret("default", "sk-default-secret"), secret("pool", json.dumps(POOL)), Region.SINGAPORE
    )
    with caplog.at_level(logging.DEBUG):
        keys = {key.id: key for key in ring.pool()}
        _, material = ring.material("bj-1")
    assert list(keys) == [DEFAULT_KEY_ID, "sg-2", "bj-1", "vtrix"]
    assert keys[DEFAULT_KEY_ID].providers == frozenset(Provider)  # as before the pool
    assert (keys["bj-1"].region, keys["vtrix"].providers) == (
        Region.BEIJING,
        frozenset({Provider.TASK_API}),
    )
    assert material.get_secret_value() == "sk-pool-secret-3"
    shown = repr(ring.pool()) + repr(material) + caplog.text
    assert not any(f"sk-pool-secret-{i}" in shown for i in (2, 3, 4))
    with pytest.raises(JobFailed, match="'gone' is not in the pool"):
        ring.material("gone")


def test_without_a_pool_secret_the_default_key_is_the_pool(aws):
    ring = KeyRing(secret("default", json.dumps({"api_key": "sk-x"})), None, Region.BEIJING)
    [key] = ring.pool()
    assert (key.id, key.region) == (DEFAULT_KEY_ID, Region.BEIJING)


@pytest.mark.parametrize(
    "stored",
    [
        [{"id": "a", "api_key": "sk-leak-me"}, {"id": "a", "api_key": "sk-leak-me"}],
        [{"id": "default", "api_key": "sk-leak-me"}],
        [{"id": "bad id!", "api_key": "sk-leak-me"}],
        [{"id": "a", "api_key": "sk-leak-me", "region": "mars"}],
    ],
)
def test_a_malformed_pool_is_refused_without_echoing_a_key(aws, stored):
    ring = KeyRing(secret("default", "sk-d"), secret("pool", json.dumps(stored)), Region.SINGAPORE)
    with pytest.raises(ValueError) as refused:
        ring.pool()
    assert "sk-leak-me" not in str(refused.value)


def test_a_pool_key_of_another_region_gets_its_regions_url(aws, monkeypatch):
    from qwen_edit import runtime

    monkeypatch.setenv("DASHSCOPE_API_KEY_SECRET_ARN", secret("default", "sk-d"))
    monkeypatch.setenv("PROVIDER_KEYS_SECRET_ARN", secret("pool", json.dumps(POOL)))
    monkeypatch.setenv("DASHSCOPE_REGION", "singapore")
    for name in ("JOBS_TABLE", "LIMITS_TABLE", "QUEUE_TABLE", "INPUT_BUCKET", "OUTPUT_BUCKET"):
        monkeypatch.setenv(name, "x")
    runtime.context.cache_clear()
    ctx = runtime.context("store")
    beijing, default = ctx.provider(Provider.DASHSCOPE, "bj-1"), ctx.provider(Provider.DASHSCOPE)
    assert isinstance(beijing, DashScopeClient) and isinstance(default, DashScopeClient)
    assert "dashscope.aliyuncs.com" in beijing.base_url
    assert "dashscope-intl" in default.base_url
    with pytest.raises(JobFailed, match="does not serve"):
        ctx.provider(Provider.DASHSCOPE, "vtrix")
    runtime.context.cache_clear()


def test_a_dead_key_is_seen_by_every_function_and_marked_once(aws):
    limits = table("limits", "pk")
    one, other = DynamoKeyHealth(limits), DynamoKeyHealth(limits)
    assert one.dead() == set()
    assert one.mark_dead("sg-2", "InvalidApiKey", 1.0) is True
    assert other.mark_dead("sg-2", "InvalidApiKey", 2.0) is False  # one alarm data point
    assert other.mark_dead("bj-1", "AccessDenied", 3.0) is True
    assert one.dead() == {"sg-2", "bj-1"}
    # What README "Provider keys" tells an operator to run to put a key back:
    boto3.client("dynamodb").update_item(
        TableName=limits,
        Key={"pk": {"S": "DEAD_KEYS"}},
        UpdateExpression="REMOVE dead_keys.#k",
        ExpressionAttributeNames={"#k": "sg-2"},
    )
    assert other.dead() == {"bj-1"}


def test_tenants_own_keys_are_read_from_the_tenants_table_and_kept_a_minute(aws):
    tenants = table("tenants", "tenant")
    client = boto3.client("dynamodb")
    client.put_item(TableName=tenants, Item={"tenant": {"S": "a"}, "provider_key": {"S": "sg-2"}})
    client.put_item(TableName=tenants, Item={"tenant": {"S": "b"}, "monthly_cap": {"N": "5"}})
    now = [0.0]
    keys = DynamoTenantKeys(tenants, clock=lambda: now[0])
    assert keys.reserved() == {"a": "sg-2"} and keys.key_of("b") is None
    client.put_item(TableName=tenants, Item={"tenant": {"S": "b"}, "provider_key": {"S": "bj-1"}})
    assert keys.key_of("b") is None  # the minute's read
    now[0] = 61.0
    assert keys.key_of("b") == "bj-1"
    assert tenant_keys(None).reserved() == {}  # no table: no tenant has its own key
