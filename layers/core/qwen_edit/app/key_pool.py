"""What the dispatcher and Poll share about provider keys: taking a dead key out of the pool,
and the key a job's task belongs to."""

from __future__ import annotations

import time

from aws_lambda_powertools import Logger

from qwen_edit.context import Context
from qwen_edit.domain.jobs import Job
from qwen_edit.domain.provider_keys import DEFAULT_KEY_ID

logger = Logger(child=True)


def key_died(ctx: Context, key_id: str, code: str) -> None:
    """The key answered 401/403: out of the pool for every function, until an operator puts it
    back. One ProviderKeyDead data point (its alarm) per key taken out, not per refusal."""
    if ctx.key_health.mark_dead(key_id, code, time.time()):
        ctx.metrics.count("ProviderKeyDead")
        logger.warning("a provider key was taken out of the pool", extra={"key_id": key_id})


def key_of_task(job: Job) -> str:
    """A task belongs to the key (the account) that created it: it is read with that one."""
    info = job.provider
    return info.key_id if info is not None and info.key_id else DEFAULT_KEY_ID
