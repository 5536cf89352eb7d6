"""Everything a use case needs: the function's settings, and its ports, each built on first use.

The composition root (runtime.py) hands over factories, not clients: a function pays only for
the AWS clients and provider connections it really uses. Tests pass in-memory fakes the same
way. Asking for a port or a part of the settings the function was not given is an error that
names it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from pydantic import BaseModel

from qwen_edit.domain.catalog import Provider
from qwen_edit.domain.provider_keys import DEFAULT_KEY_ID, PoolKey
from qwen_edit.ports import (
    BudgetLedger,
    Callbacks,
    DispatchLease,
    EventPublisher,
    Executions,
    ImageProvider,
    JobQueue,
    JobStore,
    KeyHealth,
    LimitStore,
    Metrics,
    ObjectStore,
    TenantKeys,
    TenantStore,
    Tracing,
    WebhookOutbox,
    WebhookSender,
)
from qwen_edit.settings import ConfigurationError

Part = TypeVar("Part", bound=BaseModel)
Resolve = Callable[[str, int], list[str]]


class Context:
    def __init__(self, settings: BaseModel, ports: Mapping[str, Callable[[], Any]]):
        self.settings = settings
        self._factories = dict(ports)
        self._built: dict[str, Any] = {}
        self._lock = threading.Lock()

    def with_settings(self, **fields: Any) -> Context:
        """The same ports with some settings changed, unchecked (tests and local tools)."""
        changed = Context(self.settings.model_copy(update=fields), self._factories)
        changed._built = self._built
        return changed

    def need(self, part: type[Part]) -> Part:
        """The part of the settings a use case reads, typed."""
        if not isinstance(self.settings, part):
            raise ConfigurationError(
                f"{type(self.settings).__name__} has no {part.__name__} settings"
            )
        return self.settings

    def _port(self, name: str) -> Any:
        with self._lock:
            if name not in self._built:
                if name not in self._factories:
                    raise ConfigurationError(
                        f"this function has no {name} (settings: {type(self.settings).__name__})"
                    )
                self._built[name] = self._factories[name]()
            return self._built[name]

    @property
    def jobs(self) -> JobStore:
        return cast(JobStore, self._port("jobs"))

    @property
    def limits(self) -> LimitStore:
        return cast(LimitStore, self._port("limits"))

    @property
    def tenants(self) -> TenantStore:
        return cast(TenantStore, self._port("tenants"))

    @property
    def budgets(self) -> BudgetLedger:
        return cast(BudgetLedger, self._port("budgets"))

    @property
    def queue(self) -> JobQueue:
        return cast(JobQueue, self._port("queue"))

    @property
    def dispatch_lease(self) -> DispatchLease:
        return cast(DispatchLease, self._port("dispatch_lease"))

    @property
    def callbacks(self) -> Callbacks:
        return cast(Callbacks, self._port("callbacks"))

    def wake_dispatcher(self) -> None:
        """Start the dispatcher (it ends at once if one already runs)."""
        cast(Callable[[], None], self._port("wake_dispatcher"))()

    @property
    def objects(self) -> ObjectStore:
        return cast(ObjectStore, self._port("objects"))

    @property
    def events(self) -> EventPublisher:
        return cast(EventPublisher, self._port("events"))

    @property
    def webhook_outbox(self) -> WebhookOutbox:
        return cast(WebhookOutbox, self._port("webhook_outbox"))

    @property
    def executions(self) -> Executions:
        return cast(Executions, self._port("executions"))

    @property
    def metrics(self) -> Metrics:
        return cast(Metrics, self._port("metrics"))

    @property
    def tracing(self) -> Tracing:
        return cast(Tracing, self._port("tracing"))

    @property
    def webhook_sender(self) -> WebhookSender:
        return cast(WebhookSender, self._port("webhook_sender"))

    def provider(self, kind: Provider, key_id: str = DEFAULT_KEY_ID) -> ImageProvider:
        """The client of `kind` on key `key_id` (a task is read with the key that made it)."""
        return cast(Callable[[Provider, str], ImageProvider], self._port("provider"))(kind, key_id)

    def provider_keys(self) -> list[PoolKey]:
        """The pool: every key's id, providers and region (never its material)."""
        return cast(Callable[[], list[PoolKey]], self._port("provider_keys"))()

    @property
    def key_health(self) -> KeyHealth:
        return cast(KeyHealth, self._port("key_health"))

    @property
    def tenant_keys(self) -> TenantKeys:
        return cast(TenantKeys, self._port("tenant_keys"))

    def pause(self, seconds: float) -> None:
        """Sleep while a request waits for its job (the local stack lets other requests of
        the function run meanwhile, as other Lambda instances would)."""
        cast(Callable[[float], None], self._port("pause"))(seconds)

    def resolve(self, host: str, port: int) -> list[str]:
        """DNS, for webhook targets and image URLs."""
        return cast(Resolve, self._port("resolve"))(host, port)

    def webhook_secret(self) -> str:
        return cast(Callable[[], str], self._port("webhook_secret"))()
