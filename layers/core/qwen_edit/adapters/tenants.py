"""DynamoDB adapters of tenant settings and of the spend ledger (README "Budgets and keys").

The ledger keeps one item per (tenant, period) with `spent`, `reserved` and their sum
`committed`: a condition expression cannot add, so the sum is stored and the cap check is
`committed <= cap - cost`, in the same write that adds the cost. Two caps (a month and a day)
are one TransactWriteItems, so a job is reserved in both or in neither.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import boto3
from botocore.exceptions import ClientError

from qwen_edit.adapters.dynamodb import conditional_failed, from_dynamo, to_dynamo
from qwen_edit.domain.budgets import (
    PERIOD_RETENTION,
    Balance,
    PeriodCap,
    Refused,
    Reserved,
    fits,
)
from qwen_edit.domain.tenants import TenantSettings

ZERO = {"N": "0"}


def _n(value: Decimal | int) -> dict[str, str]:
    return {"N": str(value)}


class DynamoTenantStore:
    def __init__(self, table_name: str, client: Any = None):
        self.table = table_name
        self.client = client or boto3.client("dynamodb")

    def get(self, tenant: str) -> TenantSettings | None:
        item = self.client.get_item(TableName=self.table, Key={"tenant": {"S": tenant}}).get("Item")
        return None if item is None else _settings(item)

    def put(self, settings: TenantSettings) -> None:
        fields = settings.model_dump(mode="json", exclude_none=True)
        self.client.put_item(
            TableName=self.table, Item={name: to_dynamo(value) for name, value in fields.items()}
        )

    def delete(self, tenant: str) -> None:
        self.client.delete_item(TableName=self.table, Key={"tenant": {"S": tenant}})

    def all(self) -> list[TenantSettings]:
        pages = self.client.get_paginator("scan").paginate(TableName=self.table)
        found = [_settings(item) for page in pages for item in page.get("Items", [])]
        return sorted(found, key=lambda settings: settings.tenant)


def _settings(item: dict[str, Any]) -> TenantSettings:
    return TenantSettings.model_validate({k: from_dynamo(v) for k, v in item.items()})


class DynamoBudgetLedger:
    def __init__(self, table_name: str, jobs_table: str, client: Any = None):
        self.table, self.jobs_table = table_name, jobs_table
        self.client = client or boto3.client("dynamodb")

    def _key(self, tenant: str, period: str) -> dict[str, Any]:
        return {"tenant": {"S": tenant}, "period": {"S": period}}

    def _reservation(self, tenant: str, cap: PeriodCap, amount: Decimal, enforce: bool) -> Any:
        expires = int(cap.resets_at.timestamp() + PERIOD_RETENTION.total_seconds())
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": self._key(tenant, cap.period),
            "UpdateExpression": "SET committed = if_not_exists(committed, :zero) + :amount, "
            "reserved = if_not_exists(reserved, :zero) + :amount, "
            "spent = if_not_exists(spent, :zero), expires_at = if_not_exists(expires_at, :ttl)",
            "ExpressionAttributeValues": {
                ":zero": ZERO,
                ":amount": _n(amount),
                ":ttl": _n(expires),
            },
        }
        if enforce:
            update["ConditionExpression"] = "attribute_not_exists(committed) OR committed <= :room"
            update["ExpressionAttributeValues"][":room"] = _n(cap.cap - amount)
        return update

    def reserve(
        self, tenant: str, caps: list[PeriodCap], amount: Decimal, *, enforce: bool
    ) -> Reserved:
        try:
            return Reserved(balances=self._reserve(tenant, caps, amount))
        except Refused as refused:
            if enforce:
                raise
            over = [
                balance.period
                for balance, cap in zip(refused.balances, caps, strict=True)
                if not fits(balance, cap, amount)
            ]
        # Observe-only: written whatever the caps say, the refusal counted where it would be.
        for cap in caps:
            update = self._reservation(tenant, cap, amount, enforce=False)
            if cap.period in over:
                update["UpdateExpression"] += " ADD would_refuse :one"
                update["ExpressionAttributeValues"][":one"] = _n(1)
            self.client.update_item(**update)
        return Reserved(balances=self.balances(tenant, [cap.period for cap in caps]), over=over)

    def _reserve(self, tenant: str, caps: list[PeriodCap], amount: Decimal) -> list[Balance]:
        periods = [cap.period for cap in caps]
        if any(amount > cap.cap for cap in caps):  # not even an empty period has room
            raise Refused(self.balances(tenant, periods))
        try:
            if len(caps) == 1:
                answer = _contended(
                    lambda: self.client.update_item(
                        **self._reservation(tenant, caps[0], amount, enforce=True),
                        ReturnValues="ALL_NEW",
                    )
                )
                return [_balance(caps[0].period, answer["Attributes"])]
            _contended(
                lambda: self.client.transact_write_items(
                    TransactItems=[
                        {"Update": self._reservation(tenant, cap, amount, enforce=True)}
                        for cap in caps
                    ]
                )
            )
        except ClientError as error:
            # Only a cap's condition refuses; a conflict with a concurrent write is not a 402.
            if conditional_failed(error) or "ConditionalCheckFailed" in _reasons(error):
                raise Refused(self.balances(tenant, periods)) from None
            raise
        return self.balances(tenant, periods)

    def release(self, tenant: str, periods: list[str], amount: Decimal) -> None:
        for period in periods:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(tenant, period),
                UpdateExpression="SET reserved = reserved - :amount, "
                "committed = committed - :amount",
                ConditionExpression="attribute_exists(reserved)",
                ExpressionAttributeValues={":amount": _n(amount)},
            )

    def settle(
        self, job_id: str, tenant: str, periods: list[str], reserved: Decimal, spent: Decimal
    ) -> bool:
        # The job's own record says it settled, in the same transaction: a retried Notify, a
        # cancel racing Reconcile, settle once.
        claim = {
            "Update": {
                "TableName": self.jobs_table,
                "Key": {"id": {"S": job_id}},
                "UpdateExpression": "SET budget.settled_at = :now",
                "ConditionExpression": "attribute_exists(budget) "
                "AND attribute_not_exists(budget.settled_at)",
                "ExpressionAttributeValues": {":now": {"S": datetime.now(UTC).isoformat()}},
            }
        }
        moves = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": self._key(tenant, period),
                    "UpdateExpression": "SET reserved = reserved - :reserved, "
                    "spent = spent + :spent, committed = committed + :change",
                    "ExpressionAttributeValues": {
                        ":reserved": _n(reserved),
                        ":spent": _n(spent),
                        ":change": _n(spent - reserved),
                    },
                }
            }
            for period in periods
        ]
        try:
            _contended(lambda: self.client.transact_write_items(TransactItems=[claim, *moves]))
        except ClientError as error:
            if _reasons(error)[:1] == ["ConditionalCheckFailed"]:  # the claim: settled already
                return False
            raise  # anything else, a lasting conflict too: Notify's Retry settles it again
        return True

    def balances(self, tenant: str, periods: list[str]) -> list[Balance]:
        found = []
        for period in periods:
            item = self.client.get_item(
                TableName=self.table, Key=self._key(tenant, period), ConsistentRead=True
            ).get("Item")
            found.append(_balance(period, item or {}))
        return found

    def claim_alert(self, tenant: str, period: str, threshold: int) -> bool:
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(tenant, period),
                UpdateExpression="ADD alerts :set",
                ConditionExpression="attribute_not_exists(alerts) OR NOT contains(alerts, :one)",
                ExpressionAttributeValues={
                    ":set": {"NS": [str(threshold)]},
                    ":one": _n(threshold),
                },
            )
        except ClientError as error:
            if conditional_failed(error):
                return False
            raise
        return True


def _reasons(error: ClientError) -> list[str]:
    """Why a transaction was canceled, item by item ("None" for an item that was fine)."""
    if error.response["Error"]["Code"] != "TransactionCanceledException":
        return []
    return [str(r.get("Code", "None")) for r in error.response.get("CancellationReasons", [])]


T = TypeVar("T")


def _contended(write: Callable[[], T], tries: int = 5) -> T:
    """`write`, tried again after a short random pause while it only met another write to the
    same items (DynamoDB's TransactionConflict): a busy tenant's reservations and
    settlements meet, and neither is a refusal."""
    for attempt in range(tries - 1):
        try:
            return write()
        except ClientError as error:
            code = error.response["Error"]["Code"]
            conflict = code == "TransactionConflictException" or (
                "TransactionConflict" in _reasons(error)
                and "ConditionalCheckFailed" not in _reasons(error)
            )
            if not conflict:
                raise
            time.sleep(random.uniform(0, 0.05 * 2**attempt))
    return write()  # the last try: its conflict, if any, is the caller's


def _balance(period: str, item: dict[str, Any]) -> Balance:
    values = {k: from_dynamo(v) for k, v in item.items()}
    return Balance(
        period=period,
        spent=Decimal(str(values.get("spent", 0))),
        reserved=Decimal(str(values.get("reserved", 0))),
        would_refuse=int(values.get("would_refuse", 0)),
        alerts=sorted(int(a) for a in values.get("alerts", ())),
    )
