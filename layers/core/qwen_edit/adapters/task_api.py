"""Client of the Vtrix-style task edit API, behind the same interface as DashScope.

Its reference documents the bodies, not the paths or the status names besides `completed` and
`failed`; this client uses POST {base}/tasks and GET {base}/tasks/{id}, with statuses
pending → processing → completed | failed. The operator sets the base URL.
"""

from __future__ import annotations

from typing import Any

import httpx

from qwen_edit.adapters.dashscope import multimodal_body
from qwen_edit.adapters.provider_http import ProviderHttp
from qwen_edit.domain.provider import (
    ProviderError,
    ProviderRequest,
    ProviderTask,
    TaskStatus,
    Usage,
)

STATUSES = {
    "pending": TaskStatus.PENDING,
    "queued": TaskStatus.PENDING,
    "processing": TaskStatus.RUNNING,
    "running": TaskStatus.RUNNING,
    "completed": TaskStatus.SUCCEEDED,
    "failed": TaskStatus.FAILED,
    "canceled": TaskStatus.CANCELED,
    "cancelled": TaskStatus.CANCELED,
}


class TaskApiClient:
    name = "task-api"

    def __init__(
        self, api_key: str, *, base_url: str, transport: httpx.BaseTransport | None = None
    ):
        self._http = ProviderHttp(base_url, api_key, transport=transport)

    def submit(self, request: ProviderRequest, *, asynchronous: bool = True) -> ProviderTask:
        # Same request body as DashScope's multimodal generation (the task API mirrors it).
        return _task_of(self._http.call("POST", "/tasks", json=multimodal_body(request)))

    def fetch(self, task_id: str) -> ProviderTask:
        return _task_of(self._http.call("GET", f"/tasks/{task_id}"))

    def cancel(self, task_id: str) -> None:
        raise ProviderError(
            "CancelNotSupported",
            "the task API has no cancel operation; the task runs to its end at the provider",
        )

    def download(self, url: str) -> bytes:
        return self._http.download(url)

    def close(self) -> None:
        self._http.close()


def _task_of(body: dict[str, Any]) -> ProviderTask:
    # An unrecognised status is still in progress: polling goes on until the job's deadline.
    status = STATUSES.get(str(body.get("status", "")).lower(), TaskStatus.RUNNING)
    error = body.get("error") or {}
    usage = body.get("usage") or {}
    return ProviderTask(
        status=status,
        task_id=body.get("task_id") or body.get("id"),
        request_id=body.get("request_id"),
        image_urls=[
            part["url"]
            for item in body.get("output") or []
            for part in item.get("content") or []
            if part.get("type") == "image" and part.get("url")
        ],
        usage=Usage(
            image_count=usage.get("image_count", 0),
            width=usage.get("width"),
            height=usage.get("height"),
        )
        if usage
        else None,
        error_code=str(error["code"]) if error.get("code") is not None else None,
        error_message=error.get("error_message"),
    )
