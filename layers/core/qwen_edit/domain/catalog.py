"""The model catalog: every model the service can call and every rule that applies to it.

Sources: the Model Studio image-editing guide, the image-edit parameters reference, the
Vtrix-style task API reference and the Model Studio text-to-image reference, plus the rate
limits of SPEC §2. Everything else (request validation, the emulator, admission control,
GET /v1/models) asks this module instead of restating a rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Provider(StrEnum):
    DASHSCOPE = "dashscope"
    TASK_API = "task-api"  # the Vtrix-style task API provider, base URL set by the operator


class Capability(StrEnum):
    EDIT = "edit"
    TEXT_TO_IMAGE = "text-to-image"


class Endpoint(StrEnum):
    """How the service calls a model (the first one a model lists is the one the workflow uses)."""

    MULTIMODAL_SYNC = "multimodal-generation"  # one blocking call, results in the answer
    IMAGE_SYNTHESIS_ASYNC = "image-synthesis"  # create a task, poll /tasks/{id}
    TASK_API_ASYNC = "task-api"  # the Vtrix-style task API: create a task, poll it


class SizeRule(StrEnum):
    TOTAL_PIXELS = "total-pixels"  # 2.0 series: width*height within [512*512, 2048*2048]
    EACH_SIDE = "each-side"  # edit-max/plus: width and height each within [512, 2048]
    NOT_SETTABLE = "not-settable"  # qwen-image-edit: the provider picks
    # qwen-image-max/plus: a fixed table that the text-to-image reference refers to but does
    # not include, so the service checks the `width*height` form and the 2.0 series' pixel
    # bounds, and leaves the table itself to the provider.
    PROVIDER_TABLE = "provider-table"


# Limits shared by every model (the edit parameters, task API and text-to-image references).
MAX_PROMPT_CHARS = 800
MAX_NEGATIVE_PROMPT_CHARS = 500
SEED_MIN, SEED_MAX = 0, 2_147_483_647
MAX_INPUT_IMAGES = 3
MAX_IMAGE_BYTES = 10 * 1024 * 1024
SIDE_MIN, SIDE_MAX = 512, 2048
PIXELS_MIN, PIXELS_MAX = SIDE_MIN * SIDE_MIN, SIDE_MAX * SIDE_MAX
RESULT_URL_TTL_SECONDS = 24 * 3600
INPUT_FORMATS = ("jpg", "jpeg", "png", "bmp", "tiff", "webp", "gif")


@dataclass(frozen=True)
class RateLimit:
    requests: int
    per_seconds: float  # a whole second or minute in the catalog; any span in simulations

    @property
    def label(self) -> str:
        units: dict[float, str] = {1: "second", 60: "minute"}
        unit = units.get(self.per_seconds, f"{self.per_seconds:g} s")
        return f"{self.requests}/{unit}"


PER_MINUTE_2 = RateLimit(2, 60)
PER_SECOND_2 = RateLimit(2, 1)


@dataclass(frozen=True)
class ModelSpec:
    id: str
    family: str  # the alias a snapshot belongs to; rate limits are counted per family
    capabilities: frozenset[Capability]
    endpoints: tuple[Endpoint, ...]
    max_outputs: int
    size_rule: SizeRule
    rate_limit: RateLimit
    max_concurrent_tasks: int | None = None
    provider: Provider = Provider.DASHSCOPE
    # The output size of a text-to-image call without `size`, where the documentation states it.
    text_to_image_default_size: str | None = None

    @property
    def endpoint(self) -> Endpoint:
        return self.endpoints[0]

    @property
    def is_async(self) -> bool:
        return self.endpoint is not Endpoint.MULTIMODAL_SYNC

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def describe(self) -> dict[str, Any]:
        """The public view of a model (GET /v1/models)."""
        return {
            "id": self.id,
            "family": self.family,
            "provider": self.provider.value,
            "capabilities": sorted(c.value for c in self.capabilities),
            "endpoint": self.endpoint.value,
            "async": self.is_async,
            "input_images": {
                "min": 1 if Capability.EDIT in self.capabilities else 0,
                "max": MAX_INPUT_IMAGES if Capability.EDIT in self.capabilities else 0,
            },
            "n": {"min": 1, "max": self.max_outputs},
            "size": {"rule": self.size_rule.value, **_size_bounds(self.size_rule)},
            "prompt_max_chars": MAX_PROMPT_CHARS,
            "negative_prompt_max_chars": MAX_NEGATIVE_PROMPT_CHARS,
            "seed": {"min": SEED_MIN, "max": SEED_MAX},
            "rate_limit": self.rate_limit.label,
            "max_concurrent_tasks": self.max_concurrent_tasks,
        }


def _size_bounds(rule: SizeRule) -> dict[str, int]:
    if rule is SizeRule.TOTAL_PIXELS:
        return {"min_pixels": PIXELS_MIN, "max_pixels": PIXELS_MAX}
    if rule is SizeRule.EACH_SIDE:
        return {"min_side": SIDE_MIN, "max_side": SIDE_MAX}
    return {}


_BOTH = frozenset({Capability.EDIT, Capability.TEXT_TO_IMAGE})
_EDIT = frozenset({Capability.EDIT})
_T2I = frozenset({Capability.TEXT_TO_IMAGE})
_SYNC = (Endpoint.MULTIMODAL_SYNC,)
# qwen-image and qwen-image-plus also answer synchronously; the workflow prefers their task API.
_ASYNC_FIRST = (Endpoint.IMAGE_SYNTHESIS_ASYNC, Endpoint.MULTIMODAL_SYNC)


def _family(alias: str, snapshots: tuple[str, ...], **rules: Any) -> list[ModelSpec]:
    return [ModelSpec(id=model_id, family=alias, **rules) for model_id in (alias, *snapshots)]


MODELS: dict[str, ModelSpec] = {
    spec.id: spec
    for spec in [
        *_family(
            "qwen-image-2.0-pro",
            ("qwen-image-2.0-pro-2026-03-03",),
            capabilities=_BOTH,
            endpoints=_SYNC,
            max_outputs=6,
            size_rule=SizeRule.TOTAL_PIXELS,
            rate_limit=PER_MINUTE_2,
            text_to_image_default_size="2048*2048",
        ),
        *_family(
            "qwen-image-2.0",
            ("qwen-image-2.0-2026-03-03",),
            capabilities=_BOTH,
            endpoints=_SYNC,
            max_outputs=6,
            size_rule=SizeRule.TOTAL_PIXELS,
            rate_limit=PER_SECOND_2,
            text_to_image_default_size="2048*2048",
        ),
        *_family(
            "qwen-image-edit-max",
            ("qwen-image-edit-max-2026-01-16",),
            capabilities=_EDIT,
            endpoints=_SYNC,
            max_outputs=6,
            size_rule=SizeRule.EACH_SIDE,
            rate_limit=PER_MINUTE_2,
        ),
        *_family(
            "qwen-image-edit-plus",
            ("qwen-image-edit-plus-2025-12-15", "qwen-image-edit-plus-2025-10-30"),
            capabilities=_EDIT,
            endpoints=_SYNC,
            max_outputs=6,
            size_rule=SizeRule.EACH_SIDE,
            rate_limit=PER_SECOND_2,
        ),
        *_family(
            "qwen-image-edit",
            (),
            capabilities=_EDIT,
            endpoints=_SYNC,
            max_outputs=1,
            size_rule=SizeRule.NOT_SETTABLE,
            rate_limit=PER_SECOND_2,
        ),
        *_family(
            "qwen-image-max",
            ("qwen-image-max-2025-12-30",),
            capabilities=_T2I,
            endpoints=_SYNC,
            max_outputs=1,
            size_rule=SizeRule.PROVIDER_TABLE,
            rate_limit=PER_MINUTE_2,
        ),
        # Text-to-image reference: only qwen-image-plus and qwen-image take async calls; the
        # snapshot is sync.
        *_family(
            "qwen-image-plus",
            (),
            capabilities=_T2I,
            endpoints=_ASYNC_FIRST,
            max_outputs=6,
            size_rule=SizeRule.PROVIDER_TABLE,
            rate_limit=PER_SECOND_2,
            max_concurrent_tasks=2,
        ),
        *_family(
            "qwen-image-plus-2026-01-09",
            (),
            capabilities=_T2I,
            endpoints=_SYNC,
            max_outputs=6,
            size_rule=SizeRule.PROVIDER_TABLE,
            rate_limit=PER_SECOND_2,
        ),
        *_family(
            "qwen-image",
            (),
            capabilities=_T2I,
            endpoints=_ASYNC_FIRST,
            max_outputs=6,
            size_rule=SizeRule.PROVIDER_TABLE,
            rate_limit=PER_SECOND_2,
            max_concurrent_tasks=2,
        ),
        # The Vtrix-style task API reference names no rate limit; the edit-plus limit is the
        # conservative stand-in.
        *_family(
            "qwen_image_edit_plus",
            (),
            capabilities=_EDIT,
            endpoints=(Endpoint.TASK_API_ASYNC,),
            max_outputs=6,
            size_rule=SizeRule.EACH_SIDE,
            rate_limit=PER_SECOND_2,
            provider=Provider.TASK_API,
        ),
    ]
}


class UnknownModel(KeyError):
    pass


def get_model(model_id: str) -> ModelSpec:
    try:
        return MODELS[model_id]
    except KeyError:
        raise UnknownModel(model_id) from None


def models_for(capability: Capability, provider: Provider | None = None) -> list[ModelSpec]:
    return [
        m
        for m in MODELS.values()
        if m.supports(capability) and (provider is None or m.provider is provider)
    ]


@dataclass(frozen=True)
class RuleViolation:
    """One broken rule: which field, which rule, and a sentence a person understands."""

    field: str
    rule: str
    message: str

    def as_detail(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "message": self.message}


_SIZE = re.compile(r"([0-9]{1,5})\*([0-9]{1,5})")  # ASCII digits: str.isdigit() takes "²" and "١"


def parse_size(size: str) -> tuple[int, int] | None:
    """(width, height) of a `W*H` size of at most five ASCII digits a side, else None."""
    match = _SIZE.fullmatch(size)
    return (int(match[1]), int(match[2])) if match else None


def check_request(
    spec: ModelSpec, *, capability: Capability, image_count: int, n: int | None, size: str | None
) -> list[RuleViolation]:
    """The per-model rules of a request; field-level limits (lengths, seed) live in the models."""
    violations: list[RuleViolation] = []
    if not spec.supports(capability):
        verb = "edits images" if capability is Capability.EDIT else "generates images from text"
        violations.append(
            RuleViolation(
                "model",
                "capability",
                f"{spec.id} is not a model that "
                f"{verb}; choose one of: {', '.join(m.id for m in models_for(capability))}",
            )
        )
        return violations
    if capability is Capability.EDIT and not 1 <= image_count <= MAX_INPUT_IMAGES:
        violations.append(
            RuleViolation(
                "images",
                "count",
                f"{spec.id} takes 1 to {MAX_INPUT_IMAGES} input images, got {image_count}",
            )
        )
    if n is not None and not 1 <= n <= spec.max_outputs:
        limit = "exactly 1" if spec.max_outputs == 1 else f"1 to {spec.max_outputs}"
        violations.append(
            RuleViolation("n", "range", f"{spec.id} makes {limit} images per request, got {n}")
        )
    if size is not None:
        violations.extend(_check_size(spec, size))
    return violations


def _check_size(spec: ModelSpec, size: str) -> list[RuleViolation]:
    if spec.size_rule is SizeRule.NOT_SETTABLE:
        return [
            RuleViolation(
                "size",
                "not-settable",
                f"{spec.id} does not take a size; the output follows the input image",
            )
        ]
    dims = parse_size(size)
    if dims is None or 0 in dims:
        return [
            RuleViolation(
                "size",
                "format",
                f"size must be 'width*height' in pixels, such as '1024*1536', got {size!r}",
            )
        ]
    width, height = dims
    # Without the provider's table, its sizes are still held within the largest envelope any
    # Qwen image model documents (512*512 to 2048*2048 pixels): a size far outside can only
    # fail, and would make the emulator or a proxy allocate gigabytes.
    bounded = spec.size_rule in (SizeRule.TOTAL_PIXELS, SizeRule.PROVIDER_TABLE)
    if bounded and not PIXELS_MIN <= width * height <= PIXELS_MAX:
        return [
            RuleViolation(
                "size",
                "total-pixels",
                f"{spec.id} needs width*height between "
                f"{SIDE_MIN}*{SIDE_MIN} and {SIDE_MAX}*{SIDE_MAX} pixels, "
                f"got {width * height}",
            )
        ]
    if spec.size_rule is SizeRule.EACH_SIDE and not (
        SIDE_MIN <= width <= SIDE_MAX and SIDE_MIN <= height <= SIDE_MAX
    ):
        return [
            RuleViolation(
                "size",
                "each-side",
                f"{spec.id} needs width and height each "
                f"between {SIDE_MIN} and {SIDE_MAX}, got {width}*{height}",
            )
        ]
    return []
