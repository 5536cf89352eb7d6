"""Billed Step Functions state transitions and Lambda invocations per job, read from real
execution histories (moto's interpreter running statemachine/job.asl.json, the emulator as the
provider): a sync edit, async text-to-image jobs that need 1, 3 and 12 polls, and a
three-step chain (`then`).

    .venv/bin/python benchmarks/workflow_transitions.py
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from qwen_edit.domain.catalog import Capability
from qwen_edit_cli.emulator.faults import Faults
from qwen_edit_cli.emulator.server import EmulatorServer
from qwen_edit_cli.local.drive import billed_transitions, history, start, wait_execution
from qwen_edit_cli.local.inprocess import in_process_stack
from qwen_edit_cli.local.stack import LocalStack

STATE_TRANSITION_USD = 0.000025  # us-east-1 list price, Standard workflows


def run(stack: LocalStack, payload: dict[str, Any], capability: Capability) -> tuple[int, int, int]:
    before = sum(stack.dispatcher.invocations.values())
    job = start(stack, payload, capability)
    assert wait_execution(stack, job.id, timeout=300)["status"] == "SUCCEEDED"
    events = history(stack, job.id)
    polls = sum(
        1
        for e in events
        if e["type"] == "LambdaFunctionScheduled"
        and "Poll" in str(e.get("lambdaFunctionScheduledEventDetails", {}))
    )
    return billed_transitions(events), sum(stack.dispatcher.invocations.values()) - before, polls


def main() -> None:
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    photo = "https://example.com/photo.png"  # the emulator stands in for remote images
    cases: list[tuple[str, Faults, dict[str, Any], Capability]] = [
        (
            "sync edit (qwen-image-edit-plus)",
            Faults(sync_latency_s=0),
            {"model": "qwen-image-edit-plus", "prompt": "x", "images": [photo]},
            Capability.EDIT,
        ),
        (
            "async t2i, ~1 s at the provider",
            Faults(pending_s=0.2, running_s=0.5),
            {"model": "qwen-image-plus", "prompt": "x"},
            Capability.TEXT_TO_IMAGE,
        ),
        (
            "async t2i, ~3 s at the provider",
            Faults(pending_s=1, running_s=1.6),
            {"model": "qwen-image-plus", "prompt": "x"},
            Capability.TEXT_TO_IMAGE,
        ),
        (
            "async t2i, ~12 s at the provider",
            Faults(pending_s=2, running_s=9.6),
            {"model": "qwen-image-plus", "prompt": "x"},
            Capability.TEXT_TO_IMAGE,
        ),
        (
            "3-step chain: ~1 s t2i, 2 sync edits",
            Faults(pending_s=0.2, running_s=0.5, sync_latency_s=0),
            {"model": "qwen-image-plus", "prompt": "x", "then": [{"prompt": "y"}, {"prompt": "z"}]},
            Capability.TEXT_TO_IMAGE,
        ),
    ]
    print(f"{'job':<34} {'polls':>5} {'transitions':>11} {'invocations':>11} {'SFN $/job':>10}")
    for label, faults, payload, capability in cases:
        with (
            EmulatorServer(faults=faults) as emulator,
            in_process_stack(emulator, template_parameters={"LogLevel": "WARNING"}) as stack,
        ):
            started = time.monotonic()
            transitions, invocations, polls = run(stack, payload, capability)
            print(
                f"{label:<34} {polls:>5} {transitions:>11} {invocations:>11} "
                f"{transitions * STATE_TRANSITION_USD:>10.6f}   ({time.monotonic() - started:.1f} s,"
                " poll interval 1 s)"
            )


if __name__ == "__main__":
    main()
