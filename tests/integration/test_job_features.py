"""The job API's features of hosted image APIs, end to end on the local stack: deadlines, retry
by id, and waiting without polling."""

from __future__ import annotations

from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.jobs import JobStatus
from qwen_edit_cli.local.drive import job_of, start, wait_execution

SLOW_FAMILY = {"model": "qwen-image-2.0-pro", "prompt": "a lighthouse at dusk"}  # 2 a minute


def generation_calls(stack) -> int:
    return sum(1 for c in stack.emulator.fake.calls if c["route"] == "multimodal-generation")


def test_a_deadline_cancels_a_queued_job_with_no_provider_call(stack):
    first = start(stack, SLOW_FAMILY, Capability.TEXT_TO_IMAGE)
    waiting = start(stack, {**SLOW_FAMILY, "cancel_after": 2}, Capability.TEXT_TO_IMAGE)
    wait_execution(stack, waiting.id, timeout=30)  # its slot was 30 s away
    canceled = job_of(stack, waiting.id)
    assert canceled.status is JobStatus.CANCELED and canceled.error
    assert canceled.error.code == "DeadlineExceeded"
    wait_execution(stack, first.id)
    assert job_of(stack, first.id).status is JobStatus.SUCCEEDED
    assert generation_calls(stack) == 1  # the first job's only
