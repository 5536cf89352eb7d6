"""Edit and generation requests: their shape (pydantic) and every rule they must keep.

`parse_request` is the single entry point: it collects every broken rule, each naming its field,
and raises one InvalidRequest, so bad input is refused before it can cost a provider call.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from qwen_edit.domain.catalog import (
    MAX_INPUT_IMAGES,
    MAX_NEGATIVE_PROMPT_CHARS,
    MAX_PROMPT_CHARS,
    SEED_MAX,
    SEED_MIN,
    Capability,
    ModelSpec,
    RuleViolation,
    UnknownModel,
    check_request,
    get_model,
    parse_size,
)
from qwen_edit.domain.errors import InvalidRequest
from qwen_edit.domain.image_headers import ImageRejected
from qwen_edit.domain.images import (
    MAX_DATA_URL_CHARS,
    MIME_TYPES,
    ImageRef,
    parse_image_ref,
)
from qwen_edit.domain.jobs import CORRELATION_ID_PATTERN, MAX_CLIENT_ID_CHARS
from qwen_edit.domain.provider import ProviderRequest
from qwen_edit.domain.urls import MAX_URL_CHARS, parse_web_url, url_pattern


def _whole_number(value: Any) -> Any:
    """JSON's 2.0 is the integer 2 (JSON Schema says so); strict mode alone refuses it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# Last in an Annotated integer, after its Field bounds (the schema keeps them as minimum/maximum).
WholeNumber = BeforeValidator(_whole_number)
MetadataKey = Annotated[str, Field(min_length=1, max_length=64)]
MetadataValue = Annotated[str, Field(max_length=512)]
MAX_CHAIN_STEPS = 4  # `then` steps after the first call
MAX_CHAIN_IMAGES = 16  # images one chain may make in all, at worst (n and fan_out)
MAX_CANCEL_AFTER_SECONDS = 43_200  # the longest JobDeadlineSeconds: later, that ends the job
SIZE_PATTERN = r"^[0-9]{1,5}\*[0-9]{1,5}$"  # ASCII digits only; the catalog checks the bounds
# The shapes the OpenAPI document states (the code checks them, with clearer messages).
WEBHOOK_URL_PATTERN = url_pattern("https")
_MIMES = "|".join(sorted({m.removeprefix("image/") for ms in MIME_TYPES.values() for m in ms}))
_BASE64 = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
IMAGE_SHAPES = [
    {"pattern": url_pattern("https?"), "maxLength": MAX_URL_CHARS},
    {"pattern": f"^data:image/(?:{_MIMES});base64,{_BASE64}$", "maxLength": MAX_DATA_URL_CHARS},
    {"pattern": r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^\x00-\x1f\x7f]+$"},
]
WebhookEvent = Literal["queued", "running", "succeeded", "failed", "canceled"]
# Characters that show nothing: a prompt of only these is blank (besides Unicode's format,
# control and separator categories, these letters and symbols render as empty space).
_BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800")


# RFC 3339 date-time with its offset (fromisoformat alone also takes dates and bare times).
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def start_by(deadline: str) -> datetime:
    """`deadline` as a time; a PydanticCustomError naming the rule if it is not RFC 3339."""
    try:
        if _RFC3339.fullmatch(deadline):
            return datetime.fromisoformat(deadline.upper().replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        pass
    raise PydanticCustomError(
        "date-time",
        "deadline must be an RFC 3339 time with its offset, such as 2026-11-26T18:00:00Z",
    )


def is_blank(text: str) -> bool:
    """True when nothing in `text` would show: spaces, zero-width characters, joiners, BOMs."""
    return all(char in _BLANK_LOOKING or unicodedata.category(char)[0] in "CZ" for char in text)


class ModelCall(BaseModel):
    """What one provider call takes: the model, the prompt and the parameters."""

    # Strict: JSON types as they are (`true` is not 1, "5" is not 5).
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True, strict=True)

    model: str | None = Field(None, min_length=1, max_length=64)
    prompt: str = Field(
        min_length=1, max_length=MAX_PROMPT_CHARS, json_schema_extra={"pattern": r"\S"}
    )
    negative_prompt: str | None = Field(None, max_length=MAX_NEGATIVE_PROMPT_CHARS)
    n: Annotated[int, Field(ge=1), WholeNumber] | None = None
    size: str | None = Field(None, max_length=11, json_schema_extra={"pattern": SIZE_PATTERN})
    seed: Annotated[int, Field(ge=SEED_MIN, le=SEED_MAX), WholeNumber] | None = None
    prompt_extend: bool | None = None
    watermark: bool | None = None

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, prompt: str) -> str:
        if is_blank(prompt):
            raise ValueError("prompt must not be blank (it has no visible character)")
        return prompt

    @field_validator("size")
    @classmethod
    def _width_by_height(cls, size: str | None) -> str | None:
        if size is not None and parse_size(size) is None:
            raise PydanticCustomError(
                "format",
                "size must be 'width*height' in ASCII digits, such as '1024*1536', got {got}",
                {"got": repr(size[:20])},
            )
        return size

    def provider_parameters(self) -> dict[str, Any]:
        """The `parameters` the provider takes, without the ones left to its defaults."""
        fields = ("n", "size", "seed", "prompt_extend", "watermark")
        return {name: getattr(self, name) for name in fields if getattr(self, name) is not None}


class ChainStep(ModelCall):
    """A further edit of a multi-step job: its input is the previous step's output."""

    fan_out: bool | None = Field(
        None,
        description="true: run this step once on each output of the previous step; by "
        "default it edits the previous step's first output only",
    )


class GenerationRequest(ModelCall):
    """A text-to-image request, as a client sends it."""

    then: list[ChainStep] | None = Field(
        None,
        min_length=1,
        max_length=MAX_CHAIN_STEPS,
        description=f"further edit steps, run in order in the same job (at most "
        f"{MAX_CHAIN_STEPS}); the job's outputs are the last step's. A chain makes at most "
        f"{MAX_CHAIN_IMAGES} images in all (each step's n, times its runs with fan_out)",
    )
    webhook_url: str | None = Field(
        None, max_length=MAX_URL_CHARS, json_schema_extra={"pattern": WEBHOOK_URL_PATTERN}
    )
    webhook_events: list[WebhookEvent] | None = Field(
        None,
        min_length=1,
        max_length=5,
        json_schema_extra={"uniqueItems": True},
        description="the job statuses the webhook announces, each once (needs webhook_url); the "
        "default is succeeded, failed and canceled. queued and running are best effort; every "
        "event's `sequence` increases along the job's stream",
    )
    metadata: dict[MetadataKey, MetadataValue] | None = Field(None, max_length=20)
    correlation_id: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_CLIENT_ID_CHARS,
        json_schema_extra={"pattern": CORRELATION_ID_PATTERN},
        description="your own id for the work this job is part of: the job, its events "
        "(EventBridge) and its webhooks carry it, so one rule can follow a pipeline",
    )
    lane: Literal["interactive", "batch"] | None = Field(
        None,
        description="interactive goes before batch (batch keeps a 25% share); the default is "
        "interactive for API requests and batch for uploads",
    )
    deadline: str | None = Field(
        None,
        max_length=40,
        json_schema_extra={"format": "date-time"},
        description="an RFC 3339 time: a job whose provider call has not started by then ends "
        "canceled (DeadlineExceeded), at no provider cost; one already at the provider runs "
        "to its end",
    )
    cancel_after: Annotated[int, Field(ge=1, le=MAX_CANCEL_AFTER_SECONDS), WholeNumber] | None = (
        Field(None, description="the same deadline, in seconds after the job is accepted")
    )

    @field_validator("deadline")
    @classmethod
    def _a_time(cls, deadline: str | None) -> str | None:
        if deadline is not None:
            start_by(deadline)
        return deadline

    @field_validator("cancel_after")
    @classmethod
    def _one_deadline(cls, seconds: int | None, info: ValidationInfo) -> int | None:
        if seconds is not None and info.data.get("deadline") is not None:
            raise PydanticCustomError(
                "one-deadline", "give deadline or cancel_after, not both (they say the same)"
            )
        return seconds

    def start_by(self, accepted_at: datetime) -> datetime | None:
        """When the job's provider call must have started (deadline, or cancel_after)."""
        if self.cancel_after is not None:
            return accepted_at + timedelta(seconds=self.cancel_after)
        return start_by(self.deadline) if self.deadline is not None else None

    @field_validator("webhook_url")
    @classmethod
    def _a_url(cls, url: str | None) -> str | None:
        # Its shape only: where it may point (https, public addresses) needs DNS, and is
        # webhooks.check_target's, at acceptance and again before every delivery.
        if url is not None:
            try:
                parse_web_url(url)
            except ValueError as error:
                raise ValueError(f"webhook_url must be an https:// URL: {error}") from None
        return url

    @field_validator("correlation_id")
    @classmethod
    def _printable(cls, correlation_id: str | None) -> str | None:
        if correlation_id is not None and not re.fullmatch(CORRELATION_ID_PATTERN, correlation_id):
            raise PydanticCustomError(
                "pattern", "correlation_id must be printable ASCII without spaces"
            )
        return correlation_id

    @field_validator("webhook_events")
    @classmethod
    def _each_once(cls, events: list[str] | None) -> list[str] | None:
        if events is not None and len(set(events)) < len(events):
            raise PydanticCustomError(
                "unique", "each event may be named once, got {got}", {"got": events}
            )
        return events


class EditRequest(GenerationRequest):
    """An edit request: a generation request plus 1–3 input images."""

    images: list[Annotated[str, Field(json_schema_extra={"anyOf": IMAGE_SHAPES})]] = Field(
        min_length=1, max_length=MAX_INPUT_IMAGES
    )


@dataclass(frozen=True)
class ValidRequest:
    """A request that keeps every rule, with its model resolved and its images parsed."""

    capability: Capability
    body: GenerationRequest
    spec: ModelSpec
    images: tuple[ImageRef, ...] = ()

    def to_provider(self, readable_url: Callable[[ImageRef], str]) -> ProviderRequest:
        """The provider call; `readable_url` turns each image into a URL the provider can read
        (a data URL, the client's own URL, or a presigned one for s3:// references)."""
        return ProviderRequest(
            model=self.spec.id,
            capability=self.capability,
            prompt=self.body.prompt,
            negative_prompt=self.body.negative_prompt,
            images=tuple(readable_url(ref) for ref in self.images),
            parameters=self.body.provider_parameters(),
        )


def parse_request(
    capability: Capability,
    payload: Mapping[str, Any] | GenerationRequest,
    *,
    default_model: str,
    step_model: str | None = None,
) -> ValidRequest:
    """Validate a client's request (a mapping, or a body the API router already validated
    against its schema); raise InvalidRequest listing every broken rule. `step_model` is the
    model of `then` steps that name none (default_model if not given)."""
    schema = EditRequest if capability is Capability.EDIT else GenerationRequest
    if isinstance(payload, schema):
        body = payload
    else:
        try:
            body = schema.model_validate(payload)
        except ValidationError as error:
            raise InvalidRequest.of([violation_of(e) for e in error.errors()]) from None
    return _check_body(capability, body, default_model, step_model or default_model)


def _spec(model_id: str, field: str) -> ModelSpec | RuleViolation:
    try:
        return get_model(model_id)
    except UnknownModel:
        return RuleViolation(
            field,
            "known-model",
            f"{field}: {model_id!r} is not a model of the catalog (GET /v1/models lists them)",
        )


def _check_chain(
    body: GenerationRequest, step_model: str
) -> tuple[list[RuleViolation], list[ChainStep]]:
    """Each `then` step against its own model's rules (an edit of one image, the previous
    output), and the chain's worst-case image count; the steps with their models resolved."""
    violations: list[RuleViolation] = []
    steps: list[ChainStep] = []
    images = total = body.n or 1  # the provider's default n is 1
    for index, step in enumerate(body.then or ()):
        field = f"then[{index}]"
        spec = _spec(step.model or step_model, f"{field}.model")
        if isinstance(spec, RuleViolation):
            violations.append(spec)
            continue
        violations += [
            RuleViolation(f"{field}.{v.field}", v.rule, f"{field}: {v.message}")
            for v in check_request(
                spec, capability=Capability.EDIT, image_count=1, n=step.n, size=step.size
            )
        ]
        images = (images if step.fan_out else 1) * (step.n or 1)
        total += images
        steps.append(step.model_copy(update={"model": spec.id}))
    if total > MAX_CHAIN_IMAGES:
        violations.append(
            RuleViolation(
                "then",
                "max-images",
                f"then: the chain can make {total} images in all, more than "
                f"{MAX_CHAIN_IMAGES}: lower n, or fan out fewer steps",
            )
        )
    return violations, steps


def _check_body(
    capability: Capability, body: GenerationRequest, default_model: str, step_model: str
) -> ValidRequest:
    """The catalog's rules for the body's model and each chain step's, and every image
    reference parsed."""
    spec = _spec(body.model if body.model is not None else default_model, "model")
    if isinstance(spec, RuleViolation):
        raise InvalidRequest.of([spec])

    raw_images = body.images if isinstance(body, EditRequest) else []
    violations = check_request(
        spec, capability=capability, image_count=len(raw_images), n=body.n, size=body.size
    )
    if body.webhook_events is not None and body.webhook_url is None:
        violations.append(
            RuleViolation(
                "webhook_events",
                "requires-webhook_url",
                "webhook_events: the events go to webhook_url, and there is none",
            )
        )
    images: list[ImageRef] = []
    for index, raw in enumerate(raw_images):
        field = f"images[{index}]"
        try:
            ref = parse_image_ref(raw)
        except ImageRejected as rejected:
            violations.append(RuleViolation(field, rejected.rule, str(rejected)))
            continue
        images.append(ref)
    chain_violations, steps = _check_chain(body, step_model)
    violations += chain_violations
    if violations:
        raise InvalidRequest.of(violations)
    resolved = {"model": spec.id, "then": steps or None}
    return ValidRequest(capability, body.model_copy(update=resolved), spec, tuple(images))


def violation_of(error: Any) -> RuleViolation:
    """A pydantic error as a RuleViolation naming the field (without the API's "body." or
    "query." location prefix)."""
    loc = error["loc"]
    if loc[:1] in (("body",), ("query",), ("path",), ("header",)):
        loc = loc[1:]
    field = (
        "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
        or "body"
    )
    rule = {"extra_forbidden": "unknown-field", "missing": "required"}.get(
        error["type"], error["type"]
    )
    message = error["msg"].removeprefix("Value error, ")
    if rule == "unknown-field":
        message = f"{field} is not a field of this request"
    return RuleViolation(field, rule, f"{field}: {message}")
