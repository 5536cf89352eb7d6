"""Cost per job beyond the model's own price: billed state transitions, Lambda invocations and
GB-seconds, DynamoDB, S3, SQS, EventBridge and Secrets Manager requests. All are read from real
executions in the local stack, each job submitted through the real API handler (requests
counted where botocore makes them). The jobs: a
sync edit, and async jobs that take 30 s and 120 s at the provider, polled every 10 s. Time
is scaled 10× down (1 s polls), which keeps the number of polls.

    .venv/bin/python benchmarks/cost_per_job.py [--price-per-image 0.03]
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from unittest import mock

from botocore.client import BaseClient

from qwen_edit_cli.emulator.faults import Faults
from qwen_edit_cli.emulator.server import EmulatorServer
from qwen_edit_cli.local.drive import billed_transitions, call, history, wait_execution
from qwen_edit_cli.local.inprocess import in_process_stack
from qwen_edit_cli.local.template import load_template

from report import DEFAULT_PRICE_PER_IMAGE, PRICES, write_section

SCALE = 10  # 1 s here is 10 s in a deployment
READS = {"GetItem", "Query", "Scan", "BatchGetItem"}
JOBS: list[tuple[str, str, dict[str, Any], int]] = [
    # label, sample event, body, provider time in a deployment (seconds)
    (
        "sync edit (qwen-image-edit-plus)",
        "api-create-edit",
        {"model": "qwen-image-edit-plus", "prompt": "x", "images": ["https://example.com/a.png"]},
        0,
    ),
    (
        "async text-to-image, 30 s at the provider",
        "api-create-generation",
        {"model": "qwen-image-plus", "prompt": "x"},
        30,
    ),
    (
        "async text-to-image, 120 s at the provider",
        "api-create-generation",
        {"model": "qwen-image-plus", "prompt": "x"},
        120,
    ),
]


@dataclass(frozen=True)
class Figures:
    """One job's billed AWS usage."""

    label: str
    transitions: int
    invocations: int
    gb_seconds: float
    dynamo_reads: int
    dynamo_writes: int
    s3_puts: int
    s3_gets: int
    sqs: int
    events: int
    secrets: int
    polls: int

    @property
    def usd(self) -> float:
        return (
            self.transitions * PRICES["state_transition"]
            + self.invocations * PRICES["lambda_request"]
            + self.gb_seconds * PRICES["lambda_gb_second"]
            + self.dynamo_reads * PRICES["dynamodb_read"]
            + self.dynamo_writes * PRICES["dynamodb_write"]
            + self.s3_puts * PRICES["s3_put"]
            + self.s3_gets * PRICES["s3_get"]
            + self.sqs * PRICES["sqs_request"]
            + self.events * PRICES["eventbridge_event"]
            + self.secrets * PRICES["secrets_manager_call"]
        )


def memory_of(function_name: str) -> int:
    template = load_template()
    logical = function_name.removeprefix("qwen-edit-local-")
    props = template["Resources"][logical]["Properties"]
    return int(props.get("MemorySize", template["Globals"]["Function"]["MemorySize"]))


def measure(label: str, sample: str, body: dict[str, Any], provider_seconds: int) -> Figures:
    running = max(0.0, provider_seconds / SCALE - 0.5)
    faults = Faults(
        sync_latency_s=0.05, pending_s=0.5 if provider_seconds else 0, running_s=running
    )
    requests: Counter[str] = Counter()
    durations: list[tuple[str, float]] = []
    real_api_call = BaseClient._make_api_call

    def counted_api_call(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        requests[f"{client.meta.service_model.service_name}.{operation}"] += 1
        return real_api_call(client, operation, params)

    with (
        EmulatorServer(faults=faults) as emulator,
        mock.patch.object(BaseClient, "_make_api_call", counted_api_call),
        in_process_stack(emulator, template_parameters={"LogLevel": "WARNING"}) as stack,
    ):
        real_call = stack.dispatcher.call

        def timed_call(function_name: str, event: dict[str, Any], context: Any) -> Any:
            started = time.perf_counter()
            try:
                return real_call(function_name, event, context)
            finally:
                durations.append((function_name, time.perf_counter() - started))

        with mock.patch.object(stack.dispatcher, "call", timed_call):
            requests.clear()
            answer = call(stack, sample, body=body)
            job = answer.body
            assert isinstance(job, dict) and "id" in job, f"the API refused the job: {answer}"
            wait_execution(stack, job["id"], timeout=300)
            events = history(stack, job["id"])
        # The interpreter's own Lambda invokes and the benchmark's history reads are not the
        # job's requests; invocations are counted by the dispatcher instead.
        counted = Counter(
            {k: v for k, v in requests.items() if not k.startswith(("lambda.", "sfn."))}
        )
        counted["sfn.StartExecution"] = requests["sfn.StartExecution"]
    gb_seconds = sum(
        math.ceil(seconds * 1000) / 1000 * memory_of(name) / 1024 for name, seconds in durations
    )
    dynamo_reads = sum(
        n for k, n in counted.items() if k.startswith("dynamodb.") and k.split(".")[1] in READS
    )
    dynamo_writes = sum(n for k, n in counted.items() if k.startswith("dynamodb.")) - dynamo_reads
    return Figures(
        label=label,
        transitions=billed_transitions(events),
        invocations=len(durations),
        gb_seconds=gb_seconds,
        dynamo_reads=dynamo_reads,
        dynamo_writes=dynamo_writes,
        s3_puts=sum(n for k, n in counted.items() if k in ("s3.PutObject",)),
        s3_gets=sum(n for k, n in counted.items() if k.startswith("s3.") and k != "s3.PutObject"),
        sqs=sum(n for k, n in counted.items() if k.startswith("sqs.")),
        events=counted["events.PutEvents"],
        secrets=counted["secretsmanager.GetSecretValue"],
        polls=sum(
            1 for e in events if e["type"] == "LambdaFunctionScheduled" and "PollFunction" in str(e)
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--price-per-image", type=float, default=DEFAULT_PRICE_PER_IMAGE)
    price = parser.parse_args().price_per_image
    rows = [measure(*job) for job in JOBS]
    lines = []
    for r in rows:
        share = r.usd / price * 100
        print(
            f"{r.label:<44} polls {r.polls:>2}  transitions {r.transitions:>2}  "
            f"invocations {r.invocations:>2}  GB-s {r.gb_seconds:.3f}  "
            f"DynamoDB r/w {r.dynamo_reads}/{r.dynamo_writes}  S3 put/get "
            f"{r.s3_puts}/{r.s3_gets}  ${r.usd:.6f} = {share:.2f}% of ${price}/image"
        )
        lines.append(
            f"| {r.label} | {r.polls} | {r.transitions} | {r.invocations} | "
            f"{r.gb_seconds:.3f} | {r.dynamo_reads} / {r.dynamo_writes} | "
            f"{r.s3_puts} / {r.s3_gets} | {r.events} | {r.secrets} | "
            f"${r.usd:.6f} | {share:.2f}% |"
        )
    biggest = max(rows, key=lambda r: r.usd)
    sfn_share = biggest.transitions * PRICES["state_transition"] / biggest.usd * 100
    slower = biggest.transitions - math.ceil(biggest.polls / 2)  # half the polls at 20 s
    writes_share = biggest.dynamo_writes * PRICES["dynamodb_write"] / biggest.usd * 100
    write_section(
        "cost",
        f"""
## Cost per job

Each job is submitted through the real API handler and runs through the real workflow. Every
AWS request is counted where botocore makes it. Lambda GB-seconds are each invocation's measured time,
rounded up to the millisecond, times the function's memory in `template.yaml`. These are
in-process times, so take them as an order of magnitude. Prices are the us-east-1 list prices
in `benchmarks/report.py`, shown as a share of **${price} per output image** for the model
itself. That figure is not in the provider's documentation here; pass your price with
`--price-per-image`.

| job | polls | billed transitions | Lambda invocations | GB-s | DynamoDB reads / writes | S3 PUT / GET | events | secret reads | AWS cost | share of the image price |
|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(lines)}

The biggest cost is Step Functions: for the 120 s job, transitions are {sfn_share:.0f}% of what
AWS adds. Each poll is one transition ($0.000025), thanks to the Retry-based poll loop; a
Wait → Task → Choice loop would have cost three. A 20 s poll interval would take the 120 s job
from {biggest.transitions} to {slower} transitions, at the price of up to 10 s more latency.
DynamoDB writes are {writes_share:.0f}% of it: besides the record's status changes and the
queue entry, each step notes the job's timeline and counts its provider calls (one write per
poll). The secret is read once per container (Powertools caches it for 5 minutes), so in a
warm deployment it costs less than shown.
""",
    )


if __name__ == "__main__":
    main()
