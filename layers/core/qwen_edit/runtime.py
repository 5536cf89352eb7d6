"""The composition root: a function's Context from its environment, once per container.

Settings are validated at once (a missing variable fails the first invocation, naming it);
the adapters behind the ports are built on first use, so a function creates only the clients
it calls. The local stack and the tests may replace a port for every function
(`override_ports`), for example DNS that never leaves the machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import cache
from typing import Any, cast

from qwen_edit.context import Context
from qwen_edit.domain.catalog import Provider
from qwen_edit.ports import ImageProvider
from qwen_edit.settings import (
    Announcing,
    Buckets,
    Delivering,
    Env,
    Jobs,
    Limits,
    ProviderAccess,
    Queue,
    Resuming,
    Starting,
    Tenants,
    Waking,
    WebhookQueue,
    model_for,
)

_overrides: dict[str, Callable[[], Any]] = {}


@cache
def context(function: str | None = None) -> Context:
    """The Context of functions/<function>/ (None: every part, for the local stack and tests)."""
    settings = model_for(function).from_env(os.environ)
    return Context(settings, {**_ports(settings), **_overrides})


def override_ports(**factories: Callable[[], Any]) -> None:
    """Replace ports in every context built from now on (local stack and tests only)."""
    _overrides.update(factories)
    context.cache_clear()


def clear_overrides() -> None:
    _overrides.clear()
    context.cache_clear()


def forget() -> None:
    """Drop every built context, with its AWS clients, provider connections and cached secrets."""
    context.cache_clear()
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated


def snapstart(services: tuple[str, ...] = ()) -> None:
    """Lambda SnapStart (template parameter SnapStart): call at import. Before the snapshot, the
    adapters' modules are imported and botocore's data for `services` (models, endpoint rules)
    loaded, so a restore skips that; nothing that holds a secret, credentials or a connection is
    kept: no context, client or secret is built during init, and any that were are dropped.
    After a restore, they are dropped again and `random` is reseeded (every restored copy would
    otherwise draw the same jitter). Outside Lambda, or without SnapStart, nothing happens: the
    hooks' module exists only in Lambda's Python runtime."""
    try:
        from snapshot_restore_py import (  # type: ignore[import-not-found]  # Lambda's runtime only
            register_after_restore,
            register_before_snapshot,
        )
    except ImportError:
        return
    register_before_snapshot(lambda: _before_snapshot(services))
    register_after_restore(_after_restore)


def _before_snapshot(services: tuple[str, ...] = ()) -> None:
    for adapters in (_dynamodb, _queue, _aws, _traces):
        adapters()
    import boto3

    for service in services:
        # Placeholder keys: the client resolves no credentials and opens no connection; the
        # default session keeps the service's model and endpoint rules, and the client is dropped.
        boto3.client(service, aws_access_key_id="snapshot", aws_secret_access_key="snapshot")
    forget()


def _after_restore() -> None:
    import random

    forget()
    random.seed()


def _ports(settings: Env) -> dict[str, Callable[[], Any]]:
    # Adapters are imported here, on first use: a function that never calls out never loads
    # them (httpx, the webhook signer, boto3 clients it does not need). Tracing too is decided
    # on first use, inside an invocation, where X-Ray's trace header is; the job store, the
    # queue, the object store and the providers are wrapped in its spans (when it is on).
    tracing = cache(_tracing)
    # One boto3 client per AWS service, shared by the ports that use it (boto3 clients are
    # thread-safe): the jobs, limits and queue tables are one DynamoDB client, not four. Kept
    # per Context, so a new context (tests, the local stack, a SnapStart restore) gets new ones.
    aws = cache(_aws_client)

    def spanned(name: str, build: Callable[..., Any], *args: Any) -> Any:
        on = tracing()  # before the client is built: the X-Ray SDK patches httpx.Client
        return _traces().traced(on, name, build(*args))

    ports: dict[str, Callable[[], Any]] = {}
    if isinstance(settings, Jobs):
        ports["jobs"] = lambda: spanned(
            "jobs", _dynamodb().DynamoJobStore, settings.jobs_table, aws("dynamodb")
        )
    if isinstance(settings, Limits):
        ports["limits"] = lambda: _dynamodb().DynamoLimitStore(
            settings.limits_table, aws("dynamodb")
        )
        ports["dispatch_lease"] = lambda: _queue().DynamoDispatchLease(
            settings.limits_table, aws("dynamodb")
        )
    if isinstance(settings, Tenants):
        ports["tenants"] = lambda: _tenants().DynamoTenantStore(
            settings.tenants_table, aws("dynamodb")
        )
        ports["budgets"] = lambda: _tenants().DynamoBudgetLedger(
            settings.budgets_table,
            settings.jobs_table if isinstance(settings, Jobs) else "",
            aws("dynamodb"),
        )
    if isinstance(settings, Queue):
        ports["queue"] = lambda: spanned(
            "queue", _queue().DynamoJobQueue, settings.queue_table, aws("dynamodb")
        )
    if isinstance(settings, Waking):
        ports["wake_dispatcher"] = lambda: _aws().LambdaDispatcherWake(
            settings.dispatch_function, aws("lambda")
        )
    if isinstance(settings, Resuming):
        ports["callbacks"] = lambda: _aws().StepFunctionsCallbacks(aws("stepfunctions"))
    if isinstance(settings, Buckets | ProviderAccess):
        ports["objects"] = lambda: spanned("objects", _aws().S3ObjectStore, aws("s3"))
    if isinstance(settings, Announcing):
        ports["events"] = lambda: _aws().EventBridgePublisher(
            settings.event_bus_name, aws("events")
        )
    if isinstance(settings, WebhookQueue):
        ports["webhook_outbox"] = lambda: _aws().SqsWebhookOutbox(
            settings.webhook_queue_url,
            settings.webhook_dead_letter_queue_url if isinstance(settings, Delivering) else None,
            aws("sqs"),
        )
    if isinstance(settings, Starting):
        ports["executions"] = lambda: _aws().StepFunctionsExecutions(
            settings.state_machine_arn, aws("stepfunctions")
        )
    if isinstance(settings, ProviderAccess):
        ring = cache(lambda: _key_ring(settings, aws))
        ports["provider"] = lambda: _provider_clients(settings, ring(), spanned)
        ports["provider_keys"] = lambda: ring().pool
    if isinstance(settings, Limits):
        ports["key_health"] = lambda: _provider_keys().DynamoKeyHealth(
            settings.limits_table, aws("dynamodb")
        )
    if isinstance(settings, Tenants):
        ports["tenant_keys"] = lambda: _provider_keys().tenant_keys(
            settings.tenants_table, aws("dynamodb")
        )
    if isinstance(settings, Delivering):
        ports["webhook_sender"] = lambda: _webhook_http().HttpWebhookSender()
        ports["webhook_secret"] = lambda: _webhook_secret(settings, aws)
    ports["resolve"] = lambda: _webhook_http().resolve_host
    ports["metrics"] = _emf_metrics
    ports["pause"] = lambda: time.sleep
    ports["tracing"] = tracing
    return ports


def _emf_metrics() -> Any:
    from qwen_edit.adapters.metrics import EmfMetrics

    return EmfMetrics()


def _tracing() -> Any:
    return _traces().tracing_for(os.environ)


def _key_ring(settings: ProviderAccess, aws: Callable[[str], Any]) -> Any:
    from qwen_edit.adapters.secrets import KeyRing, secrets_reader

    return KeyRing(
        settings.api_key_secret_arn,
        settings.provider_keys_secret_arn,
        settings.region,
        secrets_reader(aws("secretsmanager")),
    )


def _provider_clients(
    settings: ProviderAccess, ring: Any, spanned: Callable[..., Any]
) -> Callable[[Provider, str], ImageProvider]:
    from qwen_edit.adapters.providers import provider_client
    from qwen_edit.domain.errors import JobFailed
    from qwen_edit.domain.provider import Region
    from qwen_edit.domain.provider_keys import NO_KEY_CODE

    @cache
    def client(kind: Provider, region: Region | None, api_key: str) -> ImageProvider:
        built = provider_client(kind, settings, api_key, region=region)
        return cast(ImageProvider, spanned("provider", lambda: built))

    def provider(kind: Provider, key_id: str) -> ImageProvider:
        # Keys are re-read every few minutes (Powertools cache), so a rotation takes effect;
        # the client, and its connections, are kept per key.
        key, material = ring.material(key_id)
        if kind not in key.providers:
            raise JobFailed(f"the provider key {key_id!r} does not serve {kind}", code=NO_KEY_CODE)
        return client(kind, key.region, material.get_secret_value())

    return provider


def _webhook_secret(settings: Delivering, aws: Callable[[str], Any]) -> Callable[[], str]:
    from qwen_edit.adapters.secrets import secrets_reader, webhook_signing_secret

    secrets = secrets_reader(aws("secretsmanager"))
    return lambda: webhook_signing_secret(settings.webhook_secret_arn, secrets)


def _aws_client(service: str) -> Any:
    import boto3

    if service == "s3":
        from botocore.config import Config

        # SigV4 presigned URLs work in every region and in the local stack.
        return boto3.client("s3", config=Config(signature_version="s3v4"))
    return boto3.client(service)


def _dynamodb() -> Any:
    from qwen_edit.adapters import dynamodb

    return dynamodb


def _tenants() -> Any:
    from qwen_edit.adapters import tenants

    return tenants


def _provider_keys() -> Any:
    from qwen_edit.adapters import provider_keys

    return provider_keys


def _queue() -> Any:
    from qwen_edit.adapters import queue

    return queue


def _aws() -> Any:
    from qwen_edit.adapters import aws

    return aws


def _webhook_http() -> Any:
    from qwen_edit.adapters import webhook_http

    return webhook_http


def _traces() -> Any:
    from qwen_edit.adapters import tracing

    return tracing
