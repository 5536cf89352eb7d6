"""Added latency: from the provider finishing a job to its output being in S3, and to its
webhook arriving, for sync edits and async text-to-image jobs (median and p95), against the
poll interval.

    .venv/bin/python benchmarks/latency.py [--jobs 15] [--poll-interval 2]
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from qwen_edit.domain.catalog import Capability
from qwen_edit_cli.emulator.faults import Faults
from qwen_edit_cli.emulator.server import EmulatorServer
from qwen_edit_cli.local.drive import start, wait_execution, wait_until
from qwen_edit_cli.local.inprocess import Pump, in_process_stack
from qwen_edit_cli.local.samples import data_url

from report import median, percentile, write_section


def receiver() -> tuple[ThreadingHTTPServer, dict[str, float]]:
    arrivals: dict[str, float] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            arrivals.setdefault(self.headers["webhook-id"].removeprefix("msg_"), time.time())
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, arrivals


def run(kind: str, jobs: int, poll_interval: int) -> tuple[list[float], list[float]]:
    faults = Faults(sync_latency_s=1.0, pending_s=0.5, running_s=2.5)
    server, arrivals = receiver()
    hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
    with (
        EmulatorServer(faults=faults) as emulator,
        in_process_stack(
            emulator, poll_interval=poll_interval, template_parameters={"LogLevel": "WARNING"}
        ) as stack,
    ):
        pump = Pump(stack)
        pump.start()
        submitted, rng = [], random.Random(11)
        for index in range(jobs):
            if kind == "sync":
                payload = {
                    "model": "qwen-image-edit-plus",
                    "prompt": f"x{index}",
                    "images": [data_url()],
                    "webhook_url": hook,
                }
                submitted.append(start(stack, payload))
            else:
                # Tasks of varied length finish at every phase of the poll cycle, as real ones do.
                emulator.fake.faults.running_s = rng.uniform(1.5, 4.5)
                payload = {"model": "qwen-image-plus", "prompt": f"x{index}", "webhook_url": hook}
                submitted.append(start(stack, payload, Capability.TEXT_TO_IMAGE))
            time.sleep(1.2)  # one at a time: latency, not queueing behind the rate limit
        for job in submitted:
            wait_execution(stack, job.id, timeout=300)
        wait_until(lambda: len(arrivals) == jobs, timeout=120, what="every webhook")
        pump.stop()
        to_s3, to_webhook = [], []
        for job in submitted:
            done = stack.ctx.jobs.get(job.id)
            assert done.provider is not None and done.completed_at is not None, done
            finished: float | None
            if kind == "sync":
                finished = next(
                    c["at"]
                    for c in emulator.fake.calls
                    if c["request_id"] == done.provider.request_id
                )
            else:
                assert done.provider.task_id is not None, done.provider
                finished = emulator.fake.task_end(done.provider.task_id)
            assert finished is not None, f"the provider has no end time for {job.id}"
            to_s3.append(done.completed_at.timestamp() - finished)
            to_webhook.append(arrivals[job.id] - finished)
    server.shutdown()
    return to_s3, to_webhook


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=15)
    parser.add_argument("--poll-interval", type=int, default=2)
    args = parser.parse_args()
    lines = []
    for kind in ("sync", "async"):
        to_s3, to_webhook = run(kind, args.jobs, args.poll_interval)
        row = (
            median(to_s3),
            percentile(to_s3, 0.95),
            median(to_webhook),
            percentile(to_webhook, 0.95),
        )
        print(
            f"{kind:<5}  to S3: median {row[0]:.2f} s, p95 {row[1]:.2f} s   to the webhook: "
            f"median {row[2]:.2f} s, p95 {row[3]:.2f} s   (poll interval {args.poll_interval} s)"
        )
        lines.append(
            f"| {kind} | {row[0]:.2f} s | {row[1]:.2f} s | {row[2]:.2f} s | {row[3]:.2f} s |"
        )
    write_section(
        "latency",
        f"""
## Added latency

The time from the provider finishing a job (the sync answer; an async task's end time) to its
outputs being in S3 and its record complete, and to its signed webhook reaching a receiver on
loopback. There are {args.jobs} jobs of each kind, submitted one at a time so they do not queue
behind the rate limit; async tasks take 2–5 s at the provider, so they end at every phase of the
poll cycle. Polls are every {args.poll_interval} s.

| job | to S3, median | to S3, p95 | to the webhook, median | to the webhook, p95 |
|---|---|---|---|---|
{chr(10).join(lines)}

Sync jobs add only Store (download, PNGs to S3, the conditional completion). Async jobs add the
wait for the next poll, on average half the poll interval and at most all of it: with the
deployment's 10 s, about 5 s on average and up to 10 s. The webhook comes after Notify and one
trip through the webhook queue; in a deployment the SQS poller adds up to a second.
""",
    )


if __name__ == "__main__":
    main()
