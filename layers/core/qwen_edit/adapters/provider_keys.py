"""DynamoDB adapters of the key pool: which keys are dead (one item of the limits table, read
by every dispatcher and Poll), and which tenant has its own key (the tenants table).

Dead keys: item `pk = DEAD_KEYS`, a map `dead_keys` of key id → {code, at}. An operator puts a
key back by removing its entry (README "Provider keys").
"""

from __future__ import annotations

import time
from typing import Any

import boto3
from botocore.exceptions import ClientError

from qwen_edit.adapters.dynamodb import conditional_failed, to_dynamo

DEAD_KEYS = {"pk": {"S": "DEAD_KEYS"}}
TENANT_KEYS_SECONDS = 60.0  # how long the dispatcher trusts its read of the tenants table


class DynamoKeyHealth:
    def __init__(self, table_name: str, client: Any = None):
        self.table = table_name
        self.client = client or boto3.client("dynamodb")

    def dead(self) -> set[str]:
        item = self.client.get_item(
            TableName=self.table,
            Key=DEAD_KEYS,
            ConsistentRead=True,
            ProjectionExpression="dead_keys",
        ).get("Item", {})
        return set(item.get("dead_keys", {}).get("M", {}))

    def mark_dead(self, key_id: str, code: str, at: float) -> bool:
        entry = to_dynamo({"code": code, "at": at})
        for _ in range(3):  # the item may be created by another function meanwhile
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key=DEAD_KEYS,
                    UpdateExpression="SET dead_keys.#key = :entry",
                    ConditionExpression="attribute_exists(dead_keys) AND "
                    "attribute_not_exists(dead_keys.#key)",
                    ExpressionAttributeNames={"#key": key_id},
                    ExpressionAttributeValues={":entry": entry},
                )
                return True
            except ClientError as error:
                if not conditional_failed(error):
                    raise
            if key_id in self.dead():
                return False  # already out
            try:
                self.client.put_item(
                    TableName=self.table,
                    Item={**DEAD_KEYS, "dead_keys": {"M": {key_id: entry}}},
                    ConditionExpression="attribute_not_exists(pk)",
                )
                return True
            except ClientError as error:
                if not conditional_failed(error):
                    raise
        return False


class DynamoTenantKeys:
    """A scan of the tenants table's `provider_key`s (a small table), kept for a minute: a
    change by the operator reaches the dispatcher within TENANT_KEYS_SECONDS."""

    def __init__(self, table_name: str, client: Any = None, clock: Any = time.monotonic):
        self.table = table_name
        self.client = client or boto3.client("dynamodb")
        self.clock = clock
        self._read: tuple[float, dict[str, str]] | None = None

    def reserved(self) -> dict[str, str]:
        now = self.clock()
        if self._read is None or now - self._read[0] >= TENANT_KEYS_SECONDS:
            self._read = (now, self._scan())
        return dict(self._read[1])

    def key_of(self, tenant: str) -> str | None:
        return self.reserved().get(tenant)

    def _scan(self) -> dict[str, str]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "ProjectionExpression": "tenant, provider_key",
            "FilterExpression": "attribute_type(provider_key, :string) AND provider_key <> :empty",
            "ExpressionAttributeValues": {":string": {"S": "S"}, ":empty": {"S": ""}},
        }
        found: dict[str, str] = {}
        while True:
            page = self.client.scan(**request)
            for item in page["Items"]:
                found[item["tenant"]["S"]] = item["provider_key"]["S"]
            if "LastEvaluatedKey" not in page:
                return found
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class NoTenantKeys:
    """No tenants table: no tenant has its own key."""

    def reserved(self) -> dict[str, str]:
        return {}

    def key_of(self, tenant: str) -> str | None:
        return None


def tenant_keys(table_name: str | None, client: Any = None) -> DynamoTenantKeys | NoTenantKeys:
    return DynamoTenantKeys(table_name, client) if table_name else NoTenantKeys()
