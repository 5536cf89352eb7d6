"""The API's request body, read once and safely before the router sees it.

`json.loads` alone can crash a handler: a body nested 100,000 levels deep raises RecursionError,
an integer of 5,000 digits raises past Python's int-string limit, and NaN or Infinity are not
JSON. Here a body that cannot be read is a 400 BadRequest; integers too long for any field
become +inf, which every integer field then refuses with a 422 naming the field; and the router
gets the same JSON back as `application/json`, whatever Content-Type the client sent.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

from qwen_edit.domain.errors import BadRequest

MAX_DEPTH = 32  # the deepest request is 3 levels (metadata); this leaves room for mistakes
MAX_INTEGER_DIGITS = 20  # beyond any field's range (seed ≤ 2^31 - 1)


def _integer(literal: str) -> int | float:
    return int(literal) if len(literal.lstrip("-")) <= MAX_INTEGER_DIGITS else math.inf


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                break
            stack.extend(
                (child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def parse(raw: str | None, *, base64_encoded: bool = False) -> Any:
    """The body as JSON (None when empty); BadRequest saying why it cannot be read."""
    if not raw:
        return None
    try:
        text = base64.b64decode(raw, validate=True).decode() if base64_encoded else raw
        value = json.loads(text, parse_int=_integer, parse_constant=_not_json)
    except (binascii.Error, UnicodeDecodeError):
        raise BadRequest("the body is not UTF-8 text") from None
    except RecursionError:
        raise BadRequest(f"the body is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:
        raise BadRequest(f"the body is not valid JSON: {str(error)[:200]}") from None
    if _depth(value) > MAX_DEPTH:
        raise BadRequest(f"the body is nested deeper than {MAX_DEPTH} levels")
    return value


def normalized_event(event: dict[str, Any]) -> dict[str, Any]:
    """The API Gateway proxy event with its body read by `parse` and re-serialized as JSON."""
    body = parse(event.get("body"), base64_encoded=bool(event.get("isBase64Encoded")))
    if body is None:
        return event
    event = {**event, "body": json.dumps(body), "isBase64Encoded": False}
    for name, value in (
        ("headers", "application/json"),
        ("multiValueHeaders", ["application/json"]),
    ):
        if event.get(
            name
        ):  # an event without multiValueHeaders keeps none (the router reads either)
            others = {k: v for k, v in event[name].items() if k.lower() != "content-type"}
            event[name] = {**others, "Content-Type": value}
    return event
