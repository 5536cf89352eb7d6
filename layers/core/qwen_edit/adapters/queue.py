"""DynamoDB adapters of the dispatcher: the job queue (its own table) and the dispatcher's lease
(one item of the limits table).

The queue is one partition (`pk = QUEUE`), sorted by tenant (`sk = <tenant>#<job id>`): the
dispatcher reads it whole (without the task tokens, which are long), and a tenant's backlog is
counted from its own key range. Writes are a few per provider call, far under a partition's
1,000 per second.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError

from qwen_edit.adapters.dynamodb import conditional_failed, from_dynamo, to_dynamo
from qwen_edit.domain.admission import Pace
from qwen_edit.domain.dispatch import HeldLease, QueueEntry

QUEUE = {"S": "QUEUE"}
LEASE_KEY = {"pk": {"S": "DISPATCHER"}}
LEFTOVER_SECONDS = 86_400  # the table's TTL removes an entry this long after its deadline
# As put (start_by may be null).
KEPT = ["job_id", "tenant", "family", "lane", "enqueued_at", "deadline_at", "start_by", "calls"]
SHOWN = [*KEPT, "claimed_by", "claimed_at"]  # what `entries` reads: all but the task token


def _sort_key(tenant: str, job_id: str) -> dict[str, str]:
    return {"S": f"{tenant}#{job_id}"}


class DynamoJobQueue:
    def __init__(self, table_name: str, client: Any = None):
        self.table = table_name
        self.client = client or boto3.client("dynamodb")

    def _key(self, entry: QueueEntry) -> dict[str, Any]:
        return {"pk": QUEUE, "sk": _sort_key(entry.tenant, entry.job_id)}

    def put(self, entry: QueueEntry, task_token: str) -> None:
        values = entry.model_dump(mode="json", include=set(KEPT))
        self.client.update_item(
            TableName=self.table,
            Key=self._key(entry),
            UpdateExpression="SET task_token = :token, expires_at = :expires, "
            + ", ".join(f"#{name} = if_not_exists(#{name}, :{name})" for name in KEPT),
            ExpressionAttributeNames={f"#{name}": name for name in KEPT},
            ExpressionAttributeValues={
                ":token": {"S": task_token},
                ":expires": {"N": str(int(entry.deadline_at) + LEFTOVER_SECONDS)},
                **{f":{name}": to_dynamo(value) for name, value in values.items()},
            },
        )

    def entries(self) -> list[QueueEntry]:
        return [QueueEntry.model_validate(item) for item in self._query({}, shown=True)]

    def count(self, tenant: str) -> int:
        return len(self._query({":tenant": {"S": f"{tenant}#"}}, shown=False))

    def _query(self, tenant: dict[str, Any], shown: bool) -> list[dict[str, Any]]:
        condition = "pk = :pk" + (" AND begins_with(sk, :tenant)" if tenant else "")
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": {":pk": QUEUE, **tenant},
            "ConsistentRead": True,
            "ProjectionExpression": ", ".join(f"#{n}" for n in SHOWN) if shown else "sk",
        }
        if shown:
            request["ExpressionAttributeNames"] = {f"#{n}": n for n in SHOWN}
        items: list[dict[str, Any]] = []
        while True:
            page = self.client.query(**request)
            items += [{k: from_dynamo(v) for k, v in item.items()} for item in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def claim(self, entry: QueueEntry, token: int, now: float) -> str | None:
        # The claim it was seen with, so a stale claim is taken over only as it was seen.
        seen = (
            ("claimed_by = :seen", {":seen": {"N": str(entry.claimed_by)}})
            if entry.claimed
            else ("attribute_not_exists(claimed_by)", {})
        )
        try:
            answer = self.client.update_item(
                TableName=self.table,
                Key=self._key(entry),
                UpdateExpression="SET claimed_by = :token, claimed_at = :now",
                ConditionExpression=f"attribute_exists(sk) AND {seen[0]}",
                ExpressionAttributeValues={
                    ":token": {"N": str(token)},
                    ":now": to_dynamo(now),
                    **seen[1],
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if conditional_failed(error):
                return None
            raise
        return str(answer["Attributes"]["task_token"]["S"])

    def requeue(self, entry: QueueEntry, calls: int) -> None:
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(entry),
                UpdateExpression="SET calls = :calls REMOVE claimed_by, claimed_at",
                ConditionExpression="attribute_exists(sk)",
                ExpressionAttributeValues={":calls": {"N": str(calls)}},
            )
        except ClientError as error:
            if not conditional_failed(error):
                raise  # else: removed meanwhile (canceled), nothing to put back

    def remove(self, tenant: str, job_id: str, task_token: str | None = None) -> None:
        only: dict[str, Any] = (
            {
                "ConditionExpression": "task_token = :token",
                "ExpressionAttributeValues": {":token": {"S": task_token}},
            }
            if task_token is not None
            else {}
        )
        try:
            self.client.delete_item(
                TableName=self.table, Key={"pk": QUEUE, "sk": _sort_key(tenant, job_id)}, **only
            )
        except ClientError as error:
            if not conditional_failed(error):
                raise  # else: gone, or a later step's entry, which stays


class DynamoDispatchLease:
    def __init__(self, table_name: str, client: Any = None):
        self.table = table_name
        self.client = client or boto3.client("dynamodb")

    def acquire(self, holder: str, now: float, until: float) -> HeldLease | None:
        try:
            item = self.client.update_item(
                TableName=self.table,
                Key=LEASE_KEY,
                UpdateExpression="SET #token = if_not_exists(#token, :zero) + :one, "
                "holder = :holder, #until = :until, "
                "calls = if_not_exists(calls, :empty), paces = if_not_exists(paces, :empty)",
                ConditionExpression="attribute_not_exists(pk) OR #until < :now",
                ExpressionAttributeNames={"#token": "token", "#until": "until"},
                ExpressionAttributeValues={
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":holder": {"S": holder},
                    ":until": to_dynamo(until),
                    ":now": to_dynamo(now),
                    ":empty": {"M": {}},
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if conditional_failed(error):
                return None  # held by a live dispatcher
            raise
        state = {name: from_dynamo(value) for name, value in item.items()}
        return HeldLease(
            token=state["token"],
            calls={bucket: list(times) for bucket, times in state["calls"].items()},
            paces={bucket: Pace(**pace) for bucket, pace in state["paces"].items()},
        )

    def _fenced(
        self, token: int, update: str, names: dict[str, str], values: dict[str, Any]
    ) -> bool:
        try:
            self.client.update_item(
                TableName=self.table,
                Key=LEASE_KEY,
                UpdateExpression=update,
                ConditionExpression="#token = :token",
                ExpressionAttributeNames={"#token": "token", **names},
                ExpressionAttributeValues={":token": {"N": str(token)}, **values},
            )
        except ClientError as error:
            if conditional_failed(error):
                return False  # a newer holder took the lease
            raise
        return True

    def renew(self, token: int, until: float) -> bool:
        return self._fenced(
            token, "SET #until = :until", {"#until": "until"}, {":until": to_dynamo(until)}
        )

    def record(self, token: int, bucket: str, calls: list[float], pace: Pace) -> bool:
        # A bucket is one key's clock for a family ("<family>" for the default key, as the
        # state was before the pool, "<key id>/<family>" for the others).
        return self._fenced(
            token,
            "SET calls.#bucket = :calls, paces.#bucket = :pace",
            {"#bucket": bucket},
            {":calls": to_dynamo(calls), ":pace": to_dynamo(vars(pace))},
        )

    def release(self, token: int) -> None:
        self._fenced(token, "SET #until = :zero", {"#until": "until"}, {":zero": {"N": "0"}})

    def held(self, now: float) -> bool:
        item = self.client.get_item(TableName=self.table, Key=LEASE_KEY, ConsistentRead=True)
        until = item.get("Item", {}).get("until")
        return until is not None and float(until["N"]) > now
