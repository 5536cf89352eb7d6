"""Everything a use case needs, gathered once per Lambda container (see runtime.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from qwen_edit.config import Settings
from qwen_edit.domain.catalog import Provider
from qwen_edit.ports import (
    EventPublisher,
    Executions,
    ImageProvider,
    JobStore,
    LimitStore,
    ObjectStore,
    WebhookOutbox,
    WebhookSender,
)


@dataclass
class Context:
    settings: Settings
    jobs: JobStore
    limits: LimitStore
    objects: ObjectStore
    events: EventPublisher
    webhook_outbox: WebhookOutbox
    provider: Callable[[Provider], ImageProvider]
    resolve: Callable[[str, int], list[str]]  # DNS, for webhook targets
    webhook_sender: WebhookSender | None = None  # only the webhook function
    webhook_secret: Callable[[], str] | None = None  # only the webhook function
    executions: Executions | None = None  # only the functions that start or stop workflows
