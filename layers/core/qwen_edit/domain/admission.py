"""Admission control: keep the whole deployment under the provider's limits (SPEC §2).

Rate limits are per model family and are kept in two steps:
1. Admit *reserves* the earliest moment at which one more call leaves at most `requests` calls
   in any `per_seconds` window, and the job waits until then (one Wait state). A burst is
   spread at the provider's pace, and waiting jobs cost nothing.
2. Submit *claims* the real moment of its call against the log of actual calls, because a
   Wait state fires with 1-second resolution and a Lambda may start late. A short gap is slept
   inside the Lambda, which is cheaper than a state transition; a long one goes back to Admit.
Async task concurrency uses leases that expire at the job's deadline, so a lost release
cannot block a family for ever.
Pure functions; the LimitStore adapter keeps the state (DynamoDB, conditional writes).
"""

from __future__ import annotations

import random

from qwen_edit.domain.catalog import RateLimit

# Calls reach the provider a little after their claimed moment (network), so calls are spaced
# slightly wider than the provider's window: 10% plus a margin (ADMISSION_MARGIN_SECONDS).
SAFETY_FACTOR = 1.1
DEFAULT_MARGIN_SECONDS = 0.1
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 60.0


def spacing(limit: RateLimit, margin: float = DEFAULT_MARGIN_SECONDS) -> float:
    """The window within which at most `limit.requests` calls are let through."""
    return limit.per_seconds * SAFETY_FACTOR + margin


def reserve(
    recent: list[float], limit: RateLimit, now: float, margin: float = DEFAULT_MARGIN_SECONDS
) -> tuple[float, list[float]]:
    """The earliest slot ≥ now, and the reservations to keep (only the last `requests` matter)."""
    window = spacing(limit, margin)
    kept = sorted(recent)[-limit.requests :]
    slot = now if len(kept) < limit.requests else max(now, kept[0] + window)
    return slot, [*kept, slot][-limit.requests :]


def claim(
    calls: list[float], limit: RateLimit, now: float, margin: float = DEFAULT_MARGIN_SECONDS
) -> tuple[float, list[float]]:
    """Seconds to wait before a call may go out (0: it may now, and is recorded), and the log."""
    window = spacing(limit, margin)
    kept = sorted(calls)[-limit.requests :]
    ready_at = kept[0] + window if len(kept) == limit.requests else now
    if now >= ready_at:
        return 0.0, [*kept, now][-limit.requests :]
    return ready_at - now, kept  # > 0 whenever refused, so 0 always means "recorded"


def live_leases(holders: dict[str, float], now: float) -> dict[str, float]:
    return {holder: until for holder, until in holders.items() if until > now}


def backoff_seconds(attempt: int, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff before retry number `attempt` (1, 2, …)."""
    if attempt <= 0:
        return 0.0
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    return (rng or random).uniform(0, ceiling)
