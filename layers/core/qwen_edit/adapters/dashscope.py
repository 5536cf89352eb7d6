"""Alibaba Cloud Model Studio (DashScope) client: the image-editing guide, HTTP
and parameters references, and the text-to-image reference.

- Sync multimodal generation (every edit model; text-to-image on the 2.0, max and plus series).
- Async image synthesis (`X-DashScope-Async: enable`) for qwen-image and qwen-image-plus, then
  GET /tasks/{id} and POST /tasks/{id}/cancel (PENDING tasks only).
Keys are per region and never interchangeable; a base URL override serves the emulator and proxies.
"""

from __future__ import annotations

from typing import Any

import httpx

from qwen_edit.adapters.provider_http import SYNC_TIMEOUT, ProviderHttp
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.provider import (
    ProviderError,
    ProviderRequest,
    ProviderTask,
    Region,
    TaskStatus,
    Usage,
)

BASE_URLS = {
    Region.SINGAPORE: "https://dashscope-intl.aliyuncs.com/api/v1",
    Region.BEIJING: "https://dashscope.aliyuncs.com/api/v1",
}
SYNC_PATH = "/services/aigc/multimodal-generation/generation"
ASYNC_PATH = "/services/aigc/text2image/image-synthesis"


def base_url_for(region: Region | str, override: str | None = None) -> str:
    return override.rstrip("/") if override else BASE_URLS[Region(region)]


class DashScopeClient:
    name = "dashscope"

    def __init__(
        self,
        api_key: str,
        *,
        region: Region | str = Region.SINGAPORE,
        base_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.region = Region(region)
        self._http = ProviderHttp(base_url_for(self.region, base_url), api_key, transport=transport)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def submit(self, request: ProviderRequest, *, asynchronous: bool) -> ProviderTask:
        if asynchronous:
            body = self._http.call(
                "POST",
                ASYNC_PATH,
                json=_synthesis_body(request),
                headers={"X-DashScope-Async": "enable"},
            )
            return _task_of(body)
        body = self._http.call(
            "POST", SYNC_PATH, json=multimodal_body(request), timeout=SYNC_TIMEOUT
        )
        return _sync_result_of(body)

    def fetch(self, task_id: str) -> ProviderTask:
        return _task_of(self._http.call("GET", f"/tasks/{task_id}"))

    def cancel(self, task_id: str) -> None:
        self._http.call("POST", f"/tasks/{task_id}/cancel")

    def download(self, url: str) -> bytes:
        return self._http.download(url)

    def close(self) -> None:
        self._http.close()


def multimodal_body(request: ProviderRequest) -> dict[str, Any]:
    content: list[dict[str, str]] = [{"image": image} for image in request.images]
    content.append({"text": request.prompt})
    parameters = dict(request.parameters)
    if request.negative_prompt is not None:
        parameters["negative_prompt"] = request.negative_prompt
    return {
        "model": request.model,
        "input": {"messages": [{"role": "user", "content": content}]},
        "parameters": parameters,
    }


def _synthesis_body(request: ProviderRequest) -> dict[str, Any]:
    if request.capability is not Capability.TEXT_TO_IMAGE or request.images:
        raise ValueError("the image-synthesis task API takes text-to-image requests only")
    task_input = {"prompt": request.prompt}
    if request.negative_prompt is not None:
        task_input["negative_prompt"] = request.negative_prompt
    return {"model": request.model, "input": task_input, "parameters": dict(request.parameters)}


def _sync_result_of(body: dict[str, Any]) -> ProviderTask:
    output = body.get("output") or {}
    choices = output.get("choices") or []
    if not choices:
        # A 200 without choices carries the failure in code/message, like an error answer.
        raise ProviderError(
            body.get("code") or "EmptyOutput",
            body.get("message") or "the provider answered without images",
            http_status=200,
            request_id=body.get("request_id"),
        )
    urls = [
        part["image"]
        for part in choices[0].get("message", {}).get("content", [])
        if part.get("image")
    ]
    return ProviderTask(
        status=TaskStatus.SUCCEEDED,
        request_id=body.get("request_id"),
        image_urls=urls,
        usage=Usage(**_usage_fields(body)),
    )


def _task_of(body: dict[str, Any]) -> ProviderTask:
    output = body.get("output") or {}
    status = TaskStatus(output.get("task_status", TaskStatus.UNKNOWN))
    usage = body.get("usage")
    return ProviderTask(
        status=status,
        task_id=output.get("task_id"),
        request_id=body.get("request_id"),
        image_urls=[r["url"] for r in output.get("results") or [] if r.get("url")],
        usage=Usage(**_usage_fields(body)) if usage else None,
        error_code=output.get("code") or None,
        error_message=output.get("message") or None,
        submit_time=output.get("submit_time"),
        scheduled_time=output.get("scheduled_time"),
        end_time=output.get("end_time"),
    )


def _usage_fields(body: dict[str, Any]) -> dict[str, Any]:
    usage = body.get("usage") or {}
    return {k: usage[k] for k in ("image_count", "width", "height") if usage.get(k) is not None}
