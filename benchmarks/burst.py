"""Burst: 200 uploads at once for qwen-image-edit-plus (the provider allows 2 per second) and 10
API jobs for qwen-image-2.0-pro (2 per minute), together, against the emulator with the
provider's real limits (and, unless --no-faults, 3% injected 429s and 3% 5xx). Ten seconds in, a
second tenant sends 3 API jobs for qwen-image-edit-plus. It reports the time to drain against
the provider-limited minimum, 429s seen, jobs lost, provider calls per job, duplicate outputs,
and how soon the second tenant's jobs started, and draws the run as docs/burst.png.

    .venv/bin/python benchmarks/burst.py [--uploads 200] [--pro-jobs 10] [--no-faults]
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from qwen_edit.app import service
from qwen_edit.domain.admission import DEFAULT_MARGIN_SECONDS
from qwen_edit.domain.catalog import Capability, get_model
from qwen_edit.domain.jobs import UPLOAD_TENANT, Job, JobSource, JobStatus
from qwen_edit_cli.emulator.faults import Faults
from qwen_edit_cli.local.inprocess import Pump, in_process_stack
from qwen_edit_cli.local.samples import image_bytes

from report import ROOT, write_section

CHART = ROOT / "docs" / "burst.png"


class EmulatorProcess:
    """The emulator in a process of its own (`qwen-edit fake-dashscope`), so that it stamps
    calls as they arrive, not when the stack's interpreter lets it run."""

    def __init__(self, faults: Faults):
        self.faults = faults

    def __enter__(self) -> EmulatorProcess:
        ready = Path(tempfile.mkdtemp()) / "ready.json"
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "qwen-edit"), "fake-dashscope", "--port", "0",
             "--faults", self.faults.model_dump_json(), "--ready-file", str(ready)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.time() + 30
        while not ready.exists() or not ready.read_text():
            assert time.time() < deadline and self.process.poll() is None, "emulator not up"
            time.sleep(0.1)
        document = json.loads(ready.read_text())
        self.url = document["url"]
        self.api_base_url = document["api_base_url"]
        self.task_api_base_url = document["task_api_base_url"]
        return self

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/_emulator/stats", timeout=30).json())

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)


def minimum_seconds(model: str, jobs: int) -> float:
    """The provider-limited time to get `jobs` calls through: `requests` per window."""
    limit = get_model(model).rate_limit
    return (math.ceil(jobs / limit.requests) - 1) * limit.per_seconds


def seconds_since(started: float, job: Job) -> float:
    """When a succeeded job completed, in seconds since the burst started."""
    assert job.completed_at is not None, f"{job.id} succeeded without a completion time"
    return job.completed_at.timestamp() - started


def start_seconds(job: Job) -> float:
    """From acceptance to the provider call (as the dispatcher recorded it)."""
    assert job.provider_call is not None, f"{job.id} was never called"
    return job.provider_call.sent_at.timestamp() - job.created_at.timestamp()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--pro-jobs", type=int, default=10)
    parser.add_argument("--no-faults", action="store_true", help="no injected 429s and 5xx")
    args = parser.parse_args()
    injected = 0.0 if args.no_faults else 0.03
    faults = Faults(
        sync_latency_s=0.3,
        throttle_rate=injected,
        server_error_rate=injected,
        enforce_rate_limits=True,
        random_seed=7,
    )
    with (
        EmulatorProcess(faults) as emulator,
        in_process_stack(
            emulator,  # type: ignore[arg-type]  # what the stack reads of an emulator: its URLs
            template_parameters={"LogLevel": "WARNING"},
            admission_margin=DEFAULT_MARGIN_SECONDS,  # calls are stamped in their own process
        ) as stack,
    ):
        pump = Pump(stack)
        pump.start()
        s3, inbox = boto3.client("s3"), stack.physical["InputBucket"]
        s3.put_object(
            Bucket=inbox,
            Key="recipes/burst.json",
            Body=json.dumps(
                {"model": "qwen-image-edit-plus", "prompt": "Make it a watercolor"}
            ).encode(),
        )
        photo = image_bytes("jpeg", (640, 480))
        photo_url = "data:image/jpeg;base64," + base64.b64encode(photo).decode()
        started = time.time()
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(
                pool.map(
                    lambda i: s3.put_object(
                        Bucket=inbox, Key=f"inbox/burst/{i:03d}.jpg", Body=photo
                    ),
                    range(args.uploads),
                )
            )
            pro = list(
                pool.map(
                    lambda i: service.accept(
                        stack.ctx,
                        service.validate(
                            stack.ctx,
                            Capability.TEXT_TO_IMAGE,
                            {"model": "qwen-image-2.0-pro", "prompt": f"poster {i}"},
                            tenant="bench",
                        ),
                        tenant="bench",
                        source=JobSource.API,
                    )[0],
                    range(args.pro_jobs),
                )
            )
        print(
            f"submitted {args.uploads} uploads and {args.pro_jobs} API jobs in "
            f"{time.time() - started:.1f} s; draining…",
            flush=True,
        )
        time.sleep(max(0.0, started + 10 - time.time()))
        second = [
            service.accept(
                stack.ctx,
                service.validate(
                    stack.ctx,
                    Capability.EDIT,
                    {"model": "qwen-image-edit-plus", "prompt": f"b {i}", "images": [photo_url]},
                    tenant="tenant-b",
                ),
                tenant="tenant-b",
                source=JobSource.API,
            )[0]
            for i in range(3)
        ]
        deadline = time.time() + 1200
        supply: list[tuple[float, int, int]] = []  # (seconds, uploads accepted, edit-plus waiting)
        while True:
            upload_jobs, cursor = [], None
            while True:
                page, cursor = stack.ctx.jobs.list_for_tenant(UPLOAD_TENANT, 100, cursor, None)
                upload_jobs += page
                if not cursor:
                    break
            jobs = upload_jobs + [stack.ctx.jobs.get(j.id) for j in pro]
            done = [j for j in jobs if j.status.is_final]
            waiting = [
                e
                for e in stack.ctx.queue.entries()
                if e.family == "qwen-image-edit-plus" and not e.claimed
            ]
            supply.append((time.time() - started, len(upload_jobs), len(waiting)))
            if len(upload_jobs) == args.uploads and len(done) == len(jobs):
                break
            assert time.time() < deadline, f"{len(done)}/{len(jobs)} done after 20 minutes"
            time.sleep(2)
        pump.stop()
        b_starts = [start_seconds(stack.ctx.jobs.get(j.id)) for j in second]
        all_in = next((at for at, accepted, _ in supply if accepted == args.uploads), None)
        dry = [at for at, accepted, waiting in supply if waiting == 0 and accepted < args.uploads]
        print(
            f"uploads all accepted after {all_in or 0:.0f} s; edit-plus queue empty in {len(dry)} "
            f"of {len(supply)} looks while uploads were still being accepted"
        )
        calls = [c for c in emulator.stats()["calls"] if c["route"] == "multimodal-generation"]
        outbox = s3.list_objects_v2(Bucket=stack.physical["OutputBucket"], Prefix="outbox/burst/")
        pngs = [o["Key"] for o in outbox.get("Contents", []) if o["Key"].endswith(".png")]
        results = s3.list_objects_v2(Bucket=stack.physical["OutputBucket"], Prefix="results/")
        pro_ids = {j.id for j in pro}
        pro_pngs = [
            o["Key"]
            for o in results.get("Contents", [])
            if o["Key"].endswith(".png") and o["Key"].split("/")[1] in pro_ids
        ]

    rows, series = [], {}
    for model, group, outputs in [
        ("qwen-image-edit-plus", upload_jobs, pngs),
        ("qwen-image-2.0-pro", jobs[len(upload_jobs) :], pro_pngs),
    ]:
        finished = sorted(
            seconds_since(started, j) for j in group if j.status is JobStatus.SUCCEEDED
        )
        lost = len(group) - len(finished)
        model_calls = [c for c in calls if c["model"] == model]
        throttled = sum(1 for c in model_calls if c["status"] == 429)
        limited = sum(1 for c in model_calls if c["code"] == "Throttling.RateQuota")
        drain, floor = finished[-1], minimum_seconds(model, len(group))
        limit = get_model(model).rate_limit
        moments = sorted(c["at"] for c in model_calls)
        call_rate = (len(moments) - 1) / (moments[-1] - moments[0]) if len(moments) > 1 else 0.0
        share = call_rate / (limit.requests / limit.per_seconds)
        rows.append(
            (
                model,
                len(group),
                drain,
                floor,
                throttled,
                limited,
                lost,
                len(model_calls) / len(group),
                len(outputs) - len(group),
                share,
            )
        )
        series[model] = finished
        print(
            f"{model:<22} {len(group):>4} jobs  drained in {drain:6.1f} s (provider minimum "
            f"{floor:.0f} s, ratio {drain / max(floor, 1):.2f})  429s {throttled} "
            f"({limited} from the limit)  lost {lost}  calls/job {len(model_calls) / len(group):.2f}"
            f"  duplicate outputs {len(outputs) - len(group)}"
            f"  calls at {share:.2f} of the provider's rate"
        )
    print(
        f"second tenant's jobs, from acceptance to their call: {', '.join(f'{b:.1f} s' for b in b_starts)}"
    )
    table = "\n".join(
        f"| {m} | {n} | {d:.0f} s | {f:.0f} s | {d / max(f, 1):.2f} | {t} ({lim} from the limit) | "
        f"{lost} | {c:.2f} | {dup} | {share:.2f} |"
        for m, n, d, f, t, lim, lost, c, dup, share in rows
    )
    mode = "no faults" if args.no_faults else "3% 429s and 3% 5xx injected"
    chart = CHART.with_name("burst-no-faults.png") if args.no_faults else CHART
    draw(series, chart)
    write_section(
        "burst, no faults" if args.no_faults else "burst",
        f"""
## Burst ({mode})

{args.uploads} uploads land in `inbox/burst/` at once (a `qwen-image-edit-plus` recipe; the
provider allows 2 calls per second). At the same time, {args.pro_jobs} API jobs go to
`qwen-image-2.0-pro` (2 per minute). The emulator, in a process of its own, enforces those
limits per model family{"" if args.no_faults else ", and injects 3% 429s and 3% 5xx on top"}.
The minimum is the provider-limited time for that many calls.

| model | jobs | time to drain | provider-limited minimum | ratio | 429s seen | jobs lost | provider calls per job | duplicate outputs | calls, first to last, against the provider's rate |
|---|---|---|---|---|---|---|---|---|---|
{table}

![jobs done over time against the provider limit]({chart.name})

Ten seconds in, a second tenant sends 3 API jobs for `qwen-image-edit-plus`; from acceptance
to their provider call they waited {", ".join(f"{b:.1f} s" for b in b_starts)} (the goal: within 5 s).

Jobs are never lost and never duplicated: one dispatcher makes every call, a 429 or 5xx puts
the job back at its place in line, and a job is finished only by its conditional completion.
The minimum counts the provider's window only; the stack adds its margin
({DEFAULT_MARGIN_SECONDS} s per window, as in a deployment), and one Python process runs moto,
the workflow and every handler at once, which the last column shows: the calls' own pace.
""",
    )


def draw(series: dict[str, list[float]], chart: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, (model, finished) in zip(axes, series.items(), strict=True):
        limit = get_model(model).rate_limit
        axis.step(finished, range(1, len(finished) + 1), where="post", label="jobs done")
        end = finished[-1] if finished else 1
        axis.plot(
            [0, end],
            [0, end * limit.requests / limit.per_seconds + limit.requests],
            "--",
            label=f"provider limit ({limit.label})",
        )
        axis.set_title(model)
        axis.set_xlabel("seconds since the burst")
        axis.set_ylabel("jobs done")
        axis.set_ylim(0, len(finished) * 1.1 + 1)
        axis.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(chart, dpi=90)
    print(f"chart: {chart.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
