"""Admission control: keep the whole deployment under the provider's limits (SPEC §2).

Rate limits are per model family and are kept in two steps:
1. Admit *reserves* the earliest moment at which one more call leaves at most `requests` calls
   in any `per_seconds` window, and the job waits until then (one Wait state). A burst is
   spread at the provider's pace, and waiting jobs cost nothing. A job that comes back (its
   slot missed, or its call answered "try later") does not book at the tail: it waits for
   the next moment the call log frees, and so keeps its place near the head.
2. Submit *claims* the real moment of its call against the log of actual calls, because a
   Wait state fires with 1-second resolution and a Lambda may start late. A short gap is slept
   inside the Lambda, which is cheaper than a state transition; a long one goes back to Admit.
Async task concurrency uses leases that expire at the job's deadline, so a lost release
cannot block a family for ever.
The pace (AIMD): a rate-quota 429 means the provider's real limit is lower than the catalog's (a
second deployment on the key, a lowered quota), so the share of the catalog rate in use drops
by DECREASE, once for the calls sent since the last decrease; it then grows back by RECOVERY
per window of time, with no writes. Busy 429s and 5xx say nothing about pacing and leave it alone.
Pure functions; the LimitStore adapter keeps the state (DynamoDB, conditional writes).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from qwen_edit.domain.catalog import RateLimit

# The margin covers what makes the provider's clock see calls closer together than the claim
# log says: Lambdas' clocks disagree, and calls take a varying time to arrive. It is added once
# per window (not a share of it): a 2-per-minute family loses 0.25 s a minute, not 6 s. 0.25 s
# is measured (benchmarks/scheduling.py, with ±200 ms of skew and 20–60 ms of arrival): the
# smallest margin with no rate-quota 429 in 8 runs of 200 jobs; 0.2 s let 1 through in 3.
DEFAULT_MARGIN_SECONDS = 0.25
DECREASE = 0.8
RECOVERY = 0.01  # share regained per window
MIN_SHARE = 0.1
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 60.0


@dataclass(frozen=True)
class Pace:
    """The share of the catalog's rate in use: `base` at `slowed_at`, recovering since."""

    base: float = 1.0
    slowed_at: float = 0.0

    def share(self, limit: RateLimit, now: float) -> float:
        windows = max(0.0, now - self.slowed_at) / limit.per_seconds
        return min(1.0, self.base + RECOVERY * windows)

    def slowed(self, limit: RateLimit, sent_at: float, now: float) -> Pace:
        """After a rate-quota 429 to a call sent at `sent_at`. A call sent before the last
        slowdown tells nothing new (as TCP ignores losses from before its last decrease)."""
        if sent_at <= self.slowed_at:
            return self
        return Pace(max(MIN_SHARE, self.share(limit, now) * DECREASE), now)


def spacing(limit: RateLimit, margin: float = DEFAULT_MARGIN_SECONDS, share: float = 1.0) -> float:
    """The window within which at most `limit.requests` calls are let through."""
    return limit.per_seconds / share + margin


def reserve(
    recent: list[float],
    limit: RateLimit,
    now: float,
    margin: float = DEFAULT_MARGIN_SECONDS,
    pace: Pace = Pace(),
) -> tuple[float, list[float]]:
    """The earliest slot ≥ now, and the reservations to keep (only the last `requests` matter)."""
    slot = next_call(recent, limit, now, margin, pace)
    return slot, _with(recent, slot, limit)


def next_call(
    calls: list[float],
    limit: RateLimit,
    now: float,
    margin: float = DEFAULT_MARGIN_SECONDS,
    pace: Pace = Pace(),
) -> float:
    """The earliest moment ≥ now at which the log (calls or reservations) lets one more out."""
    kept = sorted(calls)[-limit.requests :]
    if len(kept) < limit.requests:
        return now
    return max(now, kept[0] + spacing(limit, margin, pace.share(limit, now)))


def claim(
    calls: list[float],
    limit: RateLimit,
    now: float,
    margin: float = DEFAULT_MARGIN_SECONDS,
    pace: Pace = Pace(),
) -> tuple[float, list[float]]:
    """Seconds to wait before a call may go out (0: it may now, and is recorded), and the log."""
    ready_at = next_call(calls, limit, now, margin, pace)
    if now >= ready_at:
        return 0.0, _with(calls, now, limit)
    return ready_at - now, calls  # > 0 whenever refused, so 0 always means "recorded"


def _with(times: list[float], moment: float, limit: RateLimit) -> list[float]:
    """The log with one more moment, keeping the last `requests` (all a window needs)."""
    return [*sorted(times), moment][-limit.requests :]


def calls_before(slot: float, limit: RateLimit, now: float, margin: float) -> int:
    """How many calls the family lets out before a call booked at `slot` (an estimate)."""
    return math.ceil(max(0.0, slot - now) / spacing(limit, margin) * limit.requests)


def live_leases(holders: dict[str, float], now: float) -> dict[str, float]:
    return {holder: until for holder, until in holders.items() if until > now}


def rejoin_delay(
    limit: RateLimit, failed_calls: int, after_failure: bool, rng: random.Random | None = None
) -> float:
    """How long a job back from Submit waits beyond the next free call moment. A failed call
    backs off (full jitter, growing with each failure); a missed slot is spread over one call
    interval, so that the jobs that missed one moment do not all wake for the next."""
    if after_failure:
        return backoff_seconds(failed_calls, rng)
    return (rng or random).uniform(0, limit.per_seconds / limit.requests)


def backoff_seconds(attempt: int, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff before retry number `attempt` (1, 2, …)."""
    if attempt <= 0:
        return 0.0
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    return (rng or random).uniform(0, ceiling)
