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
from qwen_edit_cli.main import main as cli_main

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
    assert "all 4 jobs succeeded" in result.stdout
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == ["api-edit.png", "chain.png", "generation.png", "upload-harbor.png"]
    assert png_size((out / "generation.png").read_bytes()) == (1328, 1328)
    # The metrics summary, as the stack stops: four jobs in, four out, no failed call.
    assert "metrics (namespace qwen-edit" in result.stderr
    finished = re.findall(r"JobsFinished .*Status=succeeded +(\d+)", result.stderr)
    assert sum(map(int, finished)) == 4
    # Submits and polls: none failed.
    assert re.search(r"ProviderCallFailed +- +0 in \d+ data points", result.stderr)


def test_bad_usage_exits_non_zero(qwen_edit_cmd):
    result = subprocess.run([*qwen_edit_cmd, "nonsense"], capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_the_cli_waits_out_a_throttle_and_stops_at_a_used_up_quota(tmp_path, qwen_edit_cmd, capsys):
    """The local usage plan: one request a second, two a day. The CLI's request meets a 429
    Throttled, waits its Retry-After of 1 s and goes through; past the quota, the 429's
    Retry-After is a day, which it does not wait: it exits 7 at once. The CLI runs in this
    process, so that its first request follows the one that empties the bucket within the
    second (a new interpreter can take longer than that to start on a loaded machine)."""
    key = "qe-cli-throttled"
    server = ServedProcess(
        [
            *(*qwen_edit_cmd, "local", "serve", "--port", "0", "--api-key", key),
            *("--parameter-overrides", "ApiThrottleRateLimit=1", "ApiThrottleBurstLimit=1"),
            "ApiQuotaPerDay=2",
        ],
        tmp_path,
    )
    ready = server.start()
    try:

        def jobs_list() -> subprocess.CompletedProcess[str]:
            args = ["jobs", "list", "--json", "--api-url", ready["api_url"], "--api-key", key]
            code = cli_main(args)
            out = capsys.readouterr()
            return subprocess.CompletedProcess(args, code, out.out, out.err)

        # Warm the API function first through the keyless console route (no token, no quota):
        # a cold answer can take longer than the second in which the bucket refills.
        assert httpx.get(f"{ready['api_url']}/console").is_success
        assert httpx.get(f"{ready['api_url']}/models", headers={"x-api-key": key}).is_success
        waited = jobs_list()  # the bucket is empty: throttled once, then through
        assert waited.returncode == 0, waited.stderr
        assert json.loads(waited.stdout)["jobs"] == []
        assert "429 Throttled (throttle limit); waiting 1 s as Retry-After says" in waited.stderr
        over = jobs_list()  # the quota of 2 is used (it may wait out the throttle first)
        assert over.returncode == 7, over.stderr
        assert json.loads(over.stdout)["error"]["code"] == "QuotaExceeded"
        assert "waiting 86400" not in over.stderr
    finally:
        server.stop(timeout=10)
