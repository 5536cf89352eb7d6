"""The values every image provider trades in (the port itself is ports.ImageProvider).

A provider takes a ProviderRequest and answers ProviderTask snapshots: a sync model answers a
final snapshot at once; an async one answers PENDING with a task id, then is polled with fetch().
Errors are ProviderError, keeping the provider's own code, message, request id and HTTP status.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.redaction import redact


class Region(StrEnum):
    """Model Studio regions; keys are per region and never interchangeable."""

    SINGAPORE = "singapore"
    BEIJING = "beijing"


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    UNKNOWN = "UNKNOWN"  # the provider no longer knows the task (purged after 24 h)

    @property
    def is_final(self) -> bool:
        return self in (
            TaskStatus.SUCCEEDED,
            TaskStatus.FAILED,
            TaskStatus.CANCELED,
            TaskStatus.UNKNOWN,
        )


# The provider's answer to a call over its rate quota (a busy provider says "Throttling").
RATE_QUOTA_CODE = "Throttling.RateQuota"


class ProviderError(Exception):
    """A failed provider call. `retryable` says whether the same call may succeed later."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        http_status: int | None = None,
        request_id: str | None = None,
        retryable: bool = False,
        outcome_unknown: bool = False,
    ):
        message = redact(message)  # providers echo the presigned URLs they were given
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.request_id = request_id
        self.retryable = retryable
        # No answer, though the request may have reached the provider: harmless to repeat for a
        # read, a possible second charge for a call that creates a task or an image.
        self.outcome_unknown = outcome_unknown

    @classmethod
    def from_http(
        cls, status: int, code: str | None, message: str | None, request_id: str | None
    ) -> ProviderError:
        # 429 and 5xx are the provider's "try again later"; every other answer is final.
        return cls(
            code or f"HTTP{status}",
            message or "no message",
            http_status=status,
            request_id=request_id,
            retryable=status == 429 or status >= 500,
        )


class Usage(BaseModel):
    model_config = ConfigDict(defer_build=True)
    image_count: int = 0
    width: int | None = None
    height: int | None = None


class ProviderRequest(BaseModel):
    """One call's worth of work; images are URLs or data URLs the provider can read."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    model: str
    capability: Capability
    prompt: str
    negative_prompt: str | None = None
    images: tuple[str, ...] = ()
    parameters: dict[str, Any] = {}


class ProviderTask(BaseModel):
    """A snapshot of the provider's work on one request."""

    model_config = ConfigDict(defer_build=True)

    status: TaskStatus
    task_id: str | None = None
    request_id: str | None = None
    image_urls: list[str] = []
    usage: Usage | None = None
    error_code: str | None = None
    error_message: str | None = None
    submit_time: str | None = None
    scheduled_time: str | None = None
    end_time: str | None = None
