"""What an emulator instance does beyond the happy path: timings, injected faults, rate limits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from qwen_edit.domain.catalog import RESULT_URL_TTL_SECONDS


class LimitOverride(BaseModel):
    requests: int = Field(ge=1)
    per_seconds: float = Field(gt=0)


class Faults(BaseModel):
    """Settable per instance (CLI flags, PUT /_emulator/faults, or in-process)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency_s: float = Field(0.0, ge=0, description="added before every provider answer")
    sync_latency_s: float = Field(0.05, ge=0, description="time a sync generation takes")
    pending_s: float = Field(0.5, ge=0, description="time an async task stays PENDING")
    running_s: float = Field(1.0, ge=0, description="time an async task stays RUNNING")
    throttle_rate: float = Field(0.0, ge=0, le=1, description="share of calls answered 429")
    server_error_rate: float = Field(0.0, ge=0, le=1, description="share answered 500/503")
    final_error_rate: float = Field(
        0.0, ge=0, le=1, description="share refused as DataInspectionFailed (400)"
    )
    task_failure_rate: float = Field(0.0, ge=0, le=1, description="share of tasks that FAIL")
    result_ttl_s: float = Field(RESULT_URL_TTL_SECONDS, ge=0, description="lifetime of result URLs")
    enforce_rate_limits: bool = True
    rate_limits: dict[str, LimitOverride] = Field(
        default_factory=dict, description="per model family, replacing the catalog's limit"
    )
    random_seed: int = 0
