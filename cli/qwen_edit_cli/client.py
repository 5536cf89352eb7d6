"""A client of the qwen-edit REST API (any deployment): what the CLI and the demo use."""

from __future__ import annotations

import builtins
import mimetypes
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

from qwen_edit.domain.images import FORMAT_OF_EXTENSION, MIME_TYPES

FINAL = {"succeeded", "failed", "canceled"}
# A 429 changed nothing, so any request may be sent again after its Retry-After: up to this
# many times, and never after a longer wait (a used-up daily quota says 86400 s).
RETRIES_ON_429 = 5
LONGEST_WAIT_S = 120.0
CONTENT_TYPES = {f".{ext}": MIME_TYPES[fmt][0] for ext, fmt in FORMAT_OF_EXTENSION.items()}


class ApiError(Exception):
    """An answer of the API's error envelope, or no answer at all (status None)."""

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
    ):
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details or []


class QwenEditClient:
    def __init__(
        self,
        api_url: str,
        api_key: str,
        timeout: float = 60.0,
        *,
        on_wait: Callable[[ApiError, float, int], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        """`on_wait(error, seconds, retry)` hears of each wait on a 429's Retry-After."""
        self.http = httpx.Client(
            base_url=api_url.rstrip("/"),
            timeout=timeout,
            headers={"x-api-key": api_key},
            transport=transport,
        )
        self.files = httpx.Client(timeout=timeout)  # presigned URLs: no API key
        self.on_wait = on_wait
        self.sleep = time.sleep

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The answer's JSON; a 429 is sent again after its Retry-After (within the bounds)."""
        retry = 0
        while True:
            try:
                answer = self.http.request(method, path, **kwargs)
            except httpx.HTTPError as failure:
                raise ApiError(None, "Unreachable", f"{self.http.base_url}: {failure}") from None
            body = answer.json() if answer.content else {}
            if answer.status_code < 400:
                return body
            envelope = body.get("error", {}) if isinstance(body, dict) else {}
            error = ApiError(
                answer.status_code,
                envelope.get("code", f"HTTP{answer.status_code}"),
                envelope.get("message", answer.text[:200]),
                envelope.get("details"),
            )
            wait = _retry_after(answer) if answer.status_code == 429 else None
            if wait is None or wait > LONGEST_WAIT_S or retry == RETRIES_ON_429:
                raise error
            retry += 1
            if self.on_wait:
                self.on_wait(error, wait, retry)
            self.sleep(wait)

    def upload(self, path: Path) -> str:
        """Upload one local image through POST /uploads; its s3:// reference."""
        content_type = CONTENT_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path)[0]
        if content_type is None:
            raise ApiError(None, "NotAnImage", f"{path} is not a JPG, PNG, BMP, TIFF, WEBP or GIF")
        data = path.read_bytes()
        ticket = self.request(
            "POST", "/uploads", json={"content_type": content_type, "content_length": len(data)}
        )
        put = self.files.put(ticket["upload_url"], content=data, headers=ticket["headers"])
        if put.status_code >= 300:
            raise ApiError(
                put.status_code, "UploadFailed", f"storing {path} failed: {put.text[:200]}"
            )
        return str(ticket["image"])

    def create(
        self, kind: str, body: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", f"/{kind}", json=body, headers=headers)

    def get(self, job_id: str, wait: int = 0) -> dict[str, Any]:
        """The job; with `wait`, as soon as it is final or after that many seconds."""
        return self.request("GET", f"/jobs/{job_id}", params={"wait": wait} if wait else None)

    def list(
        self, limit: int = 20, cursor: str | None = None, status: str | None = None
    ) -> dict[str, Any]:
        params = {
            k: v
            for k, v in {"limit": limit, "cursor": cursor, "status": status}.items()
            if v is not None
        }
        return self.request("GET", "/jobs", params=params)

    def usage(
        self, start: str | None = None, end: str | None = None, group_by: str | None = None
    ) -> dict[str, Any]:
        params = {k: v for k, v in {"from": start, "to": end, "group_by": group_by}.items() if v}
        return self.request("GET", "/usage", params=params)

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self.request("POST", f"/jobs/{job_id}/cancel")

    def retry(self, job_id: str, idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", f"/jobs/{job_id}/retry", headers=headers)

    def wait(
        self,
        job_id: str,
        on_progress: Callable[[dict[str, Any], float], None] | None = None,
        interval: int = 3,
        timeout: float = 3600,
    ) -> dict[str, Any]:
        """The job once final. Each read waits at the server (GET ?wait) for up to `interval`
        seconds, so the end is seen at once and the progress line still moves."""
        started = time.monotonic()
        job = self.get(job_id)
        while True:
            elapsed = time.monotonic() - started
            if on_progress:
                on_progress(job, elapsed)
            if job["status"] in FINAL:
                return job
            if elapsed > timeout:
                raise ApiError(None, "Timeout", f"job {job_id} is still {job['status']}")
            job = self.get(job_id, wait=interval)

    def download(
        self, job: dict[str, Any], out_dir: Path, name: str | None = None
    ) -> builtins.list[Path]:
        """Save a job's outputs as <name or job id>[-i].png in out_dir."""
        out_dir.mkdir(parents=True, exist_ok=True)
        outputs = job.get("outputs", [])
        paths = []
        for index, output in enumerate(outputs, start=1):
            stem = name or job["id"]
            path = out_dir / (f"{stem}.png" if len(outputs) == 1 else f"{stem}-{index}.png")
            answer = self.files.get(output["url"])
            answer.raise_for_status()
            path.write_bytes(answer.content)
            paths.append(path)
        return paths


def _retry_after(answer: httpx.Response) -> float | None:
    """Retry-After in seconds, as RFC 9110 allows it (delay-seconds or an HTTP-date)."""
    value = answer.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, as far as anyone knows
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
