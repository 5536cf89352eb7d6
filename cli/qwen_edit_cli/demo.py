"""`qwen-edit local demo` (what `make demo` runs): the local stack, offline, and four kinds of
job through it: an upload-triggered recipe edit (S3), an API edit with two input images, an
async text-to-image job, and a three-step chain (generate, then edit, then edit). Outputs land
in demo-output/; a summary says how each went."""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from PIL import Image, ImageDraw

from qwen_edit_cli.client import ApiError, QwenEditClient
from qwen_edit_cli.local.serve import Ready, local_service

RECIPE = {
    "model": "qwen-image-edit-plus",
    "prompt": "Turn the photo into a watercolor painting",
    "seed": 7,
}


def sample_photo(
    sky: tuple[int, int, int] = (135, 190, 235), thing: tuple[int, int, int] = (200, 80, 60)
) -> bytes:
    """A small stand-in photo, so the demo needs no files and no network."""
    image = Image.new("RGB", (960, 640), sky)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 460, 960, 640], fill=(90, 160, 80))
    draw.ellipse([700, 60, 840, 200], fill=(250, 220, 90))
    draw.rectangle([260, 300, 520, 470], fill=thing)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def upload_triggered(ready: Ready, out_dir: Path) -> tuple[str, str, list[Path]]:
    s3 = boto3.client("s3", endpoint_url=ready.s3_endpoint_url, region_name=ready.region)
    s3.put_object(
        Bucket=ready.input_bucket, Key="recipes/watercolor.json", Body=json.dumps(RECIPE).encode()
    )
    s3.put_object(
        Bucket=ready.input_bucket, Key="inbox/watercolor/demo/harbor.jpg", Body=sample_photo()
    )
    prefix = "outbox/watercolor/demo/harbor"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for suffix in (".json", ".error.json"):
            try:
                record = json.loads(
                    s3.get_object(Bucket=ready.output_bucket, Key=prefix + suffix)["Body"].read()
                )
            except s3.exceptions.NoSuchKey:
                continue
            if suffix == ".error.json":
                return "rejected", record["error"]["message"], []
            path = out_dir / "upload-harbor.png"
            path.write_bytes(
                s3.get_object(Bucket=ready.output_bucket, Key=f"{prefix}.png")["Body"].read()
            )
            return str(record["status"]), str(record["model"]), [path]
        time.sleep(0.5)
    return "timed out", str(RECIPE["model"]), []


def api_job(
    client: QwenEditClient, out_dir: Path, kind: str, body: dict[str, Any], name: str
) -> tuple[str, str, list[Path]]:
    job = client.create(kind, body)
    job = client.wait(job["id"], timeout=120)
    saved = client.download(job, out_dir, name) if job["status"] == "succeeded" else []
    return job["status"], job["model"], saved


def run_demo(out_dir: Path, serve: bool = False) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    print(
        "qwen-edit demo: starting the local stack (emulated AWS, the DashScope emulator, "
        "the REST API)…",
        flush=True,
    )
    started = time.monotonic()
    operator_key = f"qe-local-operator-{secrets.token_hex(8)}"  # sees the upload-triggered job
    # The handlers' own logs stay quiet (LogLevel, as in a deployment): the summary says it all.
    with (
        local_service(
            port=0,
            poll_interval=1,
            log_level="WARNING",
            operator_keys=[operator_key],
        ) as ready,
        tempfile.TemporaryDirectory() as scratch,
    ):
        print(f"ready in {time.monotonic() - started:.1f} s: {ready.api_url}\n", flush=True)
        client = QwenEditClient(ready.api_url, ready.api_key)
        photos = []
        for name, thing in (("subject.jpg", (200, 80, 60)), ("style.jpg", (60, 80, 200))):
            path = Path(scratch) / name
            path.write_bytes(sample_photo(thing=thing))
            photos.append(path)
        runs: list[tuple[str, Callable[[], tuple[str, str, list[Path]]]]] = [
            ("upload-triggered recipe edit", lambda: upload_triggered(ready, out_dir)),
            (
                "API edit, two input images",
                lambda: api_job(
                    client,
                    out_dir,
                    "edits",
                    {
                        "model": "qwen-image-edit-plus",
                        "seed": 42,
                        "prompt": "Paint the house from Image 1 in the colors of Image 2",
                        "images": [client.upload(p) for p in photos],
                    },
                    "api-edit",
                ),
            ),
            (
                "async text-to-image",
                lambda: api_job(
                    client,
                    out_dir,
                    "generations",
                    {
                        "model": "qwen-image-plus",
                        "seed": 42,
                        "size": "1328*1328",
                        "prompt": "A hand-drawn poster of three puppies playing ball on "
                        "green grass",
                    },
                    "generation",
                ),
            ),
            (
                "chain: generate, edit, edit",
                lambda: api_job(
                    client,
                    out_dir,
                    "generations",
                    {
                        "model": "qwen-image-plus",
                        "seed": 42,
                        "prompt": "A product shot of a blue teapot",
                        "then": [
                            {"prompt": "Put the teapot on a plain white background"},
                            {"prompt": "Add the caption 'Tea time' under the teapot"},
                        ],
                    },
                    "chain",
                ),
            ),
        ]
        print(f"{'job':<30} {'model':<22} {'status':<10} {'seconds':>7}  outputs")
        failures = 0
        for label, run in runs:
            began = time.monotonic()
            try:
                status, model, saved = run()
            except ApiError as error:
                status, model, saved = "error", error.code, []
                print(f"  {label}: {error.message}")
            failures += status != "succeeded"
            print(
                f"{label:<30} {model:<22} {status:<10} {time.monotonic() - began:>7.1f}  "
                f"{', '.join(str(p) for p in saved) or '-'}",
                flush=True,
            )
        verdict = (
            f"{failures} job(s) did not succeed" if failures else f"all {len(runs)} jobs succeeded"
        )
        print(f"\n{verdict} in {time.monotonic() - started:.1f} s; outputs in {out_dir}/")
        console = ready.api_url + "/console"
        print(
            f"\nweb console: {console}\n"
            f"  API key of the API jobs:             {ready.api_key}\n"
            f"  operator key (the upload-triggered): {operator_key}",
            flush=True,
        )
        if serve:
            print("the local stack keeps serving the console; Ctrl-C stops it", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
    return 1 if failures else 0
