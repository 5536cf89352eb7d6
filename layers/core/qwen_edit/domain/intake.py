"""Jobs submitted by event (README "Pipelines"): an EventBridge event whose detail-type names
the kind of job and whose detail is the body of POST /v1/edits or /v1/generations, plus an
optional idempotency_key.

Events carry no API key: the operator maps each allowed event `source` to a tenant. The same
event delivered twice, or two events with one idempotency_key, make one job: its id is derived
from the tenant and the key (else the event id). An event that cannot become a job is answered
with a `Job Rejected` event carrying why; nothing is dropped without a trace.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.jobs import is_client_id

# The detail-types an event may have, and the kind of job each asks for.
DETAIL_TYPES: dict[str, Capability] = {
    "Edit Requested": Capability.EDIT,
    "Generation Requested": Capability.TEXT_TO_IMAGE,
}
REJECTED_DETAIL_TYPE = "Job Rejected"
IDEMPOTENCY_KEY = "idempotency_key"  # the one field of a detail that is not the request's


class RequestEvent(BaseModel):
    """One EventBridge event as the intake queue carries it (its envelope parsed at the edge)."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    id: str
    source: str
    detail_type: str
    detail: Any  # the request, plus idempotency_key: anything, until validated


class EventOrigin(BaseModel):
    """Which event a rejection answers."""

    model_config = ConfigDict(defer_build=True)

    id: str
    source: str
    detail_type: str


class RejectionError(BaseModel):
    model_config = ConfigDict(defer_build=True)
    code: str
    message: str
    # InvalidRequest: one {field, rule, message} per broken rule, as the API's 422 lists them;
    # QueueFull: the limit and its retry_after_seconds, as the API's 429 says.
    details: list[dict[str, Any]] = Field(default_factory=list)
    retryable: bool


class JobRejection(BaseModel):
    """The detail of a `Job Rejected` event: the event that asked, why no job was made, and the
    correlation_id it named (when it named a well-formed one), so a pipeline's rule that
    follows its correlation_id sees its rejections too."""

    model_config = ConfigDict(defer_build=True)

    event: EventOrigin
    error: RejectionError
    correlation_id: str | None = None
    idempotency_key: str | None = None
    rejected_at: str


def event_job_id(tenant: str, key: str) -> str:
    """The job id of an event: the same for every delivery of it, and for every event of the
    tenant with the same idempotency_key (a valid execution name: 43 characters)."""
    digest = hashlib.sha256(f"{tenant}\n{key}".encode())
    return f"ev-{digest.hexdigest()[:40]}"


def request_digest(detail: Any) -> str:
    """What identifies an event's request, whatever its key order: two events under one
    idempotency_key make one job only if they ask for the same thing."""
    request = (
        {k: v for k, v in detail.items() if k != IDEMPOTENCY_KEY}
        if isinstance(detail, dict)
        else detail
    )
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def named_correlation_id(detail: Any) -> str | None:
    """The detail's correlation_id if it is one the request rules accept, else None (a broken
    one is among the rejection's details, and is not echoed)."""
    value = detail.get("correlation_id") if isinstance(detail, dict) else None
    return value if is_client_id(value) else None
