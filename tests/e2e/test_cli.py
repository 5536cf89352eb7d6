"""The `qwen-edit` command as a person runs it."""

from __future__ import annotations

import json
import re
import subprocess

import httpx

from qwen_edit.adapters.dashscope import DashScopeClient
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.provider import ProviderRequest
from qwen_edit_cli.local.samples import png_size

from processes import ServedProcess


def test_fake_dashscope_serves_until_sigterm(tmp_path, qwen_edit_cmd):
    server = ServedProcess(
        [
            *qwen_edit_cmd,
            "fake-dashscope",
            "--port",
            "0",
            "--api-key",
            "sk-cli",
            "--faults",
            '{"sync_latency_s": 0}',
        ],
        tmp_path,
    )
    urls = server.start()
    try:
        assert json.loads(server.log_file.read_text().splitlines()[0]) == urls
        client = DashScopeClient("sk-cli", base_url=urls["api_base_url"])
        result = client.submit(
            ProviderRequest(
                model="qwen-image-2.0",
                capability=Capability.TEXT_TO_IMAGE,
                prompt="a kite",
                parameters={"size": "768*512"},
            ),
            asynchronous=False,
        )
        assert png_size(client.download(result.image_urls[0])) == (768, 512)
        faults = httpx.get(urls["url"] + "/_emulator/faults").json()
        assert faults["sync_latency_s"] == 0
    finally:
        server.stop(timeout=10)


def test_local_demo_writes_pngs_and_exits_zero(tmp_path, qwen_edit_cmd):
    out = tmp_path / "demo-output"
    result = subprocess.run(
        [*qwen_edit_cmd, "local", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all three jobs succeeded" in result.stdout
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == ["api-edit.png", "generation.png", "upload-harbor.png"]
    assert png_size((out / "generation.png").read_bytes()) == (1328, 1328)
    # The metrics summary, as the stack stops: three jobs in, three out, no failed call.
    assert "metrics (namespace qwen-edit" in result.stderr
    finished = re.findall(r"JobsFinished .*Status=succeeded +(\d+)", result.stderr)
    assert sum(map(int, finished)) == 3
    assert re.search(r"ProviderCallFailed +- +0 of 3", result.stderr), result.stderr


def test_bad_usage_exits_non_zero(qwen_edit_cmd):
    result = subprocess.run([*qwen_edit_cmd, "nonsense"], capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice" in result.stderr
