"""Multi-step jobs: a request's `then` steps run in order, in the same job and workflow.

Step 0 is the request itself; step k edits an output of step k-1: its first, or each in turn
when the step fans out. The job walks its provider calls with a Cursor (step, run), and each
call goes through the admission, dispatch, polling and storage of a single-step job.
"""

from __future__ import annotations

from typing import Any

from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.jobs import Cursor, Job, StepResult


def _then(job: Job) -> list[dict[str, Any]]:
    return list(job.request.get("then") or ())


def call_request(job: Job) -> tuple[Capability, dict[str, Any]]:
    """The request of the call the job is at: the job's own, or a `then` step's edit of the
    previous step's output."""
    if job.cursor is None or job.cursor.step == 0:
        return job.kind.capability, job.request
    step = dict(_then(job)[job.cursor.step - 1])
    fan_out = step.pop("fan_out", False)
    previous = job.step_results[job.cursor.step - 1].outputs
    return Capability.EDIT, {**step, "images": [previous[job.cursor.run if fan_out else 0].s3_uri]}


def runs(job: Job, step: int) -> int:
    """How many calls `step` makes: one, or one per output of the step before (fan_out)."""
    if step == 0 or not _then(job)[step - 1].get("fan_out"):
        return 1
    return len(job.step_results[step - 1].outputs)


def planned_images(job: Job, step: int) -> int:
    """The most images `step` can make (each earlier step's n, fanned out), which decides
    whether its outputs are numbered."""
    images = job.request.get("n") or 1
    for then in _then(job)[:step]:
        images = (images if then.get("fan_out") else 1) * (then.get("n") or 1)
    return images


def advance(job: Job, at: Cursor, stored: StepResult) -> tuple[list[StepResult], Cursor | None]:
    """The job's step results once call `at` stored its outputs, and the call after it (None
    when that was the last)."""
    results = list(job.step_results)
    if len(results) <= at.step:
        results.append(StepResult(model=stored.model))
    done = results[at.step]
    results[at.step] = done.model_copy(
        update={"outputs": [*done.outputs, *stored.outputs], "images": done.images + stored.images}
    )
    job = job.model_copy(update={"step_results": results})  # a fan_out step's runs count them
    if at.run + 1 < runs(job, at.step):
        return results, Cursor(step=at.step, run=at.run + 1)
    if at.step + 1 < len(job.models):
        return results, Cursor(step=at.step + 1)
    return results, None
