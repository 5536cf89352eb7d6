"""What each Lambda function needs from its environment (template.yaml sets it), one small
pydantic model per function, composed of the mixins below.

Every field a function needs is required, so a missing or malformed variable fails the first
invocation with a message naming the variable, never as a None deep inside a use case. A use
case asks for the part it reads (`ctx.need(Buckets).output_bucket`), and gets it typed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Annotated, Literal, Self

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from qwen_edit.domain import admission, keys
from qwen_edit.domain.jobs import UPLOAD_TENANT
from qwen_edit.domain.pricing import Prices
from qwen_edit.domain.provider import Region


def _comma_list(value: object) -> object:
    """Template parameters carry lists as comma-separated strings."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CommaList = Annotated[tuple[str, ...], BeforeValidator(_comma_list)]


def _json(value: object) -> object:
    """Template parameters carry objects as JSON text."""
    return json.loads(value) if isinstance(value, str) else value


class ConfigurationError(RuntimeError):
    """The function's environment lacks a variable, or holds one it cannot read."""


class Env(BaseModel):
    # Built on first use: a function validates its own model, never the other ten.
    model_config = ConfigDict(frozen=True, populate_by_name=True, defer_build=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        # Empty template parameters arrive as empty strings: treat them as unset.
        try:
            return cls.model_validate({k: v for k, v in environ.items() if v != ""})
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
            )
            raise ConfigurationError(
                f"{cls.__name__}: the environment is incomplete or malformed ({problems})"
            ) from None


# ---- the parts ----------------------------------------------------------------------------------


class Jobs(Env):
    jobs_table: str = Field(alias="JOBS_TABLE", min_length=1)
    job_deadline_seconds: int = Field(3600, alias="JOB_DEADLINE_SECONDS", ge=60)
    # A tenant with this many jobs waiting for the provider gets QueueFull (429).
    max_queued_jobs_per_tenant: int = Field(
        1000, alias="MAX_QUEUED_JOBS_PER_TENANT", ge=1, le=100_000
    )


class Buckets(Env):
    input_bucket: str = Field(alias="INPUT_BUCKET", min_length=1)
    output_bucket: str = Field(alias="OUTPUT_BUCKET", min_length=1)


class Loopback(Env):
    # Only the local stack sets this: webhook receivers and image URLs on loopback, for laptops.
    allow_loopback_urls: bool = Field(False, alias="ALLOW_LOOPBACK_URLS")


class Requests(Buckets, Loopback):
    """What validating a request needs."""

    default_model: str = Field("qwen-image-edit-plus", alias="DEFAULT_MODEL")
    default_generation_model: str = Field("qwen-image-plus", alias="DEFAULT_GENERATION_MODEL")
    # Input-bucket prefixes every tenant may name in `images` besides its own uploads.
    shared_input_prefixes: CommaList = Field((), alias="SHARED_INPUT_PREFIXES")

    @field_validator("shared_input_prefixes")
    @classmethod
    def _folders_of_no_one(cls, prefixes: tuple[str, ...]) -> tuple[str, ...]:
        """Whole folders (`library/`, never `lib` that would also share `library-private/`),
        and never one that holds tenants' own objects or what triggers jobs."""
        private = (keys.UPLOADS, keys.INPUTS, keys.INBOX)
        for prefix in prefixes:
            if (
                not prefix.endswith("/")
                or prefix.startswith(private)
                or any(p.startswith(prefix) for p in private)
            ):
                raise ValueError(
                    f"{prefix!r} must be a folder ending in '/', outside {', '.join(private)}"
                )
            keys.segments(prefix.rstrip("/"))  # UnsafeKey (a ValueError) for ./.. or empty
        return prefixes


class Limits(Env):
    limits_table: str = Field(alias="LIMITS_TABLE", min_length=1)
    # Added to each family's rate window: the spread of the time calls take to arrive
    # (domain/admission.py measures the default).
    admission_margin_seconds: float = Field(
        admission.DEFAULT_MARGIN_SECONDS, alias="ADMISSION_MARGIN_SECONDS", ge=0
    )
    # A job gives up after this many provider calls that failed with "try later" (429, 5xx,
    # timeouts, dropped connections), failing with the last error.
    max_provider_attempts: int = Field(10, alias="MAX_PROVIDER_ATTEMPTS", ge=1, le=100)


class Queue(Env):
    queue_table: str = Field(alias="QUEUE_TABLE", min_length=1)


class Waking(Env):
    """What starts the dispatcher (the function is invoked asynchronously); the dispatcher
    wakes its successor, itself, by the name Lambda gives it."""

    dispatch_function: str = Field(
        validation_alias=AliasChoices("DISPATCH_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_NAME"),
        min_length=1,
    )


class Resuming(Env):
    """Answers the workflows that wait on a task token (needs no setting: the token says)."""


class ProviderAccess(Env):
    region: Region = Field(Region.SINGAPORE, alias="DASHSCOPE_REGION")
    base_url: str | None = Field(None, alias="DASHSCOPE_BASE_URL")  # a proxy, or the emulator
    api_key_secret_arn: str = Field(alias="DASHSCOPE_API_KEY_SECRET_ARN", min_length=1)
    task_api_base_url: str | None = Field(None, alias="TASK_API_BASE_URL")  # optional provider
    # More keys (ProviderKeysSecretArn): a JSON list of {id, api_key, provider, region}; unset,
    # the pool is the default key alone (README "Provider keys").
    provider_keys_secret_arn: str | None = Field(None, alias="PROVIDER_KEYS_SECRET_ARN")


class WebhookQueue(Env):
    """Queues webhook deliveries: final statuses, and the queued and running events."""

    webhook_queue_url: str = Field(alias="WEBHOOK_QUEUE_URL", min_length=1)


class Announcing(WebhookQueue):
    """Final statuses go out as EventBridge events and webhook deliveries."""

    event_bus_name: str = Field("default", alias="EVENT_BUS_NAME")


class Starting(Env):
    state_machine_arn: str = Field(alias="STATE_MACHINE_ARN", min_length=1)


class Delivering(Loopback, WebhookQueue):
    webhook_dead_letter_queue_url: str = Field(alias="WEBHOOK_DEAD_LETTER_QUEUE_URL", min_length=1)
    webhook_secret_arn: str = Field(alias="WEBHOOK_SECRET_ARN", min_length=1)


class ApiOnly(Env):
    idempotency_table: str = Field(alias="IDEMPOTENCY_TABLE", min_length=1)
    # API key ids that act for the operator: they own (list, read, cancel) upload-triggered jobs.
    operator_api_key_ids: CommaList = Field((), alias="OPERATOR_API_KEY_IDS")
    # The web console at GET /console (template parameter Console); disabled, the route is a 404.
    console: Literal["enabled", "disabled"] = Field("enabled", alias="CONSOLE")


class Pricing(Env):
    # ModelPrices: {"currency": "USD", "per_image": {"<catalog model>": 0.03}}, optionally with
    # "source" (where the prices come from); unset, usage answers null costs.
    model_prices: Annotated[Prices, BeforeValidator(_json)] = Field(
        default_factory=lambda: Prices.model_validate({}), alias="MODEL_PRICES"
    )


class Tenants(Env):
    """The operator's per-tenant settings (caps, lane, queue cap, own key) and the spend
    ledger the caps count in."""

    tenants_table: str = Field(alias="TENANTS_TABLE", min_length=1)
    budgets_table: str = Field(alias="BUDGETS_TABLE", min_length=1)


class EventIntake(Env):
    """Which event sources may submit jobs, and the tenant each submits for (README
    "Pipelines"). The template passes the EventSources parameter (what the rule's pattern
    lets through) and the EventSourceTenants map; they must name the same sources, so that
    the rule and the code cannot disagree on who may submit."""

    event_sources: CommaList = Field((), alias="EVENT_SOURCES")
    event_source_tenants: Annotated[dict[str, str], BeforeValidator(_json)] = Field(
        default_factory=dict, alias="EVENT_SOURCE_TENANTS"
    )

    @field_validator("event_sources", mode="before")
    @classmethod
    def _no_spaces_around(cls, value: object) -> object:
        """CloudFormation puts `a, b` in the rule's pattern as "a" and " b": a source the
        code would read as "b" could never match."""
        spaced = (
            [s for s in str(value).split(",") if s != s.strip()] if isinstance(value, str) else []
        )
        if spaced:
            raise ValueError(f"EventSources has spaces around {spaced}: write a,b, not a, b")
        return value

    @model_validator(mode="after")
    def _the_same_sources(self) -> Self:
        mapped, allowed = set(self.event_source_tenants), set(self.event_sources)
        if mapped != allowed:
            raise ValueError(
                "EventSources and EventSourceTenants must name the same sources; only in "
                f"EventSources: {sorted(allowed - mapped)}, only in EventSourceTenants: "
                f"{sorted(mapped - allowed)}"
            )
        if any(not source or not tenant for source, tenant in self.event_source_tenants.items()):
            raise ValueError("every event source needs a name and a tenant")
        if UPLOAD_TENANT in self.event_source_tenants.values():
            # That tenant may name most of the input bucket as inputs (service.may_read).
            raise ValueError(f"an event source cannot submit as {UPLOAD_TENANT!r}, the uploads'")
        return self

    def tenant_of(self, source: str) -> str | None:
        return self.event_source_tenants.get(source)


# ---- each function's parts (functions/<name>/) --------------------------------------------------
# A function's model is made from its parts on first use (model_for), not at import: the models
# of all eleven functions, each copying up to 30 inherited fields, cost every cold start about
# 6 ms, and a function validates only its own (issue 24).

FUNCTIONS: dict[str, tuple[type[Env], ...]] = {
    "admit": (Jobs, Limits, Queue, Waking),
    # The dispatcher reads the tenants' own provider keys (provider_key) from Tenants.
    "dispatch": (Jobs, Limits, Queue, Waking, Resuming, ProviderAccess, WebhookQueue, Tenants),
    "poll": (Jobs, Limits, ProviderAccess),
    "store": (Jobs, Buckets, ProviderAccess, Queue),
    "record_failure": (Jobs, Limits, Buckets),
    "notify": (Jobs, Buckets, Announcing, Tenants),
    "reconcile": (Jobs, Limits, Buckets, Announcing, Starting, Queue, Tenants),
    "trigger": (Jobs, Requests, Starting, Queue, Announcing, Pricing, Tenants),
    "intake": (Jobs, Requests, Starting, Queue, Announcing, EventIntake, Pricing, Tenants),
    "webhook": (Jobs, Delivering),
    "api": (
        Jobs,
        Requests,
        Starting,
        Announcing,
        Limits,
        Queue,
        ProviderAccess,
        ApiOnly,
        Pricing,
        Tenants,
    ),
}
# Everything: the local stack and the tests act as every function at once.
LOCAL: tuple[type[Env], ...] = (*FUNCTIONS["api"], Delivering, Waking, Resuming, EventIntake)


@cache
def model_for(function: str | None) -> type[Env]:
    """The settings model of functions/<function>/ (None: the local stack's, every part)."""
    parts = LOCAL if function is None else FUNCTIONS[function]
    name = "".join(word.title() for word in (function or "local").split("_")) + "Env"
    model = create_model(name, __base__=parts, __module__=__name__)
    globals()[name] = model  # findable by its name, as a class of this module (pickle)
    return model
