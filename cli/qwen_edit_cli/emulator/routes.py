"""The emulator's HTTP-level request handling, kept apart from what its endpoints do.

`Routes.handle` is the public entry (it never raises). Here are the route table, the checks every
provider call shares (bearer key, JSON object body), the error replies in DashScope's and the
Task API's shapes, the call log, result-file downloads and the control endpoints
/_emulator/... . FakeDashScope (fake.py) extends Routes with the endpoints themselves.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import traceback
import uuid
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from qwen_edit.adapters.dashscope import ASYNC_PATH, SYNC_PATH
from qwen_edit_cli.emulator.faults import Faults, ProviderFault, invalid
from qwen_edit_cli.emulator.tasks import TaskStore

API_PREFIX = "/api/v1"
TASK_API_PREFIX = "/taskapi/v1"
FILES_PREFIX = "/files/"
CONTROL_PREFIX = "/_emulator/"
_log = logging.getLogger(__name__)

# Object storage answers an expired presigned URL with 403 and an XML body.
_EXPIRED = (
    b'<?xml version="1.0"?><Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired.</Message></Error>"
)


def internal_error(error: Exception, where: str, request_id: str, verbose: bool) -> ProviderFault:
    """An emulator bug as a 500 the client can read: a dropped connection only makes it retry."""
    name = type(error).__name__
    if verbose:
        print(f"emulator error in {where} (request {request_id}):", file=sys.stderr)
        traceback.print_exception(error)
    else:
        _log.error(
            "emulator error in %s (request %s): %s %.120r", where, request_id, name, str(error)
        )
    return ProviderFault(500, "InternalError", f"emulator error: {name}")


@dataclass
class Reply:
    status: int
    body: Any
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()


def error_reply(
    fault: ProviderFault, request_id: str, headers: dict[str, str] | None = None
) -> Reply:
    return Reply(
        fault.status,
        {"code": fault.code, "message": fault.message, "request_id": request_id},
        headers=headers or {},
    )


def _task_api_error_reply(fault: ProviderFault, request_id: str) -> Reply:
    return Reply(
        fault.status,
        {"error": {"code": fault.status, "error_message": fault.message}, "request_id": request_id},
    )


@dataclass(frozen=True)
class Call:
    """One authenticated provider call, as its endpoint gets it."""

    key: str
    payload: dict[str, Any]
    headers: dict[str, str]  # names in lower case
    arrived: float  # when the request began to arrive (monotonic), which rate limits count


Handler = Callable[[Call], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    name: str  # what the call log and counters name the call by
    handler: Handler
    task_api: bool = False  # errors in the Task API's shape


def authenticate(headers: dict[str, str], api_key: str | None) -> str:
    """The bearer key; with `api_key` set, only that one."""
    scheme, _, key = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ProviderFault(401, "InvalidApiKey", "No API-key provided.")
    if api_key is not None and key.strip() != api_key:
        raise ProviderFault(401, "InvalidApiKey", "Invalid API-key provided.")
    return key.strip()


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        raise invalid("The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise invalid("The request body must be a JSON object.")
    return payload


class Routes(ABC):
    """Routing and the HTTP-level handling; the subclass provides the state declared here, the
    creating endpoints and the control actions."""

    api_key: str | None
    faults: Faults
    verbose: bool  # internal errors print a traceback to stderr
    counters: Counter[str]
    calls: deque[dict[str, Any]]
    _lock: threading.Lock
    _store: TaskStore

    def handle(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        arrived: float | None = None,
    ) -> Reply:
        """`arrived`: when the request began to arrive (monotonic), which rate limits count.
        Never raises: an emulator bug is a 500 answer."""
        try:
            when = arrived if arrived is not None else time.monotonic()
            return self._dispatch(method, urlsplit(path).path, headers, body, when)
        except Exception as error:  # noqa: BLE001 - whatever went wrong, the client gets an answer
            request_id = str(uuid.uuid4())
            return error_reply(
                internal_error(error, f"{method} {path}", request_id, self.verbose), request_id
            )

    def _dispatch(
        self, method: str, path: str, headers: dict[str, str], body: bytes, arrived: float
    ) -> Reply:
        if path.startswith(FILES_PREFIX) and method == "GET":
            return self._file(path.removeprefix(FILES_PREFIX).removesuffix(".png"))
        if path.startswith(CONTROL_PREFIX):
            return self._control(method, path.removeprefix(CONTROL_PREFIX), body)
        route = self._route(method, path)
        if route is None:
            return Reply(
                404,
                {"code": "NotFound", "message": f"{method} {path} is not an endpoint of this API"},
            )
        lowered = {name.lower(): value for name, value in headers.items()}
        return self._provider_call(route, lowered, body, arrived)

    # ---- the route table -------------------------------------------------------------------

    def _route(self, method: str, path: str) -> Route | None:
        exact = {
            ("POST", API_PREFIX + SYNC_PATH): Route("multimodal-generation", self._generate),
            ("POST", API_PREFIX + ASYNC_PATH): Route("image-synthesis", self._create_synthesis),
            ("POST", TASK_API_PREFIX + "/tasks"): Route(
                "task-api-create", self._create_task_api, task_api=True
            ),
        }
        return exact.get((method, path)) or self._task_route(method, path)

    def _task_route(self, method: str, path: str) -> Route | None:
        if path.startswith(API_PREFIX + "/tasks/"):
            task_id, _, action = path.removeprefix(API_PREFIX + "/tasks/").partition("/")
            if method == "GET" and not action:
                return Route("task-fetch", lambda call: self._store.fetch(call.key, task_id))
            if method == "POST" and action == "cancel":
                return Route("task-cancel", lambda call: self._store.cancel(call.key, task_id))
        if method == "GET" and path.startswith(TASK_API_PREFIX + "/tasks/"):
            task_id = path.removeprefix(TASK_API_PREFIX + "/tasks/")
            return Route(
                "task-api-fetch",
                lambda call: self._store.fetch_task_api(call.key, task_id),
                task_api=True,
            )
        return None

    # ---- provider calls --------------------------------------------------------------------

    def _provider_call(
        self, route: Route, headers: dict[str, str], body: bytes, arrived: float
    ) -> Reply:
        request_id = str(uuid.uuid4())
        model: str | None = None
        try:
            key = authenticate(headers, self.api_key)
            payload = parse_json(body) if body else {}
            model = payload.get("model")
            if self.faults.latency_s:
                time.sleep(self.faults.latency_s)
            answer = route.handler(Call(key, payload, headers, arrived))
        except Exception as error:  # noqa: BLE001 - a bug answers 500, in the route's error shape
            fault = (
                error
                if isinstance(error, ProviderFault)
                else internal_error(error, route.name, request_id, self.verbose)
            )
            self._record(route.name, model, fault.status, fault.code, request_id)
            if route.task_api:
                return _task_api_error_reply(fault, request_id)
            return error_reply(fault, request_id)
        self._record(route.name, model, 200, None, request_id)
        return Reply(200, {**answer, "request_id": request_id})

    def _record(
        self, route: str, model: str | None, status: int, code: str | None, request_id: str
    ) -> None:
        with self._lock:
            self.counters[f"calls.{route}"] += 1
            self.calls.append(
                {
                    "at": time.time(),
                    "route": route,
                    "model": model,
                    "status": status,
                    "code": code,
                    "request_id": request_id,
                }
            )

    def _file(self, token: str) -> Reply:
        png = self._store.file(token)
        if png is None:
            return Reply(403, _EXPIRED, content_type="application/xml")
        return Reply(200, png, content_type="image/png")

    # ---- control endpoints -----------------------------------------------------------------

    def _control(self, method: str, action: str, body: bytes) -> Reply:
        if action == "faults" and method == "GET":
            return Reply(200, self.faults.model_dump())
        if action == "faults" and method == "PUT":
            return self._put_faults(body)
        if action == "stats" and method == "GET":
            return Reply(200, self.stats())
        if action == "reset" and method == "POST":
            self.reset()
            return Reply(200, {"reset": True})
        if action == "expire-results" and method == "POST":
            self.expire_results()
            return Reply(200, {"expired": True})
        return Reply(404, {"code": "NotFound", "message": f"no control action {action}"})

    def _put_faults(self, body: bytes) -> Reply:
        """Merges the body into the current settings, validated."""
        try:
            update = parse_json(body) if body else {}
            self.faults = Faults.model_validate({**self.faults.model_dump(), **update})
        except (ProviderFault, ValidationError) as error:
            return Reply(400, {"code": "InvalidParameter", "message": str(error)})
        return Reply(200, self.faults.model_dump())

    # ---- what FakeDashScope provides -------------------------------------------------------

    @abstractmethod
    def reset(self) -> None: ...

    @abstractmethod
    def stats(self) -> dict[str, Any]: ...

    @abstractmethod
    def expire_results(self) -> None: ...

    @abstractmethod
    def _generate(self, call: Call) -> dict[str, Any]: ...

    @abstractmethod
    def _create_synthesis(self, call: Call) -> dict[str, Any]: ...

    @abstractmethod
    def _create_task_api(self, call: Call) -> dict[str, Any]: ...
