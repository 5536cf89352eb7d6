"""Jobs: the record of SPEC §3 and the only moves its status may make.

queued → running → succeeded | failed | canceled (and queued → failed | canceled). A job never
moves backwards and never completes twice; the store enforces this with conditional writes.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, computed_field

from qwen_edit.domain import keys
from qwen_edit.domain.budgets import BudgetHold
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.provider import Usage
from qwen_edit.domain.redaction import redact

UPLOAD_TENANT = "s3-uploads"  # upload-triggered jobs belong to no API key (the operator's)
# Error text as stored and shown: never a presigned URL's credentials (see redaction.py).
SafeText = Annotated[str, AfterValidator(redact)]
CORRELATION_ID_PATTERN = r"^[!-~]+$"  # printable ASCII, no spaces: safe in any header or log
MAX_CLIENT_ID_CHARS = 128  # a correlation_id, or an event's idempotency_key


def is_client_id(value: Any) -> bool:
    """Whether `value` is an id a client may give (correlation_id, idempotency_key): 1 to 128
    printable ASCII characters without spaces."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_CLIENT_ID_CHARS
        and re.fullmatch(CORRELATION_ID_PATTERN, value) is not None
    )


def stored_time(value: datetime) -> str:
    """A time as job records keep it: fixed width, so the stored strings sort in time order
    (the indexes sort on created_at)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


Timestamp = Annotated[datetime, PlainSerializer(stored_time, return_type=str, when_used="json")]


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})
# What a webhook announces when the request names no `webhook_events`: the end, as before.
DEFAULT_WEBHOOK_EVENTS = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)
# Where each status may come from.
ALLOWED_FROM: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.RUNNING: frozenset({JobStatus.QUEUED}),
    JobStatus.SUCCEEDED: frozenset({JobStatus.RUNNING}),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
    JobStatus.CANCELED: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
}


class JobKind(StrEnum):
    EDIT = "edit"
    GENERATION = "generation"

    @classmethod
    def of(cls, capability: Capability) -> JobKind:
        return cls.EDIT if capability is Capability.EDIT else cls.GENERATION

    @property
    def capability(self) -> Capability:
        return Capability.EDIT if self is JobKind.EDIT else Capability.TEXT_TO_IMAGE


class JobSource(StrEnum):
    API = "api"
    S3 = "s3"
    EVENT = "event"  # an EventBridge event (README "Pipelines")


class OutputTarget(BaseModel):
    """Where a job's results go in the output bucket.

    API jobs: results/<id>/<i>.png and results/<id>/job.json. Upload-triggered jobs mirror the
    input path: outbox/<recipe>/<path>/<stem>.png (-1.png, -2.png … when n > 1) and <stem>.json.
    """

    model_config = ConfigDict(defer_build=True)

    prefix: str
    stem: str | None = None

    def image_key(self, index: int, count: int, step: int | None = None) -> str:
        """The key of output `index` of `count`; `step` names an earlier step of a multi-step
        job, whose outputs are kept beside the last step's: results/<id>/step<k>/<i>.png, or
        <stem>.step<k>.png in an outbox."""
        if self.stem is None:
            return f"{self.prefix}{'' if step is None else f'step{step}/'}{index}.png"
        stem = self.stem if step is None else f"{self.stem}.step{step}"
        return f"{self.prefix}{stem}.png" if count == 1 else f"{self.prefix}{stem}-{index + 1}.png"

    @property
    def record_key(self) -> str:
        return f"{self.prefix}{self.stem or 'job'}.json"


class JobOutput(BaseModel):
    model_config = ConfigDict(defer_build=True)
    s3_uri: str
    width: int | None = None
    height: int | None = None
    url: str | None = None  # presigned when the job is read, never stored


class JobInput(BaseModel):
    """An input image as the request named it, with a presigned URL to show it (s3:// only)."""

    model_config = ConfigDict(defer_build=True)

    image: str
    url: str | None = None  # presigned when the job is read, never stored


class Lane(StrEnum):
    """Interactive jobs go before batch ones; batch keeps a guaranteed share (domain/dispatch)."""

    INTERACTIVE = "interactive"
    BATCH = "batch"


class QueuePlace(BaseModel):
    """Where a queued job stands: how many calls of its model family go before its own (1 = it
    is next), and when its call should go (an estimate: new jobs of other tenants take turns
    with it, and a slower pace or a failed call ahead moves it)."""

    model_config = ConfigDict(defer_build=True)

    lane: Lane
    position: int
    estimated_start_at: Timestamp


class QueueRoom(BaseModel):
    """A tenant's room under its queue cap (MaxQueuedJobsPerTenant) as one count saw it: the
    cap, the places left, and the seconds until a place should free up (an estimate: one call
    interval of the model's family, the pace at which its queue moves)."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    limit: int
    remaining: int
    reset_seconds: int


# Codes that say the request itself, or the deployment's access, is at fault: the same request
# would fail again. The provider's (Model Studio's error classes) and ours.
_NOT_RETRYABLE = (
    *("InvalidParameter", "DataInspectionFailed", "InvalidURL", "InvalidApiKey"),
    *("AccessDenied", "ModelNotFound", "InvalidRequest", "IdempotencyConflict"),
)


def retry_can_help(code: str) -> bool:
    """Whether the same request may succeed later: a throttle, an outage, a timeout, a missed
    deadline or a cancel, yes; a refused request or a key without access, no."""
    return not code.startswith(_NOT_RETRYABLE)


class JobError(BaseModel):
    model_config = ConfigDict(defer_build=True)
    code: str
    message: SafeText
    step: int | None = None  # of a multi-step job: the step that failed

    @computed_field(description="whether the same request may succeed later (POST …/retry)")  # type: ignore[prop-decorator]  # pydantic's documented form
    @property
    def retryable(self) -> bool:
        return retry_can_help(self.code)


class ProviderInfo(BaseModel):
    model_config = ConfigDict(defer_build=True)
    name: str
    region: str | None = None
    request_id: str | None = None
    task_id: str | None = None
    # The id (never the material) of the pool key that made the call: its task is read with it.
    key_id: str | None = None


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    STOPPED = "stopped"  # the receiver answered 410 Gone
    FAILED = "failed"  # every attempt failed, or the target is not allowed
    # Not sent: the job ended in a status its webhook_events leave out (or, for a queued or
    # running event, a later event went first).
    SKIPPED = "skipped"


class WebhookAttempt(BaseModel):
    model_config = ConfigDict(defer_build=True)
    at: Timestamp
    status: int | None = None  # the HTTP status, when there was an answer
    error: SafeText | None = None


class WebhookState(BaseModel):
    """The job's final webhook delivery: one webhook-id for every attempt, each attempt kept.
    Intermediate events (queued, running) are best effort and not recorded here."""

    model_config = ConfigDict(defer_build=True)

    id: str
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: list[WebhookAttempt] = Field(default_factory=list)


class Cursor(BaseModel):
    """The call a multi-step job is at: its step, and the run of that step (a fan_out step
    runs once per output of the step before)."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    step: int = 0
    run: int = 0


class StepResult(BaseModel):
    """What a step of a multi-step job has stored, over its runs so far."""

    model_config = ConfigDict(defer_build=True)

    model: str
    outputs: list[JobOutput] = Field(default_factory=list)
    images: int = 0  # the provider's count (what it bills)


class StepStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    SKIPPED = "skipped"  # never ran: an earlier step failed, or the job was canceled


class StepView(BaseModel):
    """One step of a multi-step job as clients see it (index 0 is the request itself)."""

    model_config = ConfigDict(defer_build=True)

    index: int
    model: str
    status: StepStatus
    outputs: list[JobOutput] = Field(default_factory=list)
    error: JobError | None = None  # of the step that ended the job


class Step(StrEnum):
    """A moment in a job's life, as its timeline shows it."""

    QUEUED = "queued"  # accepted and recorded
    ADMITTED = "admitted"  # waiting in the dispatcher's line for its provider call
    SUBMITTED = "submitted"  # the provider call was answered (detail: what it said)
    ANSWERED = "answered"  # a poll saw a new task status (detail: the status)
    RETRIED = "retried"  # a step will run again (detail: why)
    STORED = "stored"  # results copied into the output bucket
    FAILED = "failed"
    CANCELED = "canceled"
    NOTIFIED = "notified"  # the final event went out (EventBridge, webhook queued)


def _short_line(text: str) -> str:
    """One printable line of at most 200 characters (the provider's words, shown in a CLI)."""
    return "".join(c if c.isprintable() else " " for c in text)[:200]


class JobEvent(BaseModel):
    model_config = ConfigDict(defer_build=True)
    at: Timestamp
    step: Step
    detail: Annotated[SafeText, AfterValidator(_short_line)] | None = None
    polls: int | None = None  # the polls sent so far, on `answered`


MAX_EVENTS = 24  # a job's timeline keeps its first events; later ones are only counted...
ENDINGS = frozenset({Step.STORED, Step.FAILED, Step.CANCELED, Step.NOTIFIED})


def room_for(step: Step) -> int:
    """...except how it ended, which always has room: retries cannot push it out."""
    return MAX_EVENTS + len(ENDINGS) if step in ENDINGS else MAX_EVENTS


class JobView(BaseModel):
    """The public shape of a job (API answers, events, webhooks, job.json)."""

    # Fields with defaults are still in every answer: the schema says so (absent ones are None).
    model_config = ConfigDict(
        defer_build=True,
        json_schema_extra={
            "required": [
                *("id", "kind", "status", "model", "source"),
                *("created_at", "updated_at", "request", "outputs"),
            ]
        },
    )

    id: str
    kind: JobKind
    status: JobStatus = JobStatus.QUEUED
    model: str
    source: JobSource
    created_at: Timestamp
    updated_at: Timestamp
    completed_at: Timestamp | None = None
    request: dict[str, Any]
    outputs: list[JobOutput] = Field(default_factory=list)  # a multi-step job's: the last step's
    # A multi-step job's steps (the request and its `then`), each with its own outputs.
    steps: list[StepView] | None = None
    inputs: list[JobInput] | None = None  # in API answers only: request.images, viewable
    lane: Lane = Lane.INTERACTIVE
    # From the request's deadline or cancel_after: not started at the provider by then, the
    # job ends canceled (DeadlineExceeded) at no provider cost.
    start_by: Timestamp | None = None
    queue: QueuePlace | None = None  # shown while the job waits for its provider call
    usage: Usage | None = None
    provider: ProviderInfo | None = None
    error: JobError | None = None
    metadata: dict[str, str] | None = None
    correlation_id: str | None = None  # the client's own id, on every event and webhook
    webhook_url: str | None = None
    webhook_events: list[JobStatus] | None = None  # with webhook_url: the statuses it announces
    retry_of: str | None = None  # the failed or canceled job this one retries
    retried_by: str | None = None  # the latest retry of this job
    webhook: WebhookState | None = None
    events: list[JobEvent] = Field(default_factory=list)
    events_dropped: int = 0  # events past MAX_EVENTS, not kept


class ProviderCall(BaseModel):
    """The job's latest provider call, written before it is sent: a step that finds its own
    call unanswered knows an earlier run sent it and crashed (at most one call per attempt)."""

    model_config = ConfigDict(defer_build=True)

    attempt: int  # the workflow's admission attempt that made it
    sent_at: Timestamp
    answered: bool = False


class Job(JobView):
    """The record: the public view, plus whose it is, when it must end, where results go."""

    tenant: str
    deadline_at: Timestamp
    output: OutputTarget
    provider_call: ProviderCall | None = None
    provider_calls: int = 0  # every submit and poll sent for the job (usage counts them)
    polls: int = 0
    provider_status: str | None = None  # what the provider last said of its task
    # The sequence of the latest intermediate webhook event sent (webhooks.claim_progress).
    webhook_sequence: int = 0
    # A job by event: the digest of the request that made it, so that another request under
    # the same idempotency_key is refused, not taken for a redelivery.
    request_digest: str | None = None
    cursor: Cursor | None = None  # a multi-step job's current call
    step_results: list[StepResult] = Field(default_factory=list)  # one per step begun
    budget: BudgetHold | None = None  # a capped tenant's reservation, until it settles

    @property
    def models(self) -> list[str]:
        """The model of each step: the request's, then each `then` step's (resolved at
        acceptance)."""
        return [self.model, *(step["model"] for step in self.request.get("then") or ())]

    @property
    def current_model(self) -> str:
        """The model of the call the job is at (its only one, for a single-step job)."""
        return self.models[self.cursor.step] if self.cursor else self.model

    @property
    def step_prefix(self) -> str:
        """ "step k: " for a multi-step job's timeline details, else nothing."""
        return "" if self.cursor is None else f"step {self.cursor.step}: "

    def step_views(self) -> list[StepView] | None:
        """Each step's status, from where the job is and how it stands."""
        if self.cursor is None:
            return None
        at, views = self.cursor.step, []
        for index, model in enumerate(self.models):
            if index < at or (index == at and self.status is JobStatus.SUCCEEDED):
                status = StepStatus.SUCCEEDED
            elif index == at:
                status = StepStatus(self.status.value)
            else:
                status = StepStatus.SKIPPED if self.status.is_final else StepStatus.QUEUED
            ended = status in (StepStatus.FAILED, StepStatus.CANCELED)
            views.append(
                StepView(
                    index=index,
                    model=model,
                    status=status,
                    outputs=next((r.outputs for r in self.step_results[index:]), []),
                    error=self.error if ended else None,
                )
            )
        return views

    def announces(self, status: JobStatus) -> bool:
        """Whether the job's webhook announces `status`."""
        events = self.webhook_events or DEFAULT_WEBHOOK_EVENTS
        return self.webhook_url is not None and status in events

    def public(self) -> dict[str, Any]:
        """The job as clients see it (SPEC §3): no tenant, no internal routing."""
        shown = JobView.model_validate({**self.model_dump(), "steps": self.step_views()})
        return shown.model_dump(mode="json", exclude_none=True)


def now_utc() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    # Time-ordered (uuid7-like prefix) so ids sort by creation, and valid as execution names.
    return f"{int(now_utc().timestamp() * 1000):012x}-{uuid.uuid4().hex[:20]}"


def new_job(
    *,
    tenant: str,
    capability: Capability,
    model: str,
    source: JobSource,
    request: dict[str, Any],
    deadline_seconds: int,
    job_id: str | None = None,
    output: OutputTarget | None = None,
    metadata: dict[str, str] | None = None,
    correlation_id: str | None = None,
    webhook_url: str | None = None,
    webhook_events: list[JobStatus] | None = None,
    lane: Lane | None = None,
    start_by: datetime | None = None,
    retry_of: str | None = None,
) -> Job:
    """A queued job; its lane is interactive for API requests and events, and batch for
    uploads, unless the request or recipe chose one."""
    job_id = job_id or new_job_id()
    created = now_utc()
    return Job(
        id=job_id,
        tenant=tenant,
        kind=JobKind.of(capability),
        model=model,
        source=source,
        lane=lane or (Lane.BATCH if source is JobSource.S3 else Lane.INTERACTIVE),
        start_by=start_by,
        retry_of=retry_of,
        created_at=created,
        updated_at=created,
        deadline_at=created + timedelta(seconds=deadline_seconds),
        request=request,
        output=output or OutputTarget(prefix=keys.results_prefix(job_id)),
        metadata=metadata,
        correlation_id=correlation_id,
        webhook_url=webhook_url,
        webhook_events=(webhook_events or list(DEFAULT_WEBHOOK_EVENTS)) if webhook_url else None,
        webhook=WebhookState(id=f"msg_{job_id}") if webhook_url else None,
        events=[JobEvent(at=created, step=Step.QUEUED)],
    )


def event(step: Step, detail: str | None = None, polls: int | None = None) -> JobEvent:
    return JobEvent(at=now_utc(), step=step, detail=detail, polls=polls)
