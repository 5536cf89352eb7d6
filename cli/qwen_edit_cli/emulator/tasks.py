"""The emulator's task store: async tasks and the result files behind the URLs it hands out.

A task's status follows a timeline fixed when it is created (PENDING for `pending_s`, RUNNING for
`running_s`, then SUCCEEDED or FAILED, unless canceled while PENDING), so a fetch only compares
the clock with it. Fetch and cancel answer in DashScope's shape, the Task API's fetch in its own.
A result file lives until its URL expires. The store shares the instance's lock, random stream
and counters with the rest of the emulator.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from qwen_edit.domain.catalog import ModelSpec, Provider
from qwen_edit_cli.emulator.faults import Faults, ProviderFault

Results = tuple[list[str], dict[str, int]]  # result URLs, and the usage of the call
_ALGO_FAILURE = ("InternalError.Algo", "Algorithm process error.")  # emulator choice
_TASK_API_STATUS = {
    "PENDING": "pending",
    "RUNNING": "processing",
    "SUCCEEDED": "completed",
    "FAILED": "failed",
    "CANCELED": "canceled",
}


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
    failure: tuple[str, str] | None = None  # error code and message of a task that will fail
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


def _timeline(task: FakeTask, status: str) -> dict[str, str]:
    times = {"submit_time": _stamp(task.created)}
    if status in ("RUNNING", "SUCCEEDED", "FAILED"):
        times["scheduled_time"] = _stamp(task.scheduled)
    if status in ("SUCCEEDED", "FAILED"):
        times["end_time"] = _stamp(task.ends)
    return times


class TaskStore:
    """One instance's tasks and result files, behind the lock it shares."""

    def __init__(self, lock: threading.Lock, rng: random.Random, counters: Counter[str]):
        self._lock, self._rng, self._counters = lock, rng, counters
        self._tasks: dict[str, FakeTask] = {}
        self._files: dict[str, StoredFile] = {}

    # ---- result files ----------------------------------------------------------------------

    def store_file(self, png: bytes, expires_at: float) -> str:
        """Keeps a result; returns the token its URL names."""
        token = uuid.uuid4().hex
        with self._lock:
            self._files[token] = StoredFile(png, expires_at)
        return token

    def file(self, token: str) -> bytes | None:
        """The PNG a token names; None when there is none or its URL has expired."""
        with self._lock:
            stored = self._files.get(token)
        if stored is None or time.time() >= stored.expires_at:
            return None
        return stored.png

    def expire_files(self) -> None:
        with self._lock:
            for stored in self._files.values():
                stored.expires_at = 0.0

    def sizes(self) -> dict[str, int]:
        """How many tasks and files there are; the caller holds the lock."""
        return {"tasks": len(self._tasks), "files": len(self._files)}

    # ---- tasks -----------------------------------------------------------------------------

    def create(
        self,
        key: str,
        spec: ModelSpec,
        prompt: str,
        faults: Faults,
        results: Callable[[float], Results],
    ) -> FakeTask:
        """A task on the timeline `faults` sets; `results` renders its outputs, given the time
        they become available."""
        now = time.time()
        fails = self._reserve(key, spec, faults, now)
        urls, usage = results(now + faults.pending_s + faults.running_s)
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
            failure=_ALGO_FAILURE if fails else None,
        )
        with self._lock:
            self._tasks[task.id] = task
            self._counters["tasks_failed" if fails else "tasks_succeeded"] += 1
        return task

    def _reserve(self, key: str, spec: ModelSpec, faults: Faults, now: float) -> bool:
        """Refuses a task over its family's concurrency limit; else rolls whether it will fail."""
        with self._lock:
            if faults.enforce_rate_limits and self._at_limit(key, spec, now):
                # Emulator choice: a task over the concurrency limit is refused, not queued.
                self._counters["concurrency_limited"] += 1
                raise ProviderFault(
                    429,
                    "Throttling.AllocationQuota",
                    f"Too many running tasks; at most {spec.max_concurrent_tasks} at once.",
                )
            return self._rng.random() < faults.task_failure_rate

    def _at_limit(self, key: str, spec: ModelSpec, now: float) -> bool:
        """Under the lock: whether the key has as many unfinished tasks of the family as it may."""
        if spec.max_concurrent_tasks is None:
            return False
        unfinished = sum(
            1
            for task in self._tasks.values()
            if task.key == key
            and task.spec.family == spec.family
            and task.status(now) in ("PENDING", "RUNNING")
        )
        return unfinished >= spec.max_concurrent_tasks

    def _owned(self, key: str, task_id: str) -> FakeTask | None:
        """The task, unless it is unknown or another key's."""
        with self._lock:
            task = self._tasks.get(task_id)
        return task if task is not None and task.key == key else None

    def task_end(self, task_id: str) -> float | None:
        """When a task finished (or will), epoch seconds; None for an unknown task."""
        with self._lock:
            task = self._tasks.get(task_id)
        return task.ends if task else None

    # ---- answers ---------------------------------------------------------------------------

    def fetch(self, key: str, task_id: str) -> dict[str, Any]:
        """GET /api/v1/tasks/{id}: a task this key cannot see is UNKNOWN, not an error."""
        task = self._owned(key, task_id)
        if task is None or task.spec.provider is not Provider.DASHSCOPE:
            return {"output": {"task_id": task_id, "task_status": "UNKNOWN"}}
        status = task.status(time.time())
        output: dict[str, Any] = {"task_id": task.id, "task_status": status}
        output.update(_timeline(task, status))
        answer: dict[str, Any] = {"output": output}
        if status == "SUCCEEDED":
            # Not modeled: prompt rewriting, so the actual prompt is the original one.
            output["results"] = [
                {"url": url, "orig_prompt": task.prompt, "actual_prompt": task.prompt}
                for url in task.urls
            ]
            answer["usage"] = {"image_count": task.usage["image_count"]}
        elif status == "FAILED" and task.failure is not None:
            output["code"], output["message"] = task.failure
        return answer

    def cancel(self, key: str, task_id: str) -> dict[str, Any]:
        """POST /api/v1/tasks/{id}/cancel, which only a PENDING task takes."""
        task = self._owned(key, task_id)
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

    def fetch_task_api(self, key: str, task_id: str) -> dict[str, Any]:
        """GET /taskapi/v1/tasks/{id}, in the Task API's shape and status names."""
        task = self._owned(key, task_id)
        if task is None or task.spec.provider is not Provider.TASK_API:
            raise ProviderFault(404, "NotFound", f"Task {task_id} not found.")
        status = _TASK_API_STATUS[task.status(time.time())]
        answer: dict[str, Any] = {
            "task_id": task.id,
            "status": status,
            "metadata": {"model": task.spec.id, "created_at": _stamp(task.created)},
        }
        if status == "completed":
            answer["output"] = [{"content": [{"type": "image", "url": url} for url in task.urls]}]
            answer["usage"] = task.usage
        elif status == "failed" and task.failure is not None:
            answer["error"] = {"code": 500, "error_message": task.failure[1]}
        return answer
