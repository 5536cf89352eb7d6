"""What an emulator instance does beyond the happy path: the provider's error answers
(ProviderFault), the settings of timings and injected faults (Faults), and whether a call is
admitted at all (Admission: the provider's rate limits, then the injected faults).

They sit together because admission is where the settings turn into error answers; every other
part of the emulator refuses a request by raising ProviderFault from here.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, deque

from pydantic import BaseModel, ConfigDict, Field

from qwen_edit.domain.catalog import RESULT_URL_TTL_SECONDS, ModelSpec, RateLimit


class ProviderFault(Exception):
    """An error answer of the provider: its HTTP status, error code and message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def invalid(message: str) -> ProviderFault:
    return ProviderFault(400, "InvalidParameter", message)


class LimitOverride(BaseModel):
    requests: int = Field(ge=1)
    per_seconds: float = Field(gt=0)


class Faults(BaseModel):
    """Settable per instance (CLI flags, PUT /_emulator/faults, or in-process)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency_s: float = Field(default=0.0, ge=0, description="added before every provider answer")
    sync_latency_s: float = Field(default=0.05, ge=0, description="time a sync generation takes")
    pending_s: float = Field(default=0.5, ge=0, description="time an async task stays PENDING")
    running_s: float = Field(default=1.0, ge=0, description="time an async task stays RUNNING")
    throttle_rate: float = Field(default=0.0, ge=0, le=1, description="share of calls answered 429")
    server_error_rate: float = Field(default=0.0, ge=0, le=1, description="share answered 500/503")
    final_error_rate: float = Field(
        default=0.0, ge=0, le=1, description="share refused as DataInspectionFailed (400)"
    )
    task_failure_rate: float = Field(
        default=0.0, ge=0, le=1, description="share of tasks that FAIL"
    )
    result_ttl_s: float = Field(
        default=RESULT_URL_TTL_SECONDS, ge=0, description="lifetime of result URLs"
    )
    enforce_rate_limits: bool = True
    rate_limits: dict[str, LimitOverride] = Field(
        default_factory=dict, description="per model family, replacing the catalog's limit"
    )
    random_seed: int = 0


class Admission:
    """Per key and model family, a sliding window over arrival times (the provider's rate limit);
    then one roll of the shared random stream decides the injected faults."""

    def __init__(self, lock: threading.Lock, rng: random.Random, counters: Counter[str]):
        self._lock, self._rng, self._counters = lock, rng, counters
        self._windows: dict[tuple[str, str], deque[float]] = {}

    def admit(self, faults: Faults, key: str, spec: ModelSpec, arrived: float) -> None:
        """Raises the ProviderFault of a refused call; `arrived` is monotonic seconds."""
        with self._lock:
            if faults.enforce_rate_limits:
                self._take_slot(faults, key, spec, arrived)
            roll = self._rng.random()
        self._inject(faults, roll)

    def _take_slot(self, faults: Faults, key: str, spec: ModelSpec, arrived: float) -> None:
        """Under the lock."""
        limit: LimitOverride | RateLimit = faults.rate_limits.get(spec.family) or spec.rate_limit
        window = self._windows.setdefault((key, spec.family), deque())
        while window and arrived - window[0] >= limit.per_seconds:
            window.popleft()
        if len(window) >= limit.requests:
            self._counters["rate_limited"] += 1
            raise ProviderFault(
                429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later."
            )
        window.append(arrived)

    def _inject(self, faults: Faults, roll: float) -> None:
        """The shares of the injected faults are consecutive slices of [0, 1)."""
        if roll < faults.throttle_rate:
            self._counters["injected_429"] += 1
            raise ProviderFault(429, "Throttling", "Requests throttling triggered.")
        roll -= faults.throttle_rate
        if roll < faults.server_error_rate:
            self._counters["injected_5xx"] += 1
            raise self._server_error()
        roll -= faults.server_error_rate
        if roll < faults.final_error_rate:
            self._counters["injected_final"] += 1
            raise ProviderFault(
                400, "DataInspectionFailed", "Input data may contain inappropriate content."
            )

    def _server_error(self) -> ProviderFault:
        if self._rng.random() < 0.5:
            return ProviderFault(
                500,
                "InternalError",
                "An internal error has occured, please try again later or contact service support.",
            )
        return ProviderFault(
            503, "ModelUnavailable", "Model is unavailable, please try again later."
        )
