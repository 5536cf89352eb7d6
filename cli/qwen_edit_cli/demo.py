"""`qwen-edit local demo`: the provider path end to end, offline, against the emulator.

Today it runs one sync edit and one async text-to-image task through the real DashScope client
and request validation, and saves the PNGs; it grows into the full local stack demo (SPEC §7).
"""

from __future__ import annotations

import io
import time
from pathlib import Path

from PIL import Image, ImageDraw

from qwen_edit.catalog import Capability
from qwen_edit.images import InlineImage
from qwen_edit.providers.base import ImageProvider, ProviderError, ProviderTask
from qwen_edit.providers.dashscope import DashScopeClient
from qwen_edit.requests import ValidRequest, direct_url, parse_request
from qwen_edit_cli.emulator.server import EmulatorServer


def sample_photo() -> bytes:
    """A small stand-in photo so the demo needs no files and no network."""
    image = Image.new("RGB", (960, 640), (135, 190, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 460, 960, 640], fill=(90, 160, 80))
    draw.ellipse([700, 60, 840, 200], fill=(250, 220, 90))
    draw.rectangle([260, 300, 520, 470], fill=(200, 80, 60))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def run_job(client: ImageProvider, job: ValidRequest, poll_interval: float) -> ProviderTask:
    task = client.submit(job.to_provider(direct_url), asynchronous=job.spec.is_async)
    while not task.status.is_final:
        time.sleep(poll_interval)
        task = client.fetch(task.task_id)
    return task


def run_demo(out_dir: Path, *, poll_interval: float = 1.0) -> int:
    photo = InlineImage("image/jpeg", sample_photo(), "jpeg").as_data_url()
    jobs = {
        "edit": parse_request(Capability.EDIT, {
            "model": "qwen-image-edit-plus", "images": [photo], "n": 2, "seed": 7,
            "prompt": "Turn the red box into a wooden cabin and make it dusk"},
            default_model="qwen-image-edit-plus"),
        "generation": parse_request(Capability.TEXT_TO_IMAGE, {
            "model": "qwen-image-plus", "size": "1328*1328", "seed": 42,
            "prompt": "A hand-drawn poster of three puppies playing ball on green grass"},
            default_model="qwen-image-plus"),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"qwen-edit demo: DashScope emulator on loopback, outputs in {out_dir}/\n")
    print(f"{'job':<11} {'model':<22} {'mode':<6} {'status':<10} {'seconds':>7}  outputs")
    failures = 0
    with EmulatorServer() as emulator:
        client = DashScopeClient("sk-demo", base_url=emulator.api_base_url)
        for name, job in jobs.items():
            started = time.monotonic()
            try:
                task = run_job(client, job, poll_interval)
                if task.status.value != "SUCCEEDED":
                    raise ProviderError(task.error_code or task.status.value,
                                        task.error_message or "the task did not succeed")
                paths = []
                for index, url in enumerate(task.image_urls, start=1):
                    path = out_dir / f"{name}-{index}.png"
                    path.write_bytes(client.download(url))
                    paths.append(str(path))
                status, detail = "succeeded", ", ".join(paths)
            except ProviderError as error:
                failures += 1
                status, detail = "failed", f"{error.code}: {error.message}"
            mode = "async" if job.spec.is_async else "sync"
            print(f"{name:<11} {job.spec.id:<22} {mode:<6} {status:<10} "
                  f"{time.monotonic() - started:>7.2f}  {detail}")
        client.close()
    print("\nall jobs succeeded" if not failures else f"\n{failures} job(s) failed")
    return 1 if failures else 0
