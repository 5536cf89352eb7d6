"""Waiting without polling: `Prefer: wait=N` on creates (RFC 7240) and `?wait=N` on a job.

A waiting request holds its Lambda while it waits, so a wait is bounded by API Gateway's 29 s
integration timeout: at most MAX_WAIT_SECONDS, and never past the function's own time."""

from __future__ import annotations

import re
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Header

MAX_WAIT_SECONDS = 20  # of the 29 s API Gateway allows, room to read, answer and presign
MAX_PREFERRED_SECONDS = 60  # what Prefer may ask; more is ignored, as RFC 7240 lets a server
SPARE_SECONDS = 3  # of the function's remaining time, for the answer
_WAIT = re.compile(r"^\s*wait\s*=\s*([0-9]{1,6})\s*$", re.IGNORECASE)

Prefer = Annotated[
    str | None,
    Header(
        alias="Prefer",
        max_length=200,
        description=f"wait=N (N ≤ {MAX_PREFERRED_SECONDS}): answer 200 with the final job if "
        f"it ends within N seconds (waiting at most {MAX_WAIT_SECONDS}), else 202 as usual; "
        "Preference-Applied says how long it waited. Other preferences are ignored.",
    ),
]


def preferred(prefer: str | None) -> int | None:
    """The seconds `Prefer: wait=N` asks for, or None (absent, malformed or over 60: a
    preference the server ignores, as RFC 7240 allows)."""
    for preference in (prefer or "").split(","):
        if (match := _WAIT.match(preference)) and int(match[1]) <= MAX_PREFERRED_SECONDS:
            return int(match[1])
    return None


def applied(seconds: int, lambda_context: Any) -> int:
    """The wait this invocation can keep: at most MAX_WAIT_SECONDS, and within its time."""
    left = lambda_context.get_remaining_time_in_millis() / 1000 - SPARE_SECONDS
    return max(0, min(seconds, MAX_WAIT_SECONDS, int(left)))
