"""The DashScope emulator's behaviour, independent of the HTTP server that exposes it.

Paths, bodies, statuses and error codes follow the provider's documentation. Where it is silent the
choices are marked "emulator choice" and listed in docs/emulator.md.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import random
import sys
import threading
import time
import traceback
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from qwen_edit.adapters.dashscope import ASYNC_PATH, SYNC_PATH
from qwen_edit.domain.catalog import (
    MAX_PROMPT_CHARS,
    SEED_MAX,
    SEED_MIN,
    Capability,
    Endpoint,
    ModelSpec,
    Provider,
    RateLimit,
    UnknownModel,
    check_request,
    get_model,
)
from qwen_edit.domain.images import ImageRejected, InlineImage, check_image_bytes, parse_image_ref
from qwen_edit_cli.emulator.faults import Faults
from qwen_edit_cli.emulator.render import (
    STAND_IN_SIZE,
    UndecodableImage,
    image_size,
    output_size,
    render_png,
)

API_PREFIX = "/api/v1"
TASK_API_PREFIX = "/taskapi/v1"
_log = logging.getLogger(__name__)


class ProviderFault(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def invalid(message: str) -> ProviderFault:
    return ProviderFault(400, "InvalidParameter", message)


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


@dataclass(frozen=True)
class InputImage:
    material: bytes  # what outputs derive from: the bytes, or a remote URL standing in for them
    size: tuple[int, int]
    data: bytes | None  # the decoded image when the emulator has it


@dataclass
class StoredFile:
    png: bytes
    expires_at: float


@dataclass
class FakeTask:
    id: str
    key: str
    spec: ModelSpec
    created: float
    pending_s: float
    running_s: float
    urls: list[str]
    usage: dict[str, int]
    prompt: str
    actual_prompt: str
    failure: tuple[str, str] | None = None
    canceled_at: float | None = None

    @property
    def scheduled(self) -> float:
        return self.created + self.pending_s

    @property
    def ends(self) -> float:
        return self.scheduled + self.running_s

    def status(self, now: float) -> str:
        if self.canceled_at is not None:
            return "CANCELED"
        if now < self.scheduled:
            return "PENDING"
        if now < self.ends:
            return "RUNNING"
        return "FAILED" if self.failure else "SUCCEEDED"


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


# Rules of qwen_edit.domain.image_headers for bytes that cannot be decoded: refused by that check
# or by
# Pillow's decode (_decoded_size), an image gets the same answer.
_UNDECODABLE_RULES = frozenset({"corrupt", "truncated", "pixels"})


def _undecodable(index: int, reason: object) -> ProviderFault:
    return invalid(f"The image at images[{index}] cannot be decoded: {str(reason).rstrip('.')}.")


def _refusal(index: int, rejected: ImageRejected, where: str) -> ProviderFault:
    if rejected.rule in ("scheme", "url", "s3-reference"):
        return ProviderFault(400, "InvalidURL", "The provided URL is not valid.")
    if rejected.rule in _UNDECODABLE_RULES:
        return _undecodable(index, rejected)
    return invalid(f"Invalid image{where}: {rejected}.")


def _decoded_size(index: int, data: bytes) -> tuple[int, int]:
    try:
        return image_size(data)
    except UndecodableImage as error:
        raise _undecodable(index, error) from None


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class FakeDashScope:
    def __init__(
        self,
        *,
        api_key: str | None = None,
        faults: Faults | None = None,
        public_url: str = "",
        verbose: bool = False,
    ):
        self.api_key = api_key
        self.faults = faults or Faults()
        self.public_url = public_url
        self.verbose = verbose  # internal errors print a traceback to stderr
        self._lock = threading.Lock()
        self._arrival = threading.local()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._rng = random.Random(self.faults.random_seed)
            self._tasks: dict[str, FakeTask] = {}
            self._files: dict[str, StoredFile] = {}
            self._windows: dict[tuple[str, str], deque[float]] = {}
            self.counters: Counter[str] = Counter()
            self.calls: deque[dict[str, Any]] = deque(maxlen=10_000)

    # ---- routing ---------------------------------------------------------------------------

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
            return self._dispatch(method, path, headers, body, arrived)
        except Exception as error:  # noqa: BLE001 - whatever went wrong, the client gets an answer
            request_id = str(uuid.uuid4())
            return error_reply(
                internal_error(error, f"{method} {path}", request_id, self.verbose), request_id
            )

    def _dispatch(
        self, method: str, path: str, headers: dict[str, str], body: bytes, arrived: float | None
    ) -> Reply:
        self._arrival.at = arrived if arrived is not None else time.monotonic()
        path = urlsplit(path).path
        headers = {k.lower(): v for k, v in headers.items()}
        if path.startswith("/files/") and method == "GET":
            return self._file(path.removeprefix("/files/").removesuffix(".png"))
        if path.startswith("/_emulator/"):
            return self._control(method, path.removeprefix("/_emulator/"), body)
        route = self._route(method, path)
        if route is None:
            return Reply(
                404,
                {"code": "NotFound", "message": f"{method} {path} is not an endpoint of this API"},
            )
        name, handler, task_api = route
        return self._provider_call(name, handler, task_api, headers, body)

    def _route(self, method: str, path: str):
        if method == "POST" and path == API_PREFIX + SYNC_PATH:
            return "multimodal-generation", self._generate, False
        if method == "POST" and path == API_PREFIX + ASYNC_PATH:
            return "image-synthesis", self._create_synthesis, False
        if path.startswith(API_PREFIX + "/tasks/"):
            task_id, _, action = path.removeprefix(API_PREFIX + "/tasks/").partition("/")
            if method == "GET" and not action:
                return "task-fetch", lambda *a: self._fetch(task_id, *a), False
            if method == "POST" and action == "cancel":
                return "task-cancel", lambda *a: self._cancel(task_id, *a), False
        if method == "POST" and path == TASK_API_PREFIX + "/tasks":
            return "task-api-create", self._create_task_api, True
        if method == "GET" and path.startswith(TASK_API_PREFIX + "/tasks/"):
            task_id = path.removeprefix(TASK_API_PREFIX + "/tasks/")
            return "task-api-fetch", lambda *a: self._fetch_task_api(task_id, *a), True
        return None

    def _provider_call(
        self, name: str, handler, task_api: bool, headers: dict[str, str], body: bytes
    ) -> Reply:
        request_id = str(uuid.uuid4())
        model = None
        try:
            key = self._authenticate(headers)
            payload = self._json(body) if body else {}
            model = payload.get("model")
            if self.faults.latency_s:
                time.sleep(self.faults.latency_s)
            reply = handler(key, payload, headers, request_id)
        except Exception as error:  # noqa: BLE001 - a bug answers 500, in the route's error shape
            fault = (
                error
                if isinstance(error, ProviderFault)
                else internal_error(error, name, request_id, self.verbose)
            )
            self._record(name, model, fault.status, fault.code, request_id)
            if not task_api:
                return error_reply(fault, request_id)
            return Reply(
                fault.status,
                {
                    "error": {"code": fault.status, "error_message": fault.message},
                    "request_id": request_id,
                },
            )
        self._record(name, model, 200, None, request_id)
        return Reply(200, {**reply, "request_id": request_id})

    # ---- common checks ---------------------------------------------------------------------

    def _authenticate(self, headers: dict[str, str]) -> str:
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ProviderFault(401, "InvalidApiKey", "No API-key provided.")
        if self.api_key is not None and key.strip() != self.api_key:
            raise ProviderFault(401, "InvalidApiKey", "Invalid API-key provided.")
        return key.strip()

    @staticmethod
    def _json(body: bytes) -> dict[str, Any]:
        try:
            payload = json.loads(body)
        except ValueError:
            raise invalid("The request body is not valid JSON.") from None
        if not isinstance(payload, dict):
            raise invalid("The request body must be a JSON object.")
        return payload

    def _model(self, payload: dict[str, Any], endpoint: Endpoint) -> ModelSpec:
        model_id = payload.get("model")
        if not isinstance(model_id, str) or not model_id:
            raise invalid("Required parameter 'model' is missing.")
        try:
            spec = get_model(model_id)
        except UnknownModel:
            raise ProviderFault(404, "ModelNotFound", "Model not exist.") from None
        expected = Provider.TASK_API if endpoint is Endpoint.TASK_API_ASYNC else Provider.DASHSCOPE
        if spec.provider is not expected:
            raise ProviderFault(404, "ModelNotFound", "Model not exist.")
        if endpoint not in spec.endpoints:
            raise invalid(
                f"Model {model_id} does not support this API"
                + (
                    " (only qwen-image-plus and qwen-image take async calls)."
                    if endpoint is Endpoint.IMAGE_SYNTHESIS_ASYNC
                    else "."
                )
            )
        return spec

    def _admit(self, key: str, spec: ModelSpec) -> None:
        """Per-key, per-family rate limit (sliding window), then injected faults."""
        with self._lock:
            if self.faults.enforce_rate_limits:
                override = self.faults.rate_limits.get(spec.family)
                limit = (
                    RateLimit(override.requests, override.per_seconds)
                    if override
                    else spec.rate_limit
                )
                window = self._windows.setdefault((key, spec.family), deque())
                now = self._arrival.at
                while window and now - window[0] >= limit.per_seconds:
                    window.popleft()
                if len(window) >= limit.requests:
                    self.counters["rate_limited"] += 1
                    raise ProviderFault(
                        429,
                        "Throttling.RateQuota",
                        "Requests rate limit exceeded, please try again later.",
                    )
                window.append(now)
            roll = self._rng.random()
        faults = self.faults
        if roll < faults.throttle_rate:
            self.counters["injected_429"] += 1
            raise ProviderFault(429, "Throttling", "Requests throttling triggered.")
        roll -= faults.throttle_rate
        if roll < faults.server_error_rate:
            self.counters["injected_5xx"] += 1
            if self._rng.random() < 0.5:
                raise ProviderFault(
                    500,
                    "InternalError",
                    "An internal error has occured, "
                    "please try again later or contact service support.",
                )
            raise ProviderFault(
                503, "ModelUnavailable", "Model is unavailable, please try again later."
            )
        roll -= faults.server_error_rate
        if roll < faults.final_error_rate:
            self.counters["injected_final"] += 1
            raise ProviderFault(
                400, "DataInspectionFailed", "Input data may contain inappropriate content."
            )

    def _parameters(self, payload: dict[str, Any]) -> dict[str, Any]:
        params = payload.get("parameters") or {}
        if not isinstance(params, dict):
            raise invalid("parameters must be an object.")
        for name, kind in (
            ("n", int),
            ("seed", int),
            ("size", str),
            ("negative_prompt", str),
            ("prompt_extend", bool),
            ("watermark", bool),
        ):
            value = params.get(name)
            if value is not None and (
                not isinstance(value, kind) or (kind is int and isinstance(value, bool))
            ):
                raise invalid(f"parameters.{name} must be of type {kind.__name__}.")
        seed = params.get("seed")
        if seed is not None and not SEED_MIN <= seed <= SEED_MAX:
            raise invalid(f"parameters.seed must be in [{SEED_MIN}, {SEED_MAX}].")
        return params

    def _check_rules(
        self, spec: ModelSpec, capability: Capability, image_count: int, params: dict[str, Any]
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

    def _messages(self, payload: dict[str, Any]) -> tuple[list[str], str]:
        messages = (payload.get("input") or {}).get("messages")
        if not isinstance(messages, list) or len(messages) != 1:
            raise invalid("input.messages must contain exactly one message.")
        message = messages[0]
        if not isinstance(message, dict) or message.get("role") != "user":
            raise invalid("The message role must be 'user'.")
        content = message.get("content")
        if not isinstance(content, list):
            raise invalid("The message content must be an array.")
        images, texts = [], []
        for part in content:
            if isinstance(part, dict) and set(part) == {"image"} and isinstance(part["image"], str):
                images.append(part["image"])
            elif isinstance(part, dict) and set(part) == {"text"} and isinstance(part["text"], str):
                texts.append(part["text"])
            else:
                raise invalid('Each content item must be {"image": ...} or {"text": ...}.')
        if len(texts) != 1:
            raise invalid("The content must contain exactly one text.")
        return images, texts[0]

    def _load_image(self, index: int, ref: str) -> InputImage:
        try:
            parsed = parse_image_ref(ref)
        except ImageRejected as rejected:
            raise _refusal(index, rejected, "") from None
        if isinstance(parsed, InlineImage):
            return InputImage(parsed.data, _decoded_size(index, parsed.data), parsed.data)
        if not _is_loopback(ref):
            # Emulator choice: it never leaves loopback, so a remote URL stands for an image.
            return InputImage(ref.encode(), STAND_IN_SIZE, None)
        try:
            response = httpx.get(ref, timeout=10.0)
        except httpx.HTTPError:
            raise ProviderFault(
                400, "InvalidURL", f"Failed to download the image from {ref}."
            ) from None
        if response.status_code != 200:
            raise ProviderFault(
                400,
                "InvalidURL",
                f"Failed to download the image from {ref} (HTTP {response.status_code}).",
            )
        try:
            check_image_bytes(response.content)
        except ImageRejected as rejected:
            raise _refusal(index, rejected, f" at {ref}") from None
        return InputImage(
            response.content, _decoded_size(index, response.content), response.content
        )

    # ---- results ---------------------------------------------------------------------------

    def _render(
        self,
        spec: ModelSpec,
        prompt: str,
        params: dict[str, Any],
        inputs: list[InputImage],
        available_at: float,
    ) -> tuple[list[str], dict[str, int]]:
        width, height = output_size(
            spec.size_rule,
            params.get("size"),
            inputs[-1].size if inputs else None,
            spec.text_to_image_default_size,
        )
        n = params.get("n") or 1
        base = hashlib.sha256(json.dumps([spec.id, prompt, params.get("seed")]).encode())
        for image in inputs:
            base.update(hashlib.sha256(image.material).digest())
        urls = []
        expires = available_at + self.faults.result_ttl_s
        last = inputs[-1].data if inputs else None
        for index in range(n):
            png = render_png(width, height, base.digest() + bytes([index]), last)
            token = uuid.uuid4().hex
            with self._lock:
                self._files[token] = StoredFile(png, expires)
            urls.append(f"{self.public_url}/files/{token}.png?Expires={int(expires)}")
        return urls, {"width": width, "height": height, "image_count": n}

    def _file(self, token: str) -> Reply:
        with self._lock:
            stored = self._files.get(token)
        if stored is None or time.time() >= stored.expires_at:
            # Object storage answers an expired presigned URL with 403 and an XML body.
            return Reply(
                403,
                b'<?xml version="1.0"?><Error><Code>AccessDenied</Code>'
                b"<Message>Request has expired.</Message></Error>",
                content_type="application/xml",
            )
        return Reply(200, stored.png, content_type="image/png")

    # ---- endpoints -------------------------------------------------------------------------

    def _edit_or_generate(self, payload: dict[str, Any], endpoint: Endpoint, key: str):
        spec = self._model(payload, endpoint)
        params = self._parameters(payload)
        image_refs, prompt = self._messages(payload)
        capability = Capability.EDIT if image_refs else Capability.TEXT_TO_IMAGE
        self._check_rules(spec, capability, len(image_refs), params)
        self._admit(key, spec)
        inputs = [self._load_image(index, ref) for index, ref in enumerate(image_refs)]
        return spec, params, prompt[:MAX_PROMPT_CHARS], inputs

    def _generate(self, key, payload, headers, request_id) -> dict[str, Any]:
        spec, params, prompt, inputs = self._edit_or_generate(
            payload, Endpoint.MULTIMODAL_SYNC, key
        )
        time.sleep(self.faults.sync_latency_s)
        urls, usage = self._render(spec, prompt, params, inputs, time.time())
        if not inputs:  # text-to-image reference: usage carries the compatibility token fields
            usage = {"input_tokens": 0, "output_tokens": 0, **usage}
        return {
            "output": {
                "choices": [
                    {
                        "finish_reason": "stop",
                        "message": {
                            "role": "assistant",
                            "content": [{"image": url} for url in urls],
                        },
                    }
                ]
            },
            "usage": usage,
        }

    def _new_task(
        self,
        key: str,
        spec: ModelSpec,
        prompt: str,
        params: dict[str, Any],
        inputs: list[InputImage],
    ) -> FakeTask:
        now = time.time()
        faults = self.faults
        with self._lock:
            if spec.max_concurrent_tasks is not None and faults.enforce_rate_limits:
                running = sum(
                    1
                    for t in self._tasks.values()
                    if t.key == key
                    and t.spec.family == spec.family
                    and t.status(now) in ("PENDING", "RUNNING")
                )
                if running >= spec.max_concurrent_tasks:
                    # Emulator choice: a task over the concurrency limit is refused, not queued.
                    self.counters["concurrency_limited"] += 1
                    raise ProviderFault(
                        429,
                        "Throttling.AllocationQuota",
                        f"Too many running tasks; at most {spec.max_concurrent_tasks} at once.",
                    )
            fails = self._rng.random() < faults.task_failure_rate
        urls, usage = self._render(
            spec, prompt, params, inputs, now + faults.pending_s + faults.running_s
        )
        task = FakeTask(
            id=str(uuid.uuid4()),
            key=key,
            spec=spec,
            created=now,
            pending_s=faults.pending_s,
            running_s=faults.running_s,
            urls=urls,
            usage=usage,
            prompt=prompt,
            actual_prompt=prompt,
            failure=("InternalError.Algo", "Algorithm process error.") if fails else None,
        )
        with self._lock:
            self._tasks[task.id] = task
            self.counters["tasks_failed" if fails else "tasks_succeeded"] += 1
        return task

    def _create_synthesis(self, key, payload, headers, request_id) -> dict[str, Any]:
        if headers.get("x-dashscope-async", "").lower() != "enable":
            raise ProviderFault(
                403, "AccessDenied", "current user api does not support synchronous calls"
            )
        spec = self._model(payload, Endpoint.IMAGE_SYNTHESIS_ASYNC)
        params = self._parameters(payload)
        task_input = payload.get("input") or {}
        prompt = task_input.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise invalid("Required parameter 'input.prompt' is missing.")
        negative = task_input.get("negative_prompt")
        if negative is not None and not isinstance(negative, str):
            raise invalid("input.negative_prompt must be of type str.")
        self._check_rules(spec, Capability.TEXT_TO_IMAGE, 0, params)
        self._admit(key, spec)
        task = self._new_task(key, spec, prompt[:MAX_PROMPT_CHARS], params, [])
        return {"output": {"task_id": task.id, "task_status": "PENDING"}}

    def _task_for(self, key: str, task_id: str) -> FakeTask | None:
        with self._lock:
            task = self._tasks.get(task_id)
        return task if task is not None and task.key == key else None

    def _fetch(self, task_id, key, payload, headers, request_id) -> dict[str, Any]:
        task = self._task_for(key, task_id)
        if task is None or task.spec.provider is not Provider.DASHSCOPE:
            return {"output": {"task_id": task_id, "task_status": "UNKNOWN"}}
        status = task.status(time.time())
        output: dict[str, Any] = {
            "task_id": task.id,
            "task_status": status,
            "submit_time": _stamp(task.created),
        }
        if status in ("RUNNING", "SUCCEEDED", "FAILED"):
            output["scheduled_time"] = _stamp(task.scheduled)
        if status in ("SUCCEEDED", "FAILED"):
            output["end_time"] = _stamp(task.ends)
        answer: dict[str, Any] = {"output": output}
        if status == "SUCCEEDED":
            output["results"] = [
                {"url": url, "orig_prompt": task.prompt, "actual_prompt": task.actual_prompt}
                for url in task.urls
            ]
            answer["usage"] = {"image_count": task.usage["image_count"]}
        elif status == "FAILED":
            output["code"], output["message"] = task.failure
        return answer

    def _cancel(self, task_id, key, payload, headers, request_id) -> dict[str, Any]:
        task = self._task_for(key, task_id)
        with self._lock:
            if task is None or task.status(time.time()) != "PENDING":
                # Emulator choice of code; the text-to-image reference says only PENDING
                # tasks can be canceled.
                raise ProviderFault(
                    400,
                    "UnsupportedOperation",
                    "Failed to cancel the task, please confirm if the task is in PENDING status.",
                )
            task.canceled_at = time.time()
        return {"output": {"task_id": task.id, "task_status": "CANCELED"}}

    def _create_task_api(self, key, payload, headers, request_id) -> dict[str, Any]:
        spec, params, prompt, inputs = self._edit_or_generate(payload, Endpoint.TASK_API_ASYNC, key)
        task = self._new_task(key, spec, prompt, params, inputs)
        return {"task_id": task.id, "status": "pending"}

    def _fetch_task_api(self, task_id, key, payload, headers, request_id) -> dict[str, Any]:
        task = self._task_for(key, task_id)
        if task is None or task.spec.provider is not Provider.TASK_API:
            raise ProviderFault(404, "NotFound", f"Task {task_id} not found.")
        status = {
            "PENDING": "pending",
            "RUNNING": "processing",
            "SUCCEEDED": "completed",
            "FAILED": "failed",
            "CANCELED": "canceled",
        }[task.status(time.time())]
        answer: dict[str, Any] = {
            "task_id": task.id,
            "status": status,
            "metadata": {"model": task.spec.id, "created_at": _stamp(task.created)},
        }
        if status == "completed":
            answer["output"] = [{"content": [{"type": "image", "url": url} for url in task.urls]}]
            answer["usage"] = task.usage
        elif status == "failed":
            answer["error"] = {"code": 500, "error_message": task.failure[1]}
        return answer

    # ---- control and statistics ------------------------------------------------------------

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

    def task_end(self, task_id: str) -> float | None:
        """When a task finished (or will), epoch seconds; None for an unknown task."""
        with self._lock:
            task = self._tasks.get(task_id)
        return task.ends if task else None

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counters": dict(self.counters),
                "calls": list(self.calls),
                "tasks": len(self._tasks),
                "files": len(self._files),
            }

    def expire_results(self) -> None:
        with self._lock:
            for stored in self._files.values():
                stored.expires_at = 0.0

    def _control(self, method: str, action: str, body: bytes) -> Reply:
        if action == "faults" and method == "GET":
            return Reply(200, self.faults.model_dump())
        if action == "faults" and method == "PUT":
            try:
                update = self._json(body) if body else {}
                self.faults = Faults.model_validate({**self.faults.model_dump(), **update})
            except (ProviderFault, ValidationError) as error:
                return Reply(400, {"code": "InvalidParameter", "message": str(error)})
            return Reply(200, self.faults.model_dump())
        if action == "stats" and method == "GET":
            return Reply(200, self.stats())
        if action == "reset" and method == "POST":
            self.reset()
            return Reply(200, {"reset": True})
        if action == "expire-results" and method == "POST":
            self.expire_results()
            return Reply(200, {"expired": True})
        return Reply(404, {"code": "NotFound", "message": f"no control action {action}"})
