"""What the domain needs from the outside world; adapters (DynamoDB, S3, Step Functions,
EventBridge, the provider clients) implement these, and tests may swap any of them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:  # annotations only: importing the ports loads no domain module (cold starts)
    from qwen_edit.domain.admission import Pace
    from qwen_edit.domain.budgets import Balance, BudgetAlert, PeriodCap, Reserved
    from qwen_edit.domain.dispatch import HeldLease, QueueEntry
    from qwen_edit.domain.intake import JobRejection
    from qwen_edit.domain.jobs import DeliveryStatus, Job, JobEvent, JobStatus, WebhookAttempt
    from qwen_edit.domain.provider import ProviderRequest, ProviderTask
    from qwen_edit.domain.tenants import TenantSettings
    from qwen_edit.domain.usage import JobUsage


class JobStore(Protocol):
    def create(self, job: Job) -> None:
        """Write a new job; a second create of the same id raises JobConflict."""

    def get(self, job_id: str) -> Job:
        """The job, or JobNotFound."""

    def transition(self, job_id: str, to: JobStatus, at: datetime, **fields: Any) -> Job:
        """Move the status (only along jobs.ALLOWED_FROM) and set fields, atomically; JobConflict
        when the job is no longer in a status it may leave for `to`."""

    def update(self, job_id: str, at: datetime, **fields: Any) -> Job:
        """Set fields of a job that is not final; JobConflict once it is."""

    def note(
        self,
        job_id: str,
        event: JobEvent | None = None,
        provider_status: str | None = None,
        **counters: int,
    ) -> None:
        """Add an event to the job's timeline (past jobs.room_for it is only counted, in
        events_dropped), set what the provider last said, and add to its counters
        (provider_calls, polls); final jobs too."""

    def link_retry(self, job_id: str, retried_by: str) -> None:
        """Set the job's retried_by (it is final: no status condition)."""

    def record_webhook(
        self, job_id: str, attempt: WebhookAttempt | None, status: DeliveryStatus
    ) -> None:
        """Append a final delivery's attempt (if any) and set its status (the job's own status
        stays)."""

    def claim_webhook_event(self, job_id: str, sequence: int) -> bool:
        """Before an intermediate event's attempt: note `sequence` as the latest sent, unless a
        later event was (or the final delivery has had an attempt); False then."""

    def unfinished(self, status: JobStatus) -> Iterator[OpenJob]:
        """The jobs in `status` (queued or running), oldest first, a page read as they are
        taken (an index that may lag the records by a moment)."""

    def list_for_tenant(
        self, tenant: str, limit: int, cursor: str | None, status: JobStatus | None
    ) -> tuple[list[Job], str | None]:
        """The tenant's jobs, newest first, a page at a time; InvalidRequest on a bad cursor."""

    def created_in(self, tenant: str, start: datetime, end: datetime) -> Iterator[JobUsage]:
        """What usage needs of the tenant's jobs created in [start, end), oldest first, read a
        page at a time as they are taken (stop taking, and no more pages are read)."""


class LimitStore(Protocol):
    """Async task places per family (models with a cap on running tasks)."""

    def acquire_lease(
        self, family: str, holder: str, max_holders: int, until: float, now: float
    ) -> bool:
        """Hold one of `max_holders` places until `until`; True if held (again)."""

    def release_lease(self, family: str, holder: str) -> None: ...


class JobQueue(Protocol):
    """The jobs waiting for their provider call, each with its workflow's task token."""

    def put(self, entry: QueueEntry, task_token: str) -> None:
        """Queue the job, or give a queued one its new token (its place and claim stay)."""

    def entries(self) -> list[QueueEntry]:
        """Every entry, claimed or not (without tokens)."""

    def count(self, tenant: str) -> int:
        """How many of the tenant's jobs wait."""

    def claim(self, entry: QueueEntry, token: int, now: float) -> str | None:
        """Mark the entry as being called for by dispatcher `token`: its task token, or None
        when it is gone or claimed already."""

    def requeue(self, entry: QueueEntry, calls: int) -> None:
        """Back in line at its old place, unclaimed, after `calls` provider calls."""

    def remove(self, tenant: str, job_id: str, task_token: str | None = None) -> None:
        """Out of the queue (called, failed, canceled); a no-op if it is gone. With
        `task_token`: only the entry of that token, not a later step's (a multi-step job's
        next Admit puts its own entry under the same key)."""


class DispatchLease(Protocol):
    """The one dispatcher's lease, with a fencing token, and the clock state it hands over."""

    def acquire(self, holder: str, now: float, until: float) -> HeldLease | None:
        """Take the lease if it is free or expired (a new, larger token), else None."""

    def renew(self, token: int, until: float) -> bool:
        """Extend the lease; False once another holder has taken it."""

    def record(self, token: int, bucket: str, calls: list[float], pace: Pace) -> bool:
        """Save a bucket's (a key's, for one family) booked calls and pace, only while `token`
        holds the lease."""

    def release(self, token: int) -> None: ...

    def held(self, now: float) -> bool:
        """Whether a dispatcher holds a live lease."""


class TenantStore(Protocol):
    """Per-tenant settings, written by the operator (the admin CLI), read by the use cases."""

    def get(self, tenant: str) -> TenantSettings | None: ...

    def put(self, settings: TenantSettings) -> None: ...

    def delete(self, tenant: str) -> None: ...

    def all(self) -> list[TenantSettings]: ...


class BudgetLedger(Protocol):
    """Per (tenant, period): what settled jobs cost and what open jobs reserved."""

    def reserve(
        self, tenant: str, caps: list[PeriodCap], amount: Decimal, *, enforce: bool
    ) -> Reserved:
        """Add `amount` to every period's reserved, in one atomic write, only if each stays
        within its cap (spent + reserved + amount <= cap): the balances after it, or
        budgets.Refused with the balances as they are, having written nothing. Not
        enforcing (observe-only): written whatever the caps, and each period whose cap
        would have refused it counts one more would_refuse and is named in `over`."""

    def release(self, tenant: str, periods: list[str], amount: Decimal) -> None:
        """Take back a reservation whose job was never made."""

    def settle(
        self, job_id: str, tenant: str, periods: list[str], reserved: Decimal, spent: Decimal
    ) -> bool:
        """Once per job: move its reservation to what it cost (reserved -= reserved,
        spent += spent) in every period; False (nothing written) if settled already."""

    def balances(self, tenant: str, periods: list[str]) -> list[Balance]: ...

    def claim_alert(self, tenant: str, period: str, threshold: int) -> bool:
        """True the first time only, per (tenant, period, threshold)."""


class KeyHealth(Protocol):
    """Which provider keys are dead (they answered 401 or 403), shared by every function."""

    def dead(self) -> set[str]:
        """The ids of the keys taken out of the pool."""

    def mark_dead(self, key_id: str, code: str, at: float) -> bool:
        """Take the key out of the pool; True if this call did (False: it was already out)."""


class TenantKeys(Protocol):
    """The provider key an operator reserved for a tenant (the tenants table's provider_key)."""

    def reserved(self) -> dict[str, str]:
        """Every tenant that has its own key: tenant → key id."""

    def key_of(self, tenant: str) -> str | None: ...


class Callbacks(Protocol):
    """Resume a workflow waiting on a task token (Step Functions' callback pattern)."""

    def succeed(self, task_token: str, output: dict[str, Any]) -> bool:
        """False when the token is no longer waited on (the execution ended or timed out)."""

    def fail(self, task_token: str, error: str, cause: str) -> bool: ...


class ObjectStore(Protocol):
    def put(self, bucket: str, key: str, body: bytes, content_type: str) -> None: ...

    def get(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""

    def presigned_get(self, bucket: str, key: str, expires_in: int) -> str: ...

    def presigned_put(
        self, bucket: str, key: str, content_type: str, content_length: int | None, expires_in: int
    ) -> str: ...

    def peek(self, bucket: str, key: str, length: int) -> tuple[int, bytes] | None:
        """The object's size and first bytes, or None when there is no such object."""


class OpenJob(NamedTuple):
    job_id: str
    created_at: datetime


class ExecutionState(NamedTuple):
    status: str  # RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED or PENDING_REDRIVE
    cause: str | None = None
    stopped_at: datetime | None = None


class Executions(Protocol):
    def start(self, name: str, payload: dict[str, Any]) -> None:
        """Start the workflow; starting a name that already exists starts nothing."""

    def state(self, name: str) -> ExecutionState | None:
        """The execution's status (and why it failed), or None when there is none."""

    def stop(self, name: str, cause: str) -> None: ...


class EventPublisher(Protocol):
    def publish(self, job: Job) -> None:
        """Publish the job's final status as an event (EventBridge)."""

    def reject(self, rejection: JobRejection) -> None:
        """Publish `Job Rejected`: an event that asked for a job, and why none was made."""

    def budget_threshold(self, alert: BudgetAlert) -> None:
        """Publish `Budget Threshold Reached` (80% or 100% of a tenant's cap)."""


class WebhookOutbox(Protocol):
    def send(self, delivery: Any, delay_seconds: float) -> None:
        """Queue a delivery's next step, at most 15 minutes ahead (longer waits hop)."""

    def dead_letter(self, delivery: Any) -> None:
        """Keep a delivery that finally failed where operators look."""


class WebhookSender(Protocol):
    def post(
        self, url: str, addresses: list[str], headers: dict[str, str], body: str
    ) -> tuple[int | None, str | None]:
        """POST to one of the checked addresses (never re-resolving the name), no redirects:
        (HTTP status or None, error text or None)."""


class ImageProvider(Protocol):
    """A provider takes a ProviderRequest and answers ProviderTask snapshots; errors are
    ProviderError (domain.provider)."""

    name: str

    def submit(self, request: ProviderRequest, *, asynchronous: bool) -> ProviderTask: ...

    def fetch(self, task_id: str) -> ProviderTask: ...

    def cancel(self, task_id: str) -> None:
        """Cancel a PENDING task; a task past PENDING raises a final ProviderError."""
        ...

    def download(self, url: str) -> bytes: ...


class Metrics(Protocol):
    """Operational numbers (CloudWatch, through EMF log lines). Dimensions stay few and
    bounded: a model family, an outcome, a reason; never a job id or a tenant."""

    def count(self, name: str, value: float = 1, **dimensions: str) -> None: ...

    def seconds(self, name: str, value: float, **dimensions: str) -> None: ...


class Tracing(Protocol):
    """Traces (X-Ray): spans around the calls that matter, each annotated with the job the
    current thread works for, so one job can be found across its functions."""

    def follow(self, job_id: str, model: str | None = None) -> None:
        """The spans this thread (or task) opens from now on are about this job."""

    def span(self, name: str) -> AbstractContextManager[None]:
        """A span for the work inside; an error raised there is recorded and goes on unchanged."""
        ...
