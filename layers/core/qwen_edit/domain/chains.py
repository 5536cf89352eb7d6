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


def with_outputs(job: Job, result: StepResult) -> list[StepResult]:
    """The job's step results once the current call's outputs are added to its step's."""
    if job.cursor is None:
        return [result]
    results = list(job.step_results)
    if len(results) <= job.cursor.step:
        results.append(StepResult(model=result.model))
    done = results[job.cursor.step]
    results[job.cursor.step] = done.model_copy(
        update={"outputs": [*done.outputs, *result.outputs], "images": done.images + result.images}
    )
    return results


def next_call(job: Job) -> Cursor | None:
    """The call after the current one (its outputs stored in step_results), or None when the
    job has made its last."""
    at = job.cursor
    if at is None:
        return None
    if at.run + 1 < runs(job, at.step):
        return Cursor(step=at.step, run=at.run + 1)
    if at.step + 1 < len(job.models):
        return Cursor(step=at.step + 1)
    return None
