"""The composition root: builds a Context from the Lambda environment, once per container."""

from __future__ import annotations

import os
from functools import cache

from qwen_edit.adapters.aws import (
    EventBridgePublisher,
    S3ObjectStore,
    SqsWebhookOutbox,
    StepFunctionsExecutions,
)
from qwen_edit.adapters.dynamodb import DynamoJobStore, DynamoLimitStore
from qwen_edit.adapters.providers import provider_client
from qwen_edit.adapters.secrets import provider_api_key, webhook_signing_secret
from qwen_edit.adapters.webhook_http import HttpWebhookSender, resolve_host
from qwen_edit.config import Settings
from qwen_edit.context import Context
from qwen_edit.domain.catalog import Provider
from qwen_edit.ports import ImageProvider


@cache
def context() -> Context:
    settings = Settings.from_env(dict(os.environ))

    @cache
    def client(kind: Provider, api_key: str) -> ImageProvider:
        return provider_client(kind, settings, api_key)

    def provider(kind: Provider) -> ImageProvider:
        # The key is re-read every few minutes (Powertools cache), so a rotation takes effect;
        # the client, and its connections, are kept per key.
        return client(kind, provider_api_key(settings.api_key_secret_arn))

    executions = (
        StepFunctionsExecutions(settings.state_machine_arn) if settings.state_machine_arn else None
    )
    return Context(
        settings=settings,
        jobs=DynamoJobStore(settings.jobs_table),
        limits=DynamoLimitStore(
            settings.limits_table, margin_seconds=settings.admission_margin_seconds
        ),
        objects=S3ObjectStore(),
        events=EventBridgePublisher(settings.event_bus_name),
        webhook_outbox=SqsWebhookOutbox(
            settings.webhook_queue_url, settings.webhook_dead_letter_queue_url
        ),
        webhook_sender=HttpWebhookSender(),
        webhook_secret=lambda: webhook_signing_secret(settings.webhook_secret_arn),
        provider=provider,
        resolve=resolve_host,
        executions=executions,
    )
