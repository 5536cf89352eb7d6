"""Pacing: keep the whole deployment under the provider's rate limits (SPEC §2).

One dispatcher makes every provider call (app/dispatcher.py), so one clock spaces them: a call
may go once it leaves at most `requests` calls in any window of `per_seconds / share + margin`
seconds (`next_call`, over the log of the family's last calls).
The pace (AIMD): a rate-quota 429 means the provider's real limit is lower than the catalog's (a
second deployment on the key, a lowered quota), so the share of the catalog rate in use drops
by DECREASE, once for the calls sent since the last decrease; it then grows back by RECOVERY
per window of time, with no writes. Busy 429s and 5xx say nothing about pacing and leave it
alone; only a run of OUTAGE_AFTER of them in a row pauses the family (`outage_pause`), so that
an outage does not spend every job's attempts in minutes.
Async task concurrency uses leases that expire at the job's deadline, so a lost release
cannot block a family for ever. Pure functions; adapters keep the state.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwen_edit.domain.catalog import RateLimit

# The margin covers what makes the provider see two calls closer together than the
# dispatcher's log says: the varying time a call takes to arrive. One dispatcher keeps the
# clock, so Lambdas' clock skew no longer counts (only at a hand-over, which waits
# HANDOVER_GUARD_SECONDS). It is added once per window, not as a share of it: a 2-per-minute
# family loses 0.04 s a minute. Measured in benchmarks/scheduling.py (20–60 ms of arrival
# jitter, 20–80 ms of preparation): the smallest margin with no rate-quota 429 in 8 runs.
DEFAULT_MARGIN_SECONDS = 0.04
HANDOVER_GUARD_SECONDS = 0.5  # a new dispatcher's clock may be 2 × 200 ms off the last one's
DECREASE = 0.8
RECOVERY = 0.01  # share regained per window
MIN_SHARE = 0.1
OUTAGE_AFTER = 5  # "try later" answers in a row (3 % each at random: never by chance)
OUTAGE_PAUSE_CAP_SECONDS = 60.0


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


def next_call(
    calls: list[float],
    limit: RateLimit,
    now: float,
    margin: float = DEFAULT_MARGIN_SECONDS,
    pace: Pace = Pace(),
) -> float:
    """The earliest moment ≥ now at which the log lets one more call out: at most `requests`
    in any window, and evenly spread (a window ÷ `requests` after the last call), so that a
    job that arrives just after a call waits one interval, not a whole window."""
    kept = sorted(calls)[-limit.requests :]
    if not kept:
        return now
    window = spacing(limit, margin, pace.share(limit, now))
    ready = kept[-1] + window / limit.requests
    if len(kept) == limit.requests:
        ready = max(ready, kept[0] + window)
    return max(now, ready)


def live_leases(holders: dict[str, float], now: float) -> dict[str, float]:
    return {holder: until for holder, until in holders.items() if until > now}


def outage_pause(failures_in_a_row: int) -> float:
    """How long a family pauses after this many "try later" answers in a row (5xx, busy 429,
    no connection): 0 below OUTAGE_AFTER, then 1, 2, 4 … up to a minute."""
    if failures_in_a_row < OUTAGE_AFTER:
        return 0.0
    return min(OUTAGE_PAUSE_CAP_SECONDS, 2.0 ** (failures_in_a_row - OUTAGE_AFTER))
