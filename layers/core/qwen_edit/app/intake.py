"""Submit by event (README "Pipelines"): one EventBridge event → at most one job.

- The event's `source` names its tenant (EventSourceTenants). An unmapped source is refused:
  logged and counted (`EventsRefused`), never a job and never an event (the rule's pattern
  already keeps such events out; this is the second lock).
- Its `detail-type` names the kind (`Edit Requested`, `Generation Requested`), its `detail` is
  the body of POST /v1/edits or /v1/generations plus an optional `idempotency_key`.
- The job id comes from (tenant, idempotency_key or the event id), so a redelivery, or a second
  event with the same key, makes no second job; it starts the first one's workflow if an
  earlier delivery died before that, and is otherwise a no-op. The same key with another
  request is rejected (IdempotencyConflict).
- An event that cannot become a job for its own reasons (a broken rule, the tenant's queue
  full) is answered with a `Job Rejected` event and counted (`JobsRejected`), never retried:
  the same event would be refused again. Anything else (storage, the workflow, EventBridge)
  raises, and SQS retries the event, then dead-letters it.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

from qwen_edit.app import lifecycle, service
from qwen_edit.context import Context
from qwen_edit.domain.catalog import RuleViolation
from qwen_edit.domain.errors import (
    BudgetExceeded,
    IdempotencyConflict,
    InvalidRequest,
    JobConflict,
    JobNotFound,
    QueueFull,
    QwenEditError,
)
from qwen_edit.domain.intake import (
    DETAIL_TYPES,
    IDEMPOTENCY_KEY,
    EventOrigin,
    JobRejection,
    RejectionError,
    RequestEvent,
    event_job_id,
    named_correlation_id,
    request_digest,
)
from qwen_edit.domain.jobs import (
    MAX_CLIENT_ID_CHARS,
    Job,
    JobSource,
    JobStatus,
    is_client_id,
    now_utc,
    retry_can_help,
    stored_time,
)
from qwen_edit.domain.redaction import redact
from qwen_edit.domain.requests import ValidRequest
from qwen_edit.settings import EventIntake

logger = Logger(child=True)


def submit(ctx: Context, event: RequestEvent) -> Job | None:
    """The event's job (a new one, or the one an earlier delivery made), or None when the
    event was refused or rejected."""
    tenant = ctx.need(EventIntake).tenant_of(event.source)
    if tenant is None:
        logger.warning(
            "event from a source without a tenant refused",
            extra={"event_id": event.id, "source": event.source},
        )
        ctx.metrics.count("EventsRefused", Reason="unknown-source")
        return None
    job_id = event_job_id(tenant, _idempotency_key(event) or event.id)
    digest = request_digest(event.detail)
    ctx.tracing.follow(job_id)
    try:
        return _redelivered(ctx, event, job_id, digest)  # first: a rule may have changed since
    except JobNotFound:
        pass
    try:
        valid = _validate(ctx, event, tenant)
    except InvalidRequest as refused:
        _reject(ctx, event, refused)
        return None
    try:
        job, _room = service.accept(
            ctx, valid, tenant=tenant, source=JobSource.EVENT, job_id=job_id, request_digest=digest
        )
    except JobConflict:  # another delivery made it in the meantime
        return _redelivered(ctx, event, job_id, digest)
    except (QueueFull, BudgetExceeded, InvalidRequest) as full:
        # Rejected, not retried: SQS would bring it back for as long as the queue stays full
        # (or the cap spent), and the tenant's pipeline is the one that can decide to send it
        # again later. InvalidRequest here: a model without a price under a spend cap.
        _reject(ctx, event, full)
        return None
    logger.info(
        "job submitted by event",
        extra={"event_id": event.id, "source": event.source, "job_id": job.id},
    )
    return job


def _idempotency_key(event: RequestEvent) -> str | None:
    """The detail's idempotency_key, if it names a well-formed one."""
    key = event.detail.get(IDEMPOTENCY_KEY) if isinstance(event.detail, dict) else None
    return key if is_client_id(key) else None


def _redelivered(ctx: Context, event: RequestEvent, job_id: str, digest: str) -> Job | None:
    """The job an earlier delivery made (JobNotFound if none): started if that delivery died
    between recording it and starting its workflow. Another request under the same
    idempotency_key is rejected (IdempotencyConflict), not mistaken for that job."""
    job = lifecycle.load_job(ctx, job_id)
    if job.request_digest not in (None, digest):
        conflict = IdempotencyConflict(
            f"idempotency_key {_idempotency_key(event)!r} already made job {job.id} from "
            "another request: use a new key for a new request"
        )
        _reject(ctx, event, conflict)
        return None
    if job.status is JobStatus.QUEUED:
        ctx.executions.start(job.id, {"job_id": job.id})  # a second start starts nothing
    logger.info("duplicate event: its job exists", extra={"job_id": job_id})
    return job


def _validate(ctx: Context, event: RequestEvent, tenant: str) -> ValidRequest:
    """The request of the event's detail, validated as the API validates a body (every broken
    rule named), with the event's own fields checked too."""
    capability = DETAIL_TYPES.get(event.detail_type)
    if capability is None:
        raise InvalidRequest.of(
            [
                RuleViolation(
                    "detail-type",
                    "known-detail-type",
                    f"detail-type {event.detail_type[:64]!r} is not one of "
                    f"{', '.join(repr(name) for name in DETAIL_TYPES)}",
                )
            ]
        )
    if not isinstance(event.detail, dict):
        raise InvalidRequest.of(
            [RuleViolation("detail", "model_type", "detail must be a JSON object (the request)")]
        )
    request = {k: v for k, v in event.detail.items() if k != IDEMPOTENCY_KEY}
    problems: list[RuleViolation] = []
    key = event.detail.get(IDEMPOTENCY_KEY)
    if key is not None and not is_client_id(key):
        problems.append(
            RuleViolation(
                IDEMPOTENCY_KEY,
                "pattern",
                f"{IDEMPOTENCY_KEY} must be 1 to {MAX_CLIENT_ID_CHARS} printable ASCII "
                "characters without spaces",
            )
        )
    try:
        valid = service.validate(ctx, capability, request, tenant=tenant)
    except InvalidRequest as broken:
        found = [RuleViolation(d["field"], d["rule"], d["message"]) for d in broken.details]
        raise InvalidRequest.of(found + problems) from None
    if problems:
        raise InvalidRequest.of(problems)
    return valid


def _reject(ctx: Context, event: RequestEvent, refused: QwenEditError) -> None:
    """Publish `Job Rejected` with why, and count it."""
    rejection = JobRejection(
        event=EventOrigin(id=event.id, source=event.source, detail_type=event.detail_type),
        error=RejectionError(
            code=refused.code,
            message=refused.message,
            # The bus is shared: a detail that quotes a URL keeps none of its credentials.
            details=[
                {**d, "message": redact(d["message"])} if isinstance(d.get("message"), str) else d
                for d in refused.details
            ],
            retryable=retry_can_help(refused.code),
        ),
        correlation_id=named_correlation_id(event.detail),
        idempotency_key=_idempotency_key(event),
        rejected_at=stored_time(now_utc()),
    )
    ctx.events.reject(rejection)
    ctx.metrics.count("JobsRejected", Reason=refused.code)
    logger.info(
        "event rejected",
        extra={"event_id": event.id, "source": event.source, "code": refused.code},
    )
