"""The DashScope emulator's behaviour, independent of the HTTP server that exposes it.

Paths, bodies, statuses and error codes follow the provider's documentation. Where it is silent the
choices are marked "emulator choice" and listed in docs/emulator.md.

FakeDashScope composes the parts: routes.py (HTTP-level handling, route table, control endpoints),
payloads.py (request bodies), faults.py (rate limits and injected faults), images.py (inputs),
render.py (result PNGs) and tasks.py (tasks and result files). What is left here is what ties
them together: the state one instance shares, the endpoints that create results, and rendering.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import Counter, deque
from typing import Any, NamedTuple

from qwen_edit.domain.catalog import MAX_PROMPT_CHARS, Capability, Endpoint, ModelSpec
from qwen_edit_cli.emulator import payloads
from qwen_edit_cli.emulator.faults import Admission, Faults, ProviderFault
from qwen_edit_cli.emulator.images import InputImage, load_image
from qwen_edit_cli.emulator.render import output_size, render_png
from qwen_edit_cli.emulator.routes import FILES_PREFIX, Call, Routes
from qwen_edit_cli.emulator.tasks import FakeTask, Results, TaskStore


class Request(NamedTuple):
    """A checked and admitted edit or text-to-image request, its inputs loaded."""

    spec: ModelSpec
    params: dict[str, Any]
    prompt: str  # truncated as the provider does
    inputs: list[InputImage]


class FakeDashScope(Routes):
    """The emulated provider; tests and the server reach it through `handle` and its settings."""

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
        self.verbose = verbose
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forgets every call, task, file and rate-limit window; reseeds the random stream."""
        with self._lock:
            rng = random.Random(self.faults.random_seed)  # one stream: a seed replays a run
            self.counters = Counter()
            self.calls = deque(maxlen=10_000)
            self._admission = Admission(self._lock, rng, self.counters)
            self._store = TaskStore(self._lock, rng, self.counters)

    def task_end(self, task_id: str) -> float | None:
        """When a task finished (or will), epoch seconds; None for an unknown task."""
        return self._store.task_end(task_id)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counters": dict(self.counters),
                "calls": list(self.calls),
                **self._store.sizes(),
            }

    def expire_results(self) -> None:
        self._store.expire_files()

    # ---- endpoints -------------------------------------------------------------------------

    def _generate(self, call: Call) -> dict[str, Any]:
        request = self._request(call, Endpoint.MULTIMODAL_SYNC)
        time.sleep(self.faults.sync_latency_s)
        urls, usage = self._render(request, time.time())
        if not request.inputs:  # text-to-image reference: usage carries the token fields
            usage = {"input_tokens": 0, "output_tokens": 0, **usage}
        message = {"role": "assistant", "content": [{"image": url} for url in urls]}
        return {
            "output": {"choices": [{"finish_reason": "stop", "message": message}]},
            "usage": usage,
        }

    def _create_synthesis(self, call: Call) -> dict[str, Any]:
        if call.headers.get("x-dashscope-async", "").lower() != "enable":
            raise ProviderFault(
                403, "AccessDenied", "current user api does not support synchronous calls"
            )
        spec = payloads.model_spec(call.payload, Endpoint.IMAGE_SYNTHESIS_ASYNC)
        params = payloads.parameters(call.payload)
        prompt = payloads.synthesis_prompt(call.payload)[:MAX_PROMPT_CHARS]
        payloads.check_rules(spec, Capability.TEXT_TO_IMAGE, 0, params)
        self._admission.admit(self.faults, call.key, spec, call.arrived)
        task = self._new_task(call.key, Request(spec, params, prompt, []))
        return {"output": {"task_id": task.id, "task_status": "PENDING"}}

    def _create_task_api(self, call: Call) -> dict[str, Any]:
        task = self._new_task(call.key, self._request(call, Endpoint.TASK_API_ASYNC))
        return {"task_id": task.id, "status": "pending"}

    def _request(self, call: Call, endpoint: Endpoint) -> Request:
        """The checks of an edit or text-to-image body, admission, then its input images."""
        spec = payloads.model_spec(call.payload, endpoint)
        params = payloads.parameters(call.payload)
        image_refs, prompt = payloads.messages(call.payload)
        capability = Capability.EDIT if image_refs else Capability.TEXT_TO_IMAGE
        payloads.check_rules(spec, capability, len(image_refs), params)
        self._admission.admit(self.faults, call.key, spec, call.arrived)
        inputs = [load_image(index, ref) for index, ref in enumerate(image_refs)]
        return Request(spec, params, prompt[:MAX_PROMPT_CHARS], inputs)

    def _new_task(self, key: str, request: Request) -> FakeTask:
        return self._store.create(
            key,
            request.spec,
            request.prompt,
            self.faults,
            lambda available_at: self._render(request, available_at),
        )

    # ---- results ---------------------------------------------------------------------------

    def _render(self, request: Request, available_at: float) -> Results:
        """Renders and stores the request's outputs; their URLs expire `result_ttl_s` after
        `available_at`."""
        spec, params, inputs = request.spec, request.params, request.inputs
        width, height = output_size(
            spec.size_rule,
            params.get("size"),
            inputs[-1].size if inputs else None,
            spec.text_to_image_default_size,
        )
        n = params.get("n") or 1
        seed = _output_seed(request)
        expires = available_at + self.faults.result_ttl_s
        last = inputs[-1].data if inputs else None
        urls = [
            self._store_result(render_png(width, height, seed + bytes([index]), last), expires)
            for index in range(n)
        ]
        return urls, {"width": width, "height": height, "image_count": n}

    def _store_result(self, png: bytes, expires: float) -> str:
        token = self._store.store_file(png, expires)
        return f"{self.public_url}{FILES_PREFIX}{token}.png?Expires={int(expires)}"


def _output_seed(request: Request) -> bytes:
    """What an output's pixels derive from (with its index): the model, prompt, seed, inputs."""
    base = hashlib.sha256(
        json.dumps([request.spec.id, request.prompt, request.params.get("seed")]).encode()
    )
    for image in request.inputs:
        base.update(hashlib.sha256(image.material).digest())
    return base.digest()
