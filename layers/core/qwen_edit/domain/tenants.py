"""A tenant's settings, set by the operator only (`qwen-edit admin tenants`, with AWS
credentials; no API route reads or writes them): spend caps, the lane its requests default to,
its own queue cap, the provider key reserved for it (stored here, used by the dispatcher), and
the webhook that hears of its budget thresholds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from qwen_edit.domain.urls import MAX_URL_CHARS, parse_web_url

Money = float


class TenantSettings(BaseModel):
    """One item of the tenants table, keyed by `tenant` (an API key id, or the uploads')."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    tenant: str = Field(min_length=1, max_length=200)
    monthly_cap: Money | None = Field(
        None, ge=0, description="spend cap per calendar month (UTC), in the prices' currency"
    )
    daily_cap: Money | None = Field(None, ge=0, description="spend cap per UTC day")
    observe_only: bool = Field(
        False, description="record what the caps would refuse (BudgetWouldRefuse), refuse nothing"
    )
    lane: Literal["interactive", "batch"] | None = Field(
        None, description="the lane of requests that name none"
    )
    max_queued_jobs: int | None = Field(
        None, ge=1, le=100_000, description="overrides MaxQueuedJobsPerTenant for this tenant"
    )
    provider_key: str | None = Field(
        None, min_length=1, description="id of a pool key reserved for this tenant's jobs"
    )
    webhook_url: str | None = Field(
        None,
        max_length=MAX_URL_CHARS,
        description="where the tenant hears of its budget thresholds (signed like job webhooks)",
    )
    updated_at: AwareDatetime | None = None

    @field_validator("webhook_url")
    @classmethod
    def _a_url(cls, url: str | None) -> str | None:
        # Its shape; where it may point is checked before every delivery (check_target).
        if url is not None:
            parse_web_url(url)
        return url

    @property
    def capped(self) -> bool:
        return self.monthly_cap is not None or self.daily_cap is not None


def stamped(settings: TenantSettings, at: datetime) -> TenantSettings:
    return settings.model_copy(update={"updated_at": at})
