"""Schemathesis hooks for the contract test: the rules no schema can state.

The OpenAPI document states every rule a schema can (contract.py), and names the rest in the
request schemas' description (contract.UNSTATED): they need the image bytes, storage, DNS or a
product of two numbers. A generated request that is schema-valid and still breaks one of them is
rightly answered 422, so the *positive* cases are kept clear of exactly these rules, and only
these; negative cases go out as generated.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import schemathesis
from pydantic import TypeAdapter, ValidationError

from qwen_edit.domain import usage
from qwen_edit.domain.catalog import PIXELS_MAX, PIXELS_MIN, SizeRule, get_model, parse_size
from qwen_edit.domain.errors import InvalidRequest
from qwen_edit.domain.requests import MAX_CHAIN_IMAGES, is_blank
from qwen_edit.settings import Requests
from qwen_edit_cli.local.samples import data_url

# A real image: inline bytes, an upload of this key and a public URL are all beyond a schema.
SAMPLE_IMAGE = data_url("png", (64, 64))
# A webhook receiver must resolve to public addresses; offline, the local stack's loopback is the
# only receiver it takes (nothing listens on the discard port: deliveries fail, jobs do not).
LOOPBACK_RECEIVER = "http://127.0.0.1:9/schemathesis"
_WHEN: TypeAdapter[Any] = TypeAdapter(usage.When | None)
_DEFAULT_MODEL = {
    "/edits": Requests.model_fields["default_model"].default,
    "/generations": Requests.model_fields["default_generation_model"].default,
}


def _positive(case: Any) -> bool:
    return case.meta is not None and case.meta.generation.mode.is_positive


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    # Keep the run short, whatever the phase (the stateful one too): at most 2 s a wait.
    if isinstance(case.query, dict) and isinstance(case.query.get("wait"), int):
        case.query["wait"] = min(case.query["wait"], 2)
    if not _positive(case):
        return case
    if isinstance(case.query, dict):
        case.query.pop("cursor", None)  # a cursor must be one this API gave out
    body = case.body
    if isinstance(body, dict):
        if isinstance(body.get("images"), list):
            body["images"] = [SAMPLE_IMAGE] * len(body["images"])
        if isinstance(body.get("webhook_url"), str):
            body["webhook_url"] = LOOPBACK_RECEIVER
        if isinstance(body.get("deadline"), str):  # one that has passed is refused
            body["deadline"] = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    return case


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    if _positive(case) and case.path == "/usage" and isinstance(case.query, dict):
        return _usable_range(case.query.get("from"), case.query.get("to"))
    body = case.body
    if not _positive(case) or not isinstance(body, dict) or case.path not in _DEFAULT_MODEL:
        return True
    steps = [s for s in body.get("then") or () if isinstance(s, dict)]
    calls = [(body, body.get("model") or _DEFAULT_MODEL[case.path])]
    calls += [(step, step.get("model") or _DEFAULT_MODEL["/edits"]) for step in steps]
    return (
        all(
            # only invisible characters: no pattern without \p{...} classes says so
            not (isinstance(call.get("prompt"), str) and is_blank(call["prompt"]))
            and _within_pixel_bounds(model, call.get("size"))
            for call, model in calls
        )
        and _chain_images(body, steps) <= MAX_CHAIN_IMAGES
    )


def _chain_images(body: dict[str, Any], steps: list[dict[str, Any]]) -> int:
    """The images a chain makes at worst: a product of its steps' n, stated in words."""
    images = total = _n(body)
    for step in steps:
        images = (images if step.get("fan_out") is True else 1) * _n(step)
        total += images
    return total


def _n(call: dict[str, Any]) -> int:
    return call["n"] if isinstance(call.get("n"), int) else 1


def _usable_range(start: Any, end: Any) -> bool:
    """from before to, at most 93 days apart: a rule between two parameters, stated in words."""
    try:
        usage.window(_WHEN.validate_python(start), _WHEN.validate_python(end), datetime.now(UTC))
    except (ValidationError, InvalidRequest):
        return False
    return True


def _within_pixel_bounds(model: str, size: Any) -> bool:
    """A size of a model whose bound is on width*height, a product no pattern can state."""
    dims = parse_size(size) if isinstance(size, str) else None
    if dims is None or get_model(model).size_rule is SizeRule.EACH_SIDE:
        return True
    return PIXELS_MIN <= dims[0] * dims[1] <= PIXELS_MAX
