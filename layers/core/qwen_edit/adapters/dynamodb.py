"""DynamoDB adapters: the job store and the async task places (conditional writes)."""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar, cast

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

from qwen_edit.domain import admission
from qwen_edit.domain.errors import InvalidRequest, JobConflict, JobNotFound
from qwen_edit.domain.jobs import (
    ALLOWED_FROM,
    FINAL_STATUSES,
    DeliveryStatus,
    Job,
    JobEvent,
    JobStatus,
    WebhookAttempt,
    room_for,
    stored_time,
)
from qwen_edit.domain.usage import USAGE_FIELDS, JobUsage
from qwen_edit.ports import OpenJob

Item = dict[str, Any]  # an attribute value or item in DynamoDB's wire format
State = dict[str, Any]  # a limits item, as plain values
T = TypeVar("T")
RECORD_RETENTION = timedelta(days=90)  # the table's TTL removes job records after this
# Set while a job is queued or running (its status), removed once final: the sparse index
# by-open-status finds the oldest unfinished jobs without reading finished ones.
OPEN_STATUS = "open_status"
_CREATED_AT = TypeAdapter(datetime)
_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize


def to_dynamo(value: Any) -> Item:
    def convert(v: Any) -> Any:
        if isinstance(v, float):
            return Decimal(str(v))
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        if isinstance(v, list):
            return [convert(x) for x in v]
        return v

    return cast(Item, _serialize(convert(to_jsonable_python(value))))


def from_dynamo(attribute: Item) -> Any:
    def convert(v: Any) -> Any:
        if isinstance(v, Decimal):
            return int(v) if v == v.to_integral_value() else float(v)
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        if isinstance(v, list):
            return [convert(x) for x in v]
        return v

    return convert(_deserialize(attribute))


def _encode_cursor(key: Item) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


_CURSOR_FIELDS = {"id": 200, "tenant": 200, "created_at": 40}  # attribute → longest value


def _decode_cursor(cursor: str, tenant: str) -> dict[str, Any]:
    """The LastEvaluatedKey a cursor carries, checked to the letter: a cursor edited by hand
    (other names, types or tenant) is a 422, never a DynamoDB error."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(key, dict) or set(key) != set(_CURSOR_FIELDS):
            raise ValueError("not a cursor")
        for name, longest in _CURSOR_FIELDS.items():
            value = key[name]
            if (
                not isinstance(value, dict)
                or set(value) != {"S"}
                or not isinstance(value["S"], str)
                or not 0 < len(value["S"]) <= longest
            ):
                raise ValueError(f"bad {name}")
        if key["tenant"]["S"] != tenant:
            raise ValueError("not this tenant's cursor")
    except (ValueError, TypeError, RecursionError, UnicodeError):
        raise _bad_cursor() from None
    return key


def _bad_cursor() -> InvalidRequest:
    return InvalidRequest(
        "cursor is not one this API gave out",
        [{"field": "cursor", "rule": "cursor", "message": "pass next_cursor unchanged"}],
    )


def conditional_failed(error: ClientError) -> bool:
    return bool(error.response["Error"]["Code"] == "ConditionalCheckFailedException")


class DynamoJobStore:
    PAGE_SIZE = 1000  # items per page of an index query (DynamoDB stops a page at 1 MB too)

    def __init__(self, table_name: str, client: Any = None):
        self.table = table_name
        self.client = client or boto3.client("dynamodb")

    def create(self, job: Job) -> None:
        item = {
            name: to_dynamo(value)
            for name, value in job.model_dump(mode="json", exclude_none=True).items()
        }
        item["expires_at"] = to_dynamo(int((job.created_at + RECORD_RETENTION).timestamp()))
        if not job.status.is_final:
            item[OPEN_STATUS] = {"S": job.status.value}
        try:
            self.client.put_item(
                TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(id)"
            )
        except ClientError as error:
            if conditional_failed(error):
                raise JobConflict(f"job {job.id} already exists") from None
            raise

    def get(self, job_id: str) -> Job:
        item = self.client.get_item(
            TableName=self.table, Key={"id": {"S": job_id}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            raise JobNotFound(f"no job {job_id}")
        return self._job(item)

    def transition(self, job_id: str, to: JobStatus, at: datetime, **fields: Any) -> Job:
        return self._update(
            job_id,
            ALLOWED_FROM[to],
            {"status": to, "updated_at": at, **fields},
            f"cannot become {to.value}",
        )

    def update(self, job_id: str, at: datetime, **fields: Any) -> Job:
        unfinished = frozenset(JobStatus) - FINAL_STATUSES
        return self._update(
            job_id, unfinished, {"updated_at": at, **fields}, "is final and cannot change"
        )

    def _update(
        self, job_id: str, allowed: frozenset[JobStatus], fields: dict[str, Any], refusal: str
    ) -> Job:
        to = fields.get("status")
        open_status = {} if to is None or to in FINAL_STATUSES else {OPEN_STATUS: to}
        names = {f"#f{i}": name for i, name in enumerate({**fields, **open_status})}
        values = {
            f":v{i}": to_dynamo(value) for i, value in enumerate({**fields, **open_status}.values())
        }
        update = "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(values)))
        if to in FINAL_STATUSES:  # out of the open-jobs index
            update += " REMOVE #open"
            names["#open"] = OPEN_STATUS
        names["#status"] = "status"
        values.update({f":s{i}": {"S": status.value} for i, status in enumerate(sorted(allowed))})
        try:
            answer = self.client.update_item(
                TableName=self.table,
                Key={"id": {"S": job_id}},
                UpdateExpression=update,
                ConditionExpression="attribute_exists(id) AND #status IN ("
                + ", ".join(f":s{i}" for i in range(len(allowed)))
                + ")",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if not conditional_failed(error):
                raise
            current = self.get(job_id)  # raises JobNotFound when there is no such job
            raise JobConflict(f"job {job_id} is {current.status.value} and {refusal}") from None
        return self._job(answer["Attributes"])

    def note(
        self,
        job_id: str,
        event: JobEvent | None = None,
        provider_status: str | None = None,
        **counters: int,
    ) -> None:
        # No condition on the status (a job is notified once final); list_append and ADD keep
        # concurrent notes. A full timeline refuses the append, and the event is counted.
        sets = {"provider_status": provider_status} if provider_status is not None else {}
        if event is not None:
            try:
                self._add(
                    job_id,
                    counters,
                    {**sets, "events": event},
                    "AND (attribute_not_exists(#e) OR size(#e) < :room)",
                    {"#e": "events"},
                    {":room": {"N": str(room_for(event.step))}},
                )
                return
            except ClientError as error:
                if not conditional_failed(error):
                    raise
            counters = {**counters, "events_dropped": 1}
        if counters or sets:
            try:
                self._add(job_id, counters, sets)
            except ClientError as error:
                if not conditional_failed(error):
                    raise
                raise JobNotFound(f"no job {job_id}") from None

    def _add(
        self,
        job_id: str,
        counters: dict[str, int],
        sets: dict[str, Any],
        condition: str = "",
        names: dict[str, str] | None = None,
        values: Item | None = None,
    ) -> None:
        """One update of an existing job: SET each of `sets` (`events` is appended to), then
        ADD each counter."""
        names, values = dict(names or {}), dict(values or {})
        clauses = []
        for i, (name, value) in enumerate(sets.items()):
            names[f"#s{i}"] = name
            if name == "events":
                clauses.append(f"#s{i} = list_append(if_not_exists(#s{i}, :none), :s{i})")
                values[":none"], value = {"L": []}, [value]
            else:
                clauses.append(f"#s{i} = :s{i}")
            values[f":s{i}"] = to_dynamo(value)
        names.update({f"#c{i}": name for i, name in enumerate(counters)})
        values.update({f":c{i}": {"N": str(n)} for i, n in enumerate(counters.values())})
        update = f"SET {', '.join(clauses)}" if clauses else ""
        if counters:
            update += " ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(counters)))
        self.client.update_item(
            TableName=self.table,
            Key={"id": {"S": job_id}},
            UpdateExpression=update.strip(),
            ConditionExpression=f"attribute_exists(id) {condition}",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def link_retry(self, job_id: str, retried_by: str) -> None:
        try:
            self._add(job_id, {}, {"retried_by": retried_by})
        except ClientError as error:
            if not conditional_failed(error):
                raise
            raise JobNotFound(f"no job {job_id}") from None

    def record_webhook(
        self, job_id: str, attempt: WebhookAttempt | None, status: DeliveryStatus
    ) -> None:
        # No condition on the job's status: deliveries happen after it is final, and only the
        # webhook field changes. list_append keeps concurrent attempts.
        names = {"#w": "webhook", "#s": "status"}
        values: dict[str, Any] = {":status": {"S": status.value}}
        update = "SET #w.#s = :status"
        if attempt is not None:
            names["#a"] = "attempts"
            values[":attempt"] = to_dynamo([attempt])
            update += ", #w.#a = list_append(#w.#a, :attempt)"
        self.client.update_item(
            TableName=self.table,
            Key={"id": {"S": job_id}},
            UpdateExpression=update,
            ConditionExpression="attribute_exists(#w)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def claim_webhook_event(self, job_id: str, sequence: int) -> bool:
        # One conditional write keeps intermediate events in order: an event older than one
        # already sent, or than the final delivery's first attempt, is never sent.
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"id": {"S": job_id}},
                UpdateExpression="SET #q = :q",
                ConditionExpression="attribute_exists(#w) AND size(#w.#a) = :none "
                "AND (attribute_not_exists(#q) OR #q <= :q)",
                ExpressionAttributeNames={
                    "#w": "webhook",
                    "#a": "attempts",
                    "#q": "webhook_sequence",
                },
                ExpressionAttributeValues={":q": {"N": str(sequence)}, ":none": {"N": "0"}},
            )
        except ClientError as error:
            if conditional_failed(error):
                return False
            raise
        return True

    def list_for_tenant(
        self, tenant: str, limit: int, cursor: str | None, status: JobStatus | None
    ) -> tuple[list[Job], str | None]:
        query: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "by-tenant",
            "Limit": limit,
            "ScanIndexForward": False,
            "KeyConditionExpression": "tenant = :t",
            "ExpressionAttributeValues": {":t": {"S": tenant}},
        }
        if status is not None:
            query["FilterExpression"] = "#status = :s"
            query["ExpressionAttributeNames"] = {"#status": "status"}
            query["ExpressionAttributeValues"][":s"] = {"S": status.value}
        if cursor:
            query["ExclusiveStartKey"] = _decode_cursor(cursor, tenant)
        try:
            page = self.client.query(**query)
        except ClientError as error:
            if cursor and error.response["Error"]["Code"] == "ValidationException":
                raise _bad_cursor() from None  # a well-formed cursor DynamoDB still refuses
            raise
        last = page.get("LastEvaluatedKey")
        return [self._job(item) for item in page["Items"]], _encode_cursor(last) if last else None

    def unfinished(self, status: JobStatus) -> Iterator[OpenJob]:
        query = {
            "IndexName": "by-open-status",
            "KeyConditionExpression": "#open = :s",
            "ExpressionAttributeNames": {"#open": OPEN_STATUS},
            "ExpressionAttributeValues": {":s": {"S": status.value}},
        }
        for item in self._items(query):  # the index keeps keys only: a page holds thousands
            yield OpenJob(item["id"]["S"], _CREATED_AT.validate_python(item["created_at"]["S"]))

    def created_in(self, tenant: str, start: datetime, end: datetime) -> Iterator[JobUsage]:
        # The index sorts on the stored created_at string (fixed width: a string range is a time
        # range); it keeps microseconds, so [start, end) is BETWEEN start AND end - 1 µs. Only
        # the fields usage reads come back: a page holds thousands of jobs, not hundreds.
        query = {
            "IndexName": "by-tenant",
            "KeyConditionExpression": "tenant = :t AND created_at BETWEEN :start AND :last",
            "ProjectionExpression": ", ".join(f"#u{i}" for i in range(len(USAGE_FIELDS))),
            "ExpressionAttributeNames": {f"#u{i}": name for i, name in enumerate(USAGE_FIELDS)},
            "ExpressionAttributeValues": {
                ":t": {"S": tenant},
                ":start": {"S": stored_time(start)},
                ":last": {"S": stored_time(end - timedelta(microseconds=1))},
            },
        }
        for item in self._items(query):
            yield JobUsage.of({name: from_dynamo(value) for name, value in item.items()})

    def _items(self, query: dict[str, Any]) -> Iterator[Item]:
        query = {"TableName": self.table, "Limit": self.PAGE_SIZE, **query}
        while True:
            page = self.client.query(**query)
            yield from page["Items"]
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    @staticmethod
    def _job(item: Item) -> Job:
        return Job.model_validate(
            {k: from_dynamo(v) for k, v in item.items() if k not in ("expires_at", OPEN_STATUS)}
        )


class DynamoLimitStore:
    """One item per family, LEASES#<family> (async task places), with a `version`; every change
    is a read-modify-write guarded by it."""

    ATTEMPTS = 40

    def __init__(self, table_name: str, client: Any = None):
        self.table = table_name
        self.client = client or boto3.client("dynamodb")

    def _read(self, key: str) -> State:
        item = self.client.get_item(
            TableName=self.table, Key={"pk": {"S": key}}, ConsistentRead=True
        ).get("Item", {})
        return {name: from_dynamo(value) for name, value in item.items()}

    def acquire_lease(
        self, family: str, holder: str, max_holders: int, until: float, now: float
    ) -> bool:
        def change(state: State) -> tuple[State | None, bool]:
            holders = admission.live_leases(state.get("holders", {}), now)
            if holder not in holders and len(holders) >= max_holders:
                return None, False
            return {"holders": {**holders, holder: until}}, True

        return self._change(f"LEASES#{family}", change, contended=False)

    def release_lease(self, family: str, holder: str) -> None:
        # One atomic update, never contended: removing a holder needs no read first. The
        # version still moves, so an acquire that read the old holders cannot write them back.
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"LEASES#{family}"}},
                UpdateExpression="REMOVE holders.#h SET version = version + :one",
                ConditionExpression="attribute_exists(holders.#h)",
                ExpressionAttributeNames={"#h": holder},
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
        except ClientError as error:
            if not conditional_failed(error):
                raise
            # Not held (released before, or expired and taken over): nothing to do.

    def _change(
        self, key: str, change: Callable[[State], tuple[State | None, T]], contended: T
    ) -> T:
        for attempt in range(self.ATTEMPTS):
            state = self._read(key)
            version = state.get("version", 0)
            new_state, result = change(state)
            if new_state is None:
                return result
            try:
                self.client.put_item(
                    TableName=self.table,
                    Item={
                        "pk": {"S": key},
                        "version": {"N": str(version + 1)},
                        **{k: to_dynamo(v) for k, v in new_state.items()},
                    },
                    ConditionExpression="attribute_not_exists(pk) OR version = :v",
                    ExpressionAttributeValues={":v": {"N": str(version)}},
                )
                return result
            except ClientError as error:
                if not conditional_failed(error):
                    raise
                # Another execution won: back off (exponential, full jitter) and read again.
                time.sleep(random.uniform(0, min(1.0, 0.01 * 2**attempt)))
        return contended  # still contended: the dispatcher asks again on its next round
