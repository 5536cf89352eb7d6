"""What the JSON body of a provider call must hold, checked as the provider checks it.

The model (known, of this provider, and taking this endpoint), the parameters' types and ranges,
the per-model rules of the shared catalog (so the emulator and the service cannot disagree on a
limit), and the input: one user message of images and a text, or an image-synthesis prompt.
Every check raises the provider's ProviderFault.
"""

from __future__ import annotations

from typing import Any

from qwen_edit.domain.catalog import (
    SEED_MAX,
    SEED_MIN,
    Capability,
    Endpoint,
    ModelSpec,
    Provider,
    UnknownModel,
    check_request,
    get_model,
)
from qwen_edit_cli.emulator.faults import ProviderFault, invalid

_PARAMETER_TYPES: tuple[tuple[str, type], ...] = (
    ("n", int),
    ("seed", int),
    ("size", str),
    ("negative_prompt", str),
    ("prompt_extend", bool),
    ("watermark", bool),
)


def model_spec(payload: dict[str, Any], endpoint: Endpoint) -> ModelSpec:
    model_id = payload.get("model")
    if not isinstance(model_id, str) or not model_id:
        raise invalid("Required parameter 'model' is missing.")
    try:
        spec = get_model(model_id)
    except UnknownModel:
        raise _model_not_found() from None
    expected = Provider.TASK_API if endpoint is Endpoint.TASK_API_ASYNC else Provider.DASHSCOPE
    if spec.provider is not expected:
        raise _model_not_found()
    if endpoint not in spec.endpoints:
        only_async = endpoint is Endpoint.IMAGE_SYNTHESIS_ASYNC
        raise invalid(
            f"Model {model_id} does not support this API"
            + (" (only qwen-image-plus and qwen-image take async calls)." if only_async else ".")
        )
    return spec


def _model_not_found() -> ProviderFault:
    return ProviderFault(404, "ModelNotFound", "Model not exist.")


def parameters(payload: dict[str, Any]) -> dict[str, Any]:
    params = payload.get("parameters") or {}
    if not isinstance(params, dict):
        raise invalid("parameters must be an object.")
    for name, kind in _PARAMETER_TYPES:
        value = params.get(name)
        if value is not None and not _is_of(value, kind):
            raise invalid(f"parameters.{name} must be of type {kind.__name__}.")
    seed = params.get("seed")
    if seed is not None and not SEED_MIN <= seed <= SEED_MAX:
        raise invalid(f"parameters.seed must be in [{SEED_MIN}, {SEED_MAX}].")
    return params


def _is_of(value: object, kind: type) -> bool:
    """isinstance, except that a bool is no int (as in JSON)."""
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def check_rules(
    spec: ModelSpec, capability: Capability, image_count: int, params: dict[str, Any]
) -> None:
    violations = check_request(
        spec,
        capability=capability,
        image_count=image_count,
        n=params.get("n"),
        size=params.get("size"),
    )
    if violations:
        raise invalid(violations[0].message)


def messages(payload: dict[str, Any]) -> tuple[list[str], str]:
    """The image references and the text of the one user message."""
    images: list[str] = []
    texts: list[str] = []
    for part in _content(payload):
        if isinstance(part, dict) and set(part) == {"image"} and isinstance(part["image"], str):
            images.append(part["image"])
        elif isinstance(part, dict) and set(part) == {"text"} and isinstance(part["text"], str):
            texts.append(part["text"])
        else:
            raise invalid('Each content item must be {"image": ...} or {"text": ...}.')
    if len(texts) != 1:
        raise invalid("The content must contain exactly one text.")
    return images, texts[0]


def _content(payload: dict[str, Any]) -> list[Any]:
    messages = (payload.get("input") or {}).get("messages")
    if not isinstance(messages, list) or len(messages) != 1:
        raise invalid("input.messages must contain exactly one message.")
    message = messages[0]
    if not isinstance(message, dict) or message.get("role") != "user":
        raise invalid("The message role must be 'user'.")
    content = message.get("content")
    if not isinstance(content, list):
        raise invalid("The message content must be an array.")
    return content


def synthesis_prompt(payload: dict[str, Any]) -> str:
    """The prompt of an image-synthesis body (its negative prompt only type-checked)."""
    task_input = payload.get("input") or {}
    prompt = task_input.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise invalid("Required parameter 'input.prompt' is missing.")
    negative = task_input.get("negative_prompt")
    if negative is not None and not isinstance(negative, str):
        raise invalid("input.negative_prompt must be of type str.")
    return prompt
