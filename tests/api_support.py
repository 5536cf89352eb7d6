"""Calls the real API handler with API Gateway proxy events built from events/api-*.json."""

from __future__ import annotations

import json
from typing import Any

from qwen_edit_cli.local.lambdas import FakeLambdaContext

from conftest import ROOT

_MISSING = object()


class ApiAnswer:
    def __init__(self, raw: dict[str, Any]):
        self.status = raw["statusCode"]
        headers = raw.get("multiValueHeaders") or {}
        self.headers = {k: v[0] for k, v in headers.items()} | (raw.get("headers") or {})
        self.body = json.loads(raw["body"]) if raw.get("body") else None

    def __repr__(self) -> str:
        return f"<{self.status} {self.body}>"


def call(
    stack,
    sample: str,
    *,
    body: Any = _MISSING,
    path: str | None = None,
    tenant: str | None = "tenant-a",
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> ApiAnswer:
    event = json.loads((ROOT / "events" / f"{sample}.json").read_text())
    event["headers"].pop("Idempotency-Key", None)
    if body is not _MISSING:
        event["body"] = body if isinstance(body, str) or body is None else json.dumps(body)
    if path is not None:
        event["path"] = path
    event["headers"].update(headers or {})
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in (query or {}).items()} or None
    event["requestContext"]["identity"]["apiKeyId"] = tenant
    function = stack.physical["ApiFunction"]  # through the dispatcher: counted like any call
    return ApiAnswer(stack.dispatcher.call(function, event, FakeLambdaContext(function, function)))
