"""In-memory fakes of our own ports (qwen_edit.ports), for the unit layer of the test pyramid.

Each fake keeps the promise its port documents, and only that: the job store moves statuses
along jobs.ALLOWED_FROM and refuses everything else with JobConflict, like the DynamoDB adapter;
the queue claims an entry once; the lease fences a stale holder; executions start a name
once. They also record
what the use cases asked of them, so a test can say "one execution started", "no provider call".

Nothing here opens a socket, builds a boto3 client or needs an imaging library: the PNGs are
built with struct and zlib.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic_core import to_jsonable_python

from qwen_edit.adapters.tracing import NoTracing, traced
from qwen_edit.app.dispatcher import dispatch
from qwen_edit.app.webhooks import Delivery
from qwen_edit.context import Context
from qwen_edit.domain import admission
from qwen_edit.domain.budgets import Balance, BudgetAlert, PeriodCap, Refused, Reserved, fits
from qwen_edit.domain.catalog import Capability, Provider, get_model
from qwen_edit.domain.dispatch import HeldLease, QueueEntry
from qwen_edit.domain.errors import InvalidRequest, JobConflict, JobNotFound
from qwen_edit.domain.intake import JobRejection
from qwen_edit.domain.jobs import (
    ALLOWED_FROM,
    FINAL_STATUSES,
    DeliveryStatus,
    Job,
    JobEvent,
    JobSource,
    JobStatus,
    WebhookAttempt,
    new_job,
    now_utc,
    room_for,
    stored_time,
)
from qwen_edit.domain.provider import (
    ProviderError,
    ProviderRequest,
    ProviderTask,
    Region,
    TaskStatus,
)
from qwen_edit.domain.provider_keys import DEFAULT_KEY_ID, PoolKey
from qwen_edit.domain.tenants import TenantSettings
from qwen_edit.domain.usage import JobUsage
from qwen_edit.ports import (
    BudgetLedger,
    Callbacks,
    DispatchLease,
    EventPublisher,
    Executions,
    ExecutionState,
    ImageProvider,
    JobQueue,
    JobStore,
    KeyHealth,
    LimitStore,
    ObjectStore,
    OpenJob,
    TenantKeys,
    TenantStore,
    Tracing,
    WebhookOutbox,
    WebhookSender,
)
from qwen_edit.settings import model_for

T = TypeVar("T")


def present(value: T | None) -> T:
    """`value`, which the test expects to be set (job.error, job.provider, …)."""
    assert value is not None
    return value


# ---- images without an imaging library ----------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def tiny_png(width: int = 3, height: int = 2, rgb: tuple[int, int, int] = (200, 60, 40)) -> bytes:
    """A real, well-formed RGB PNG (every CRC right), small enough to build in microseconds."""
    row = b"\x00" + bytes(rgb) * width  # filter type 0, then the pixels
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)),
            _chunk(b"IDAT", zlib.compress(row * height)),
            _chunk(b"IEND", b""),
        ]
    )


def png_data_url(png: bytes | None = None) -> str:
    return f"data:image/png;base64,{base64.b64encode(png or tiny_png()).decode()}"


# ---- JobStore -----------------------------------------------------------------------------------


def _encode_cursor(tenant: str, job: Job) -> str:
    key = {"tenant": tenant, "created_at": _sort_key(job)[0], "id": job.id}
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def _decode_cursor(cursor: str, tenant: str) -> tuple[str, str]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(key, dict) or set(key) != {"tenant", "created_at", "id"}:
            raise ValueError("not a cursor")
        if not all(isinstance(value, str) and value for value in key.values()):
            raise ValueError("not a cursor")
        if key["tenant"] != tenant:
            raise ValueError("not this tenant's cursor")
    except (ValueError, TypeError, RecursionError, UnicodeError):  # binascii.Error too
        raise InvalidRequest(
            "cursor is not one this API gave out",
            [{"field": "cursor", "rule": "cursor", "message": "pass next_cursor unchanged"}],
        ) from None
    return key["created_at"], key["id"]


def _sort_key(job: Job) -> tuple[str, str]:
    # The tenant index sorts on the stored created_at string (fixed width: time order).
    return stored_time(job.created_at), job.id


class FakeJobStore:
    """Jobs kept as the JSON the real store would keep, so every read is a fresh copy."""

    def __init__(self) -> None:
        self._records: dict[str, str] = {}

    def create(self, job: Job) -> None:
        if job.id in self._records:
            raise JobConflict(f"job {job.id} already exists")
        self._records[job.id] = job.model_dump_json(exclude_none=True)

    def get(self, job_id: str) -> Job:
        if job_id not in self._records:
            raise JobNotFound(f"no job {job_id}")
        return Job.model_validate_json(self._records[job_id])

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

    def note(
        self,
        job_id: str,
        event: JobEvent | None = None,
        provider_status: str | None = None,
        **counters: int,
    ) -> None:
        record = self._record(job_id)
        if provider_status is not None:
            record["provider_status"] = provider_status
        if event is not None:
            events = record.setdefault("events", [])
            if len(events) < room_for(event.step):
                events.append(to_jsonable_python(event))
            else:
                counters = {**counters, "events_dropped": 1}
        for name, value in counters.items():
            record[name] = record.get(name, 0) + value
        self._save(record)

    def link_retry(self, job_id: str, retried_by: str) -> None:
        record = self._record(job_id)
        record["retried_by"] = retried_by
        self._save(record)

    def record_webhook(
        self, job_id: str, attempt: WebhookAttempt | None, status: DeliveryStatus
    ) -> None:
        record = self._record(job_id)
        if record.get("webhook") is None:  # the real store's condition: attribute_exists(webhook)
            raise JobConflict(f"job {job_id} has no webhook")
        if attempt is not None:
            record["webhook"]["attempts"].append(to_jsonable_python(attempt))
        record["webhook"]["status"] = status.value
        self._save(record)

    def claim_webhook_event(self, job_id: str, sequence: int) -> bool:
        record = self._record(job_id)
        webhook = record.get("webhook")
        if webhook is None or webhook["attempts"] or record.get("webhook_sequence", 0) > sequence:
            return False
        record["webhook_sequence"] = sequence
        self._save(record)
        return True

    def unfinished(self, status: JobStatus) -> Iterator[OpenJob]:
        jobs = sorted((job for job in self.all() if job.status is status), key=_sort_key)
        return iter([OpenJob(job.id, job.created_at) for job in jobs])

    def list_for_tenant(
        self, tenant: str, limit: int, cursor: str | None, status: JobStatus | None
    ) -> tuple[list[Job], str | None]:
        """DynamoDB's way: `limit` of the tenant's jobs are read (newest first), then filtered
        by status, so a page may hold fewer; the cursor is where reading stopped."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        jobs = sorted(
            (job for job in map(self.get, self._records) if job.tenant == tenant),
            key=_sort_key,
            reverse=True,
        )
        if cursor:
            after = _decode_cursor(cursor, tenant)
            jobs = [job for job in jobs if _sort_key(job) < after]
        page = jobs[:limit]
        next_cursor = _encode_cursor(tenant, page[-1]) if len(jobs) > limit else None
        return [job for job in page if status is None or job.status is status], next_cursor

    def created_in(self, tenant: str, start: datetime, end: datetime) -> Iterator[JobUsage]:
        since, until = stored_time(start), stored_time(end)
        jobs = (job for job in map(self.get, self._records) if job.tenant == tenant)
        in_range = sorted(
            (job for job in jobs if since <= _sort_key(job)[0] < until), key=_sort_key
        )
        yield from (JobUsage.of(job.model_dump(mode="json")) for job in in_range)

    # -- helpers (not part of the port) --

    def all(self) -> list[Job]:
        return [self.get(job_id) for job_id in self._records]

    def _record(self, job_id: str) -> dict[str, Any]:
        if job_id not in self._records:
            raise JobNotFound(f"no job {job_id}")
        record: dict[str, Any] = json.loads(self._records[job_id])
        return record

    def _save(self, record: dict[str, Any]) -> Job:
        job = Job.model_validate(record)  # what the store keeps is always a valid job
        self._records[job.id] = job.model_dump_json(exclude_none=True)
        return self.get(job.id)

    def _update(
        self, job_id: str, allowed: frozenset[JobStatus], changes: dict[str, Any], refusal: str
    ) -> Job:
        record = self._record(job_id)
        current = JobStatus(record["status"])
        if current not in allowed:
            raise JobConflict(f"job {job_id} is {current.value} and {refusal}")
        record.update(to_jsonable_python(changes))
        return self._save(record)


# ---- LimitStore ---------------------------------------------------------------------------------


class FakeLimitStore:
    """Async task places in dicts, as in DynamoDB."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, float]] = {}
        self.released: list[tuple[str, str]] = []

    def acquire_lease(
        self, family: str, holder: str, max_holders: int, until: float, now: float
    ) -> bool:
        holders = admission.live_leases(self.leases.get(family, {}), now)
        if holder not in holders and len(holders) >= max_holders:
            return False
        self.leases[family] = {**holders, holder: until}
        return True

    def release_lease(self, family: str, holder: str) -> None:
        self.leases.get(family, {}).pop(holder, None)
        self.released.append((family, holder))


class FakeJobQueue:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], tuple[QueueEntry, str]] = {}  # (tenant, id) → entry

    def put(self, entry: QueueEntry, task_token: str) -> None:
        kept = self.items.get((entry.tenant, entry.job_id), (entry, ""))[0]
        self.items[(entry.tenant, entry.job_id)] = (kept, task_token)

    def entries(self) -> list[QueueEntry]:
        return [entry for entry, _ in self.items.values()]

    def count(self, tenant: str) -> int:
        return sum(1 for t, _ in self.items if t == tenant)

    def claim(self, entry: QueueEntry, token: int, now: float) -> str | None:
        stored = self.items.get((entry.tenant, entry.job_id))
        if stored is None or stored[0].claimed_by != entry.claimed_by:
            return None
        claimed = stored[0].model_copy(update={"claimed_by": token, "claimed_at": now})
        self.items[(entry.tenant, entry.job_id)] = (claimed, stored[1])
        return stored[1]

    def requeue(self, entry: QueueEntry, calls: int) -> None:
        stored = self.items.get((entry.tenant, entry.job_id))
        if stored is not None:
            update = {"calls": calls, "claimed_by": None, "claimed_at": None}
            self.items[(entry.tenant, entry.job_id)] = (
                stored[0].model_copy(update=update),
                stored[1],
            )

    def remove(self, tenant: str, job_id: str, task_token: str | None = None) -> None:
        stored = self.items.get((tenant, job_id))
        if stored is not None and task_token in (None, stored[1]):
            del self.items[(tenant, job_id)]

    def entry(self, job_id: str) -> QueueEntry | None:
        return next((e for e in self.entries() if e.job_id == job_id), None)


class FakeDispatchLease:
    def __init__(self) -> None:
        self.token = 0
        self.until = 0.0
        self.calls: dict[str, list[float]] = {}
        self.paces: dict[str, admission.Pace] = {}

    def acquire(self, holder: str, now: float, until: float) -> HeldLease | None:
        if self.until >= now:
            return None
        self.token, self.until = self.token + 1, until
        return HeldLease(self.token, dict(self.calls), dict(self.paces))

    def renew(self, token: int, until: float) -> bool:
        if token != self.token:
            return False
        self.until = until
        return True

    def record(self, token: int, bucket: str, calls: list[float], pace: admission.Pace) -> bool:
        if token != self.token:
            return False
        self.calls[bucket], self.paces[bucket] = list(calls), pace
        return True

    def release(self, token: int) -> None:
        if token == self.token:
            self.until = 0.0

    def held(self, now: float) -> bool:
        return self.until > now


class FakeTenantStore:
    def __init__(self) -> None:
        self.items: dict[str, str] = {}
        self.reads = 0

    def get(self, tenant: str) -> TenantSettings | None:
        self.reads += 1
        found = self.items.get(tenant)
        return None if found is None else TenantSettings.model_validate_json(found)

    def put(self, settings: TenantSettings) -> None:
        self.items[settings.tenant] = settings.model_dump_json()

    def delete(self, tenant: str) -> None:
        self.items.pop(tenant, None)

    def all(self) -> list[TenantSettings]:
        return [TenantSettings.model_validate_json(self.items[t]) for t in sorted(self.items)]


class FakeBudgetLedger:
    """The ledger's promise, atomically under one lock: a reservation checks every period's
    cap and writes all of them, or none; a job settles once."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], Balance] = {}
        self.settled: set[str] = set()
        self.writes = 0
        self._lock = threading.Lock()

    def _get(self, tenant: str, period: str) -> Balance:
        return self.items.get((tenant, period), Balance(period=period))

    def reserve(
        self, tenant: str, caps: list[PeriodCap], amount: Decimal, *, enforce: bool
    ) -> Reserved:
        with self._lock:
            before = [self._get(tenant, cap.period) for cap in caps]
            over = [
                b.period for b, cap in zip(before, caps, strict=True) if not fits(b, cap, amount)
            ]
            if over and enforce:
                raise Refused(before)
            for balance in before:
                self.writes += 1
                self.items[(tenant, balance.period)] = balance.model_copy(
                    update={
                        "reserved": balance.reserved + amount,
                        "would_refuse": balance.would_refuse + (balance.period in over),
                    }
                )
            return Reserved(balances=[self._get(tenant, c.period) for c in caps], over=over)

    def release(self, tenant: str, periods: list[str], amount: Decimal) -> None:
        with self._lock:
            for period in periods:
                balance = self._get(tenant, period)
                self.items[(tenant, period)] = balance.model_copy(
                    update={"reserved": balance.reserved - amount}
                )

    def settle(
        self, job_id: str, tenant: str, periods: list[str], reserved: Decimal, spent: Decimal
    ) -> bool:
        with self._lock:
            if job_id in self.settled:
                return False
            self.settled.add(job_id)
            for period in periods:
                balance = self._get(tenant, period)
                self.items[(tenant, period)] = balance.model_copy(
                    update={"reserved": balance.reserved - reserved, "spent": balance.spent + spent}
                )
            return True

    def balances(self, tenant: str, periods: list[str]) -> list[Balance]:
        with self._lock:
            return [self._get(tenant, period) for period in periods]

    def claim_alert(self, tenant: str, period: str, threshold: int) -> bool:
        with self._lock:
            balance = self._get(tenant, period)
            if threshold in balance.alerts:
                return False
            alerts = sorted([*balance.alerts, threshold])
            self.items[(tenant, period)] = balance.model_copy(update={"alerts": alerts})
            return True


class FakeKeyHealth:
    def __init__(self) -> None:
        self.out: dict[str, str] = {}  # key id → the code that killed it

    def dead(self) -> set[str]:
        return set(self.out)

    def mark_dead(self, key_id: str, code: str, at: float) -> bool:
        if key_id in self.out:
            return False
        self.out[key_id] = code
        return True


class FakeTenantKeys:
    def __init__(self, reserved: dict[str, str] | None = None) -> None:
        self.by_tenant = dict(reserved or {})

    def reserved(self) -> dict[str, str]:
        return dict(self.by_tenant)

    def key_of(self, tenant: str) -> str | None:
        return self.by_tenant.get(tenant)


def the_default_key() -> list[PoolKey]:
    return [PoolKey(id=DEFAULT_KEY_ID, providers=frozenset(Provider), region=Region.SINGAPORE)]


class FakeCallbacks:
    def __init__(self) -> None:
        self.succeeded: dict[str, dict[str, Any]] = {}  # task token → output
        self.failed: dict[str, tuple[str, str]] = {}  # task token → (error, cause)

    def succeed(self, task_token: str, output: dict[str, Any]) -> bool:
        self.succeeded[task_token] = output
        return True

    def fail(self, task_token: str, error: str, cause: str) -> bool:
        self.failed[task_token] = (error, cause)
        return True


# ---- ObjectStore --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    content_type: str


class FakeObjectStore:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], StoredObject] = {}
        self.writes: list[tuple[str, str]] = []  # every put, in order (rewrites included)

    def put(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        self.objects[(bucket, key)] = StoredObject(bytes(body), content_type)
        self.writes.append((bucket, key))

    def get(self, bucket: str, key: str) -> bytes | None:
        found = self.objects.get((bucket, key))
        return None if found is None else found.body

    def presigned_get(self, bucket: str, key: str, expires_in: int) -> str:
        return self._presigned("GET", bucket, key, expires_in)

    def presigned_put(
        self, bucket: str, key: str, content_type: str, content_length: int | None, expires_in: int
    ) -> str:
        return self._presigned("PUT", bucket, key, expires_in)

    def peek(self, bucket: str, key: str, length: int) -> tuple[int, bytes] | None:
        found = self.objects.get((bucket, key))
        return None if found is None else (len(found.body), found.body[:length])

    # -- helpers (not part of the port) --

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        return sorted(key for b, key in self.objects if b == bucket and key.startswith(prefix))

    def json(self, bucket: str, key: str) -> Any:
        found = self.objects[(bucket, key)]
        assert found.content_type == "application/json", found.content_type
        return json.loads(found.body)

    @staticmethod
    def _presigned(method: str, bucket: str, key: str, expires_in: int) -> str:
        signature = hashlib.sha256(f"{method} {bucket} {key}".encode()).hexdigest()[:32]
        return (
            f"https://fake-s3/{bucket}/{quote(key)}"
            f"?X-Amz-Expires={expires_in}&X-Amz-Signature={signature}"
        )


# ---- Executions, events, the webhook outbox and sender -----------------------------------------


class FakeExecutions:
    def __init__(self) -> None:
        self.started: dict[str, dict[str, Any]] = {}  # name → input, one per name
        self.start_calls: list[str] = []
        self.stopped: list[tuple[str, str]] = []
        self.failure: Exception | None = None  # raised by every start while set
        self.ended: dict[str, ExecutionState] = {}  # name → how it ended (else RUNNING)
        self.described: list[str] = []

    def start(self, name: str, payload: dict[str, Any]) -> None:
        self.start_calls.append(name)
        if self.failure is not None:
            raise self.failure
        self.started.setdefault(name, payload)  # a second start of a name starts nothing

    def state(self, name: str) -> ExecutionState | None:
        self.described.append(name)
        if name not in self.started:
            return None
        return self.ended.get(name, ExecutionState("RUNNING"))

    def stop(self, name: str, cause: str) -> None:
        self.stopped.append((name, cause))
        if name in self.started:
            self.ended[name] = ExecutionState("ABORTED", cause, now_utc())


class FakeEvents:
    def __init__(self) -> None:
        self.published: list[Job] = []
        self.rejected: list[JobRejection] = []
        self.thresholds: list[BudgetAlert] = []
        self.failure: Exception | None = None  # raised by every reject while set

    def publish(self, job: Job) -> None:
        self.published.append(job)

    def reject(self, rejection: JobRejection) -> None:
        if self.failure is not None:
            raise self.failure
        self.rejected.append(rejection)

    def budget_threshold(self, alert: BudgetAlert) -> None:
        self.thresholds.append(alert)

    @property
    def detail_types(self) -> list[str]:
        return [f"Job {job.status.value.title()}" for job in self.published]


class FakeOutbox:
    def __init__(self) -> None:
        self.sent: list[tuple[Delivery, float]] = []
        self.dead: list[Delivery] = []
        self.failure: Exception | None = None  # raised by every send while set

    def send(self, delivery: Any, delay_seconds: float) -> None:
        if self.failure is not None:
            raise self.failure
        self.sent.append((delivery, delay_seconds))

    def dead_letter(self, delivery: Any) -> None:
        self.dead.append(delivery)


@dataclass(frozen=True)
class Post:
    url: str
    addresses: list[str]
    headers: dict[str, str]
    body: str


Answer = int | None | tuple[int | None, str | None]


class FakeSender:
    """Answers each POST with the next scripted status (None: the connection failed); 200 once
    the script is spent."""

    def __init__(self, *answers: Answer) -> None:
        self.answers: deque[Answer] = deque(answers)
        self.posts: list[Post] = []

    def script(self, *answers: Answer) -> None:
        self.answers.extend(answers)

    def post(
        self, url: str, addresses: list[str], headers: dict[str, str], body: str
    ) -> tuple[int | None, str | None]:
        self.posts.append(Post(url, list(addresses), dict(headers), body))
        answer = self.answers.popleft() if self.answers else 200
        if isinstance(answer, tuple):
            return answer
        return answer, None if answer is not None else "could not connect"


# ---- ImageProvider ------------------------------------------------------------------------------

Step = ProviderTask | ProviderError


def _play(step: Step) -> ProviderTask:
    if isinstance(step, ProviderError):
        raise step
    return step


class ScriptedProvider:
    """An ImageProvider that answers from scripts, recording every call.

    Unscripted, a sync submit succeeds with `n` result URLs, an async one answers PENDING with a
    task id, a fetch answers SUCCEEDED, and a download is a real tiny PNG.
    """

    name = "scripted"

    def __init__(
        self,
        submits: Iterable[Step] = (),
        fetches: Iterable[Step] = (),
        downloads: Iterable[bytes | ProviderError] = (),
    ) -> None:
        self.submits: deque[Step] = deque(submits)
        self.fetches: deque[Step] = deque(fetches)
        self.downloads: deque[bytes | ProviderError] = deque(downloads)
        self.cancel_error: ProviderError | None = None
        self.submitted: list[tuple[ProviderRequest, bool]] = []
        self.fetched: list[str] = []
        self.canceled: list[str] = []
        self.downloaded: list[str] = []

    @property
    def calls(self) -> int:
        """Calls that cost money or a place at the provider (submits)."""
        return len(self.submitted)

    def submit(self, request: ProviderRequest, *, asynchronous: bool) -> ProviderTask:
        self.submitted.append((request, asynchronous))
        if self.submits:
            return _play(self.submits.popleft())
        if asynchronous:
            return ProviderTask(status=TaskStatus.PENDING, task_id="task-1", request_id="req-1")
        count = int(request.parameters.get("n", 1))
        return ProviderTask(
            status=TaskStatus.SUCCEEDED,
            request_id="req-1",
            image_urls=[f"https://results.fake/req-1/{i}.png" for i in range(count)],
        )

    def fetch(self, task_id: str) -> ProviderTask:
        self.fetched.append(task_id)
        if self.fetches:
            return _play(self.fetches.popleft())
        return succeeded(task_id=task_id)

    def cancel(self, task_id: str) -> None:
        self.canceled.append(task_id)
        if self.cancel_error is not None:
            raise self.cancel_error

    def download(self, url: str) -> bytes:
        self.downloaded.append(url)
        if self.downloads:
            answer = self.downloads.popleft()
            if isinstance(answer, ProviderError):
                raise answer
            return answer
        return tiny_png()


def succeeded(*urls: str, task_id: str | None = None) -> ProviderTask:
    return ProviderTask(
        status=TaskStatus.SUCCEEDED,
        task_id=task_id,
        request_id="req-1",
        image_urls=list(urls or ["https://results.fake/req-1/0.png"]),
    )


def task(status: TaskStatus, task_id: str = "task-1", **fields: Any) -> ProviderTask:
    return ProviderTask(status=status, task_id=task_id, **fields)


def http_error(status: int, code: str | None = None, message: str = "no") -> ProviderError:
    return ProviderError.from_http(status, code, message, "req-err")


# ---- DNS ----------------------------------------------------------------------------------------

PUBLIC_ADDRESS = "93.184.216.34"
DEFAULT_HOSTS: dict[str, list[str]] = {
    "hooks.example.com": [PUBLIC_ADDRESS],
    "images.example.com": [PUBLIC_ADDRESS],
    "results.fake": [PUBLIC_ADDRESS],
}


class FakeResolver:
    """DNS from a dict of host → addresses; a name it does not know resolves to nothing."""

    def __init__(self, hosts: dict[str, list[str]] | None = None) -> None:
        self.hosts: dict[str, list[str]] = {**DEFAULT_HOSTS, **(hosts or {})}
        self.lookups: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append((host, port))
        return list(self.hosts.get(host, []))


# ---- the context --------------------------------------------------------------------------------

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"unit-test-webhook-signing-secret").decode()
SETTINGS: dict[str, Any] = {
    "jobs_table": "jobs",
    "input_bucket": "in",
    "output_bucket": "out",
    "limits_table": "limits",
    "api_key_secret_arn": "arn:aws:secretsmanager:us-east-1:1:secret:dashscope",
    "webhook_queue_url": "https://sqs.fake/webhooks",
    "webhook_dead_letter_queue_url": "https://sqs.fake/webhooks-dlq",
    "webhook_secret_arn": "arn:aws:secretsmanager:us-east-1:1:secret:webhooks",
    "state_machine_arn": "arn:aws:states:us-east-1:1:stateMachine:jobs",
    "idempotency_table": "idempotency",
    "queue_table": "queue",
    "dispatch_function": "dispatcher",
    "tenants_table": "tenants",
    "budgets_table": "budgets",
}


class FakeMetrics:
    def __init__(self) -> None:
        self.points: list[tuple[str, float, dict[str, str]]] = []

    def count(self, name: str, value: float = 1, **dimensions: str) -> None:
        self.points.append((name, value, dimensions))

    def seconds(self, name: str, value: float, **dimensions: str) -> None:
        self.points.append((name, value, dimensions))

    def named(self, name: str) -> list[tuple[float, dict[str, str]]]:
        return [(value, dims) for point, value, dims in self.points if point == name]


@dataclass(frozen=True)
class Span:
    name: str
    job_id: str | None
    model: str | None
    error: str | None = None  # the class of the exception that left it


class FakeTracing:
    """Records each span with the job its thread follows (a ContextVar, as the X-Ray adapter
    keeps it). fake_context wraps the ports in spans only when a test passes one."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._job: ContextVar[tuple[str | None, str | None]] = ContextVar("job")

    def follow(self, job_id: str, model: str | None = None) -> None:
        self._job.set((job_id, model))

    @contextlib.contextmanager
    def span(self, name: str) -> Iterator[None]:
        job_id, model = self._job.get((None, None))
        try:
            yield
        except Exception as error:
            self.spans.append(Span(name, job_id, model, type(error).__name__))
            raise
        self.spans.append(Span(name, job_id, model))

    def named(self, name: str) -> list[Span]:
        return [span for span in self.spans if span.name == name]


@dataclass
class Fakes:
    jobs: FakeJobStore = field(default_factory=FakeJobStore)
    limits: FakeLimitStore = field(default_factory=FakeLimitStore)
    queue: FakeJobQueue = field(default_factory=FakeJobQueue)
    tenants: FakeTenantStore = field(default_factory=FakeTenantStore)
    budgets: FakeBudgetLedger = field(default_factory=FakeBudgetLedger)
    dispatch_lease: FakeDispatchLease = field(default_factory=FakeDispatchLease)
    callbacks: FakeCallbacks = field(default_factory=FakeCallbacks)
    wakes: list[str] = field(default_factory=list)
    objects: FakeObjectStore = field(default_factory=FakeObjectStore)
    executions: FakeExecutions = field(default_factory=FakeExecutions)
    events: FakeEvents = field(default_factory=FakeEvents)
    outbox: FakeOutbox = field(default_factory=FakeOutbox)
    sender: FakeSender = field(default_factory=FakeSender)
    provider: ScriptedProvider = field(default_factory=ScriptedProvider)
    resolve: FakeResolver = field(default_factory=FakeResolver)
    metrics: FakeMetrics = field(default_factory=FakeMetrics)
    pauses: list[float] = field(default_factory=list)
    tracing: Tracing = field(default_factory=NoTracing)
    webhook_secret: str = WEBHOOK_SECRET
    key_health: FakeKeyHealth = field(default_factory=FakeKeyHealth)
    tenant_keys: FakeTenantKeys = field(default_factory=FakeTenantKeys)
    pool: list[PoolKey] = field(default_factory=the_default_key)
    # A provider per key id (the default key, and any key not named, use `provider`).
    providers: dict[str, ScriptedProvider] = field(default_factory=dict)
    provider_kinds: list[Provider] = field(default_factory=list)  # every ctx.provider(kind)
    provider_keys_used: list[str] = field(default_factory=list)  # every ctx.provider's key id

    def provider_for(self, kind: Provider, key_id: str = DEFAULT_KEY_ID) -> ImageProvider:
        self.provider_kinds.append(kind)
        self.provider_keys_used.append(key_id)
        return traced(self.tracing, "provider", self.providers.get(key_id, self.provider))


_PORTS = frozenset(f.name for f in fields(Fakes)) - {
    "provider_kinds",
    "provider_keys_used",
    "wakes",
}


def fake_context(**overrides: Any) -> tuple[Context, Fakes]:
    """A Context acting as every function at once (model_for(None)), wired to fresh fakes.

    Keyword arguments named after a field of Fakes replace that fake (`jobs=MyStore()`); the
    others are settings fields (`max_provider_attempts=3`, `shared_input_prefixes="assets/"`).
    """
    fakes = Fakes(**{name: value for name, value in overrides.items() if name in _PORTS})
    settings = model_for(None)(
        **{**SETTINGS, **{name: v for name, v in overrides.items() if name not in _PORTS}}
    )
    ports: dict[str, Callable[[], Any]] = {
        "jobs": lambda: traced(fakes.tracing, "jobs", fakes.jobs),
        "limits": lambda: fakes.limits,
        "queue": lambda: traced(fakes.tracing, "queue", fakes.queue),
        "tenants": lambda: fakes.tenants,
        "budgets": lambda: fakes.budgets,
        "dispatch_lease": lambda: fakes.dispatch_lease,
        "callbacks": lambda: fakes.callbacks,
        "wake_dispatcher": lambda: lambda: fakes.wakes.append("wake"),
        "objects": lambda: traced(fakes.tracing, "objects", fakes.objects),
        "events": lambda: fakes.events,
        "webhook_outbox": lambda: fakes.outbox,
        "executions": lambda: fakes.executions,
        "webhook_sender": lambda: fakes.sender,
        "provider": lambda: fakes.provider_for,
        "provider_keys": lambda: lambda: list(fakes.pool),
        "key_health": lambda: fakes.key_health,
        "tenant_keys": lambda: fakes.tenant_keys,
        "resolve": lambda: fakes.resolve,
        "metrics": lambda: fakes.metrics,
        "pause": lambda: fakes.pauses.append,  # waits take no time here
        "tracing": lambda: fakes.tracing,
        "webhook_secret": lambda: lambda: fakes.webhook_secret,
    }
    return Context(settings, ports), fakes


# ---- jobs to start from -------------------------------------------------------------------------


def a_job(
    tenant: str = "tenant-a",
    *,
    model: str = "qwen-image-edit-plus",
    capability: Capability = Capability.EDIT,
    created_at: datetime | None = None,
    webhook_url: str | None = None,
    request: dict[str, Any] | None = None,
    source: JobSource = JobSource.API,
    **fields: Any,
) -> Job:
    """A queued job as accept would record it (its request names only s3:// images)."""
    job = new_job(
        tenant=tenant,
        capability=capability,
        model=model,
        source=source,
        request=request
        or (
            {"prompt": "add a red scarf", "images": ["s3://in/inputs/x/0.png"]}
            if capability is Capability.EDIT
            else {"prompt": "a lighthouse"}
        ),
        deadline_seconds=3600,
        webhook_url=webhook_url,
        **fields,
    )
    if created_at is not None:
        job = job.model_copy(
            update={
                "created_at": created_at,
                "updated_at": created_at,
                "deadline_at": created_at + timedelta(hours=1),
            }
        )
    return job


def queued(fakes: Fakes, token: str | None = None, **fields: Any) -> Job:
    """A recorded job (a_job's fields) waiting in the dispatcher's queue with `token`."""
    job = a_job(**fields)
    fakes.jobs.create(job)
    in_queue(fakes, job, token)
    return job


def in_queue(fakes: Fakes, job: Job, token: str | None = None) -> None:
    """The job waiting in the dispatcher's queue (as Admit puts it) with `token`."""
    entry = QueueEntry(
        job_id=job.id,
        tenant=job.tenant,
        family=get_model(job.model).family,
        lane=job.lane,
        enqueued_at=time.time(),
        deadline_at=job.deadline_at.timestamp(),
        start_by=job.start_by.timestamp() if job.start_by else None,
    )
    fakes.queue.put(entry, token or f"token-{job.id}")


def run(ctx: Context, rounds: int = 10_000) -> str:
    """The dispatcher until its queue is empty (or after `rounds` looks at it)."""
    left = iter(range(rounds, -1, -1))
    return dispatch(ctx, remaining=lambda: 600.0 if next(left, 0) else 0.0)


def _implements_the_ports(
    fakes: Fakes,
) -> tuple[
    JobStore,
    LimitStore,
    JobQueue,
    DispatchLease,
    Callbacks,
    ObjectStore,
    Executions,
    EventPublisher,
    WebhookOutbox,
    WebhookSender,
    ImageProvider,
    Tracing,
    TenantStore,
    BudgetLedger,
    KeyHealth,
    TenantKeys,
]:
    """Never called: mypy checks here that every fake has its port's shape."""
    return (
        fakes.jobs,
        fakes.limits,
        fakes.queue,
        fakes.dispatch_lease,
        fakes.callbacks,
        fakes.objects,
        fakes.executions,
        fakes.events,
        fakes.outbox,
        fakes.sender,
        fakes.provider,
        FakeTracing(),
        fakes.tenants,
        fakes.budgets,
        fakes.key_health,
        fakes.tenant_keys,
    )
