"""The request schemas' per-model rules, from the catalog, for the OpenAPI document.

pydantic writes each field's own limits; what depends on the chosen model (which models a route
takes, how many images it makes, which sizes it takes) is written here as JSON Schema
conditionals, so that a client generated from the document, or a fuzzer, knows every rule a
schema can state. A request without `model` gets the deployment's default model, and its rules.
What no schema can state is named in `UNSTATED` and answered 422 naming the field.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from qwen_edit.app import webhooks
from qwen_edit.domain.catalog import (
    PIXELS_MAX,
    PIXELS_MIN,
    Capability,
    ModelSpec,
    Provider,
    SizeRule,
    models_for,
)
from qwen_edit.domain.requests import MAX_CHAIN_IMAGES

# A side is at most five ASCII digits (leading zeros count). Any non-zero side:
_ANY_SIDE = "(?:0{0,4}[1-9]|0{0,3}[1-9][0-9]|0{0,2}[1-9][0-9]{2}|0?[1-9][0-9]{3}|[1-9][0-9]{4})"
# 512 to 2048: what "each side within [512, 2048]" is as a pattern.
_SIDE_512_2048 = (
    "(?:0{0,2}(?:51[2-9]|5[2-9][0-9]|[6-9][0-9]{2})|0?(?:1[0-9]{3}|20[0-3][0-9]|204[0-8]))"
)
_SIZE_PATTERNS = {
    SizeRule.EACH_SIDE: f"^{_SIDE_512_2048}\\*{_SIDE_512_2048}$",
    # A product of two numbers has no pattern: the pixel bounds are in UNSTATED.
    SizeRule.TOTAL_PIXELS: f"^{_ANY_SIDE}\\*{_ANY_SIDE}$",
    SizeRule.PROVIDER_TABLE: f"^{_ANY_SIDE}\\*{_ANY_SIDE}$",
}

UNSTATED = (
    f"Rules no schema can state, answered 422 naming the field: `size` of a 2.0-series, "
    f"qwen-image-max or qwen-image(-plus) model is width*height between {PIXELS_MIN} and "
    f"{PIXELS_MAX} pixels; `prompt` needs a visible character (not only spaces, zero-width or "
    "control characters); both hold for each `then` step too, and a chain makes at most "
    f"{MAX_CHAIN_IMAGES} images in all (each step's n, times its runs with fan_out); each of "
    "`images` must be a public http(s) URL, a data URL of a real "
    "JPEG, PNG, BMP, TIFF, WEBP or GIF image of at most 10 MB, or an s3:// reference this API "
    "key may use (its uploads, its jobs' results, shared folders); `webhook_url` must "
    "resolve to public addresses only; `deadline` must not have passed."
)


RETRY_LINK = {
    "RetryJob": {
        "operationId": "retry_job",
        "parameters": {"job_id": "$response.body#/id"},
        "description": "once it failed or was canceled",
    }
}
# deadline and cancel_after say the same: one or the other.
ONE_DEADLINE = {
    "not": {
        "required": ["deadline", "cancel_after"],
        "properties": {"deadline": {"type": "string"}, "cancel_after": {"type": "number"}},
    }
}
# webhook_events go to webhook_url: one without the other is refused.
WEBHOOK_EVENTS_NEED_URL = {
    "if": {"required": ["webhook_events"], "properties": {"webhook_events": {"type": "array"}}},
    "then": {"required": ["webhook_url"], "properties": {"webhook_url": {"type": "string"}}},
}


# What a webhook receiver is sent (app/webhooks.py), for OpenAPI 3.1's `webhooks`.
WEBHOOK_EVENT = {
    "type": "object",
    "description": "A signed Standard Webhooks delivery (headers webhook-id, webhook-timestamp, "
    "webhook-signature). webhook-id is msg_<job id> for the final event, msg_<job id>_<sequence> "
    "for queued and running, which are best effort; drop an event whose sequence is not above "
    "the last one taken for the job.",
    "required": ["type", "sequence", "data"],
    "properties": {
        "type": {
            "enum": list(webhooks.EVENT_TYPES.values()),
            "description": "the status announced (the request's webhook_events pick which)",
        },
        "sequence": {
            "type": "integer",
            "enum": sorted(set(webhooks.SEQUENCE.values())),
            "description": "1 queued, 2 running, 3 the final event: it rises along a job's stream",
        },
        "data": {
            "allOf": [{"$ref": "#/components/schemas/JobView"}],
            "description": "the job as it was then, with links.job (its API path)",
        },
    },
}

WEBHOOKS = {
    "jobEvent": {
        "post": {
            "summary": "A job event, POSTed to the job's webhook_url",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/WebhookEvent"}}
                },
            },
            "responses": {
                "2XX": {"description": "delivered"},
                "410": {"description": "stops deliveries to this job's webhook for good"},
            },
            "security": [],
        }
    }
}


# `model` absent or null: the deployment's default model.
_DEFAULT_MODEL = {
    "anyOf": [
        {"not": {"required": ["model"]}},
        {"required": ["model"], "properties": {"model": {"type": "null"}}},
    ]
}


def request_schema_rules(capability: Capability, default_model: str) -> dict[str, Any]:
    """`model`'s enum, and one `if`/`then` per group of models sharing n and size rules."""
    models = models_for(capability)
    groups: dict[tuple[int, SizeRule], list[str]] = defaultdict(list)
    for spec in models:
        groups[(spec.max_outputs, spec.size_rule)].append(spec.id)
    conditions = []
    for (max_outputs, size_rule), ids in groups.items():
        chosen: dict[str, Any] = {"required": ["model"], "properties": {"model": {"enum": ids}}}
        applies = {"anyOf": [chosen, _DEFAULT_MODEL]} if default_model in ids else chosen
        size = (
            {"type": "null"}
            if size_rule is SizeRule.NOT_SETTABLE
            else {"pattern": _SIZE_PATTERNS[size_rule]}
        )
        then = {"properties": {"n": {"maximum": max_outputs}, "size": size}}
        conditions.append({"if": applies, "then": then})
    return {
        "model": {
            "anyOf": [
                {"enum": [spec.id for spec in models], "x-enum-varnames": _names(models)},
                {"type": "null"},
            ],
            "default": default_model,
            "description": "a model of GET /v1/models that takes this kind of job; "
            "absent or null, the deployment's default",
        },
        "allOf": conditions,
    }


def _names(models: list[ModelSpec]) -> list[str]:
    """Enum member names for generated clients: `qwen-image-edit-plus` and the task API's
    `qwen_image_edit_plus` would both be QWEN_IMAGE_EDIT_PLUS."""
    return [
        re.sub(r"[^A-Z0-9]+", "_", spec.id.upper())
        + ("_TASK_API" if spec.provider is Provider.TASK_API else "")
        for spec in models
    ]


def refine(document: dict[str, Any], default_models: dict[Capability, str]) -> dict[str, Any]:
    """The generated document with each request schema's per-model rules written in, its
    webhook events, and without the 422 Powertools adds to operations that take no input."""
    for operation in (op for path in document["paths"].values() for op in path.values()):
        if operation["responses"].get("422", {}).get("description") == "Validation Error":
            del operation["responses"]["422"]
    for path in ("/edits", "/generations"):  # what a client does next with the job
        for status in ("200", "202"):
            document["paths"][path]["post"]["responses"][status]["links"] = RETRY_LINK
    schemas = document["components"]["schemas"]
    for name, capability in (
        ("EditRequest", Capability.EDIT),
        ("GenerationRequest", Capability.TEXT_TO_IMAGE),
    ):
        rules = request_schema_rules(capability, default_models[capability])
        schema = schemas[name]
        schema["properties"]["model"] = rules["model"]
        schema["allOf"] = [*rules["allOf"], WEBHOOK_EVENTS_NEED_URL, ONE_DEADLINE]
        schema["description"] = f"{schema.get('description', '').strip()}\n\n{UNSTATED}".strip()
    # A `then` step is an edit of one image, by its own model's rules.
    step_rules = request_schema_rules(Capability.EDIT, default_models[Capability.EDIT])
    schemas["ChainStep"]["properties"]["model"] = step_rules["model"]
    schemas["ChainStep"]["allOf"] = step_rules["allOf"]
    schemas["WebhookEvent"] = WEBHOOK_EVENT
    document["webhooks"] = WEBHOOKS
    return document
