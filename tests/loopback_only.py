"""Tests that feed the service addresses or host names on purpose (SSRF cases, fuzzed URLs) run
in a loopback-only network namespace (`unshare -n`): no packet, DNS queries included, can leave
the machine even if a check failed. One test outside starts pytest on its module inside one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

IN_NAMESPACE = os.environ.get("QWEN_EDIT_LOOPBACK_ONLY") == "1"
inside = pytest.mark.skipif(not IN_NAMESPACE, reason="runs in a loopback-only namespace")
outside = pytest.mark.skipif(IN_NAMESPACE, reason="this is the namespace itself")


def rerun_in_namespace(test_file: str, timeout: float = 900) -> None:
    """Run pytest on `test_file` in a fresh loopback-only namespace; fail with its output."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare or ip is missing: these cases cannot be isolated here")
    command = (
        f"ip link set lo up && exec {sys.executable} -m pytest -q -p no:cacheprovider "
        f"-o addopts= {test_file}"
    )
    result = subprocess.run(
        ["unshare", "-n", "--", "bash", "-c", command],
        cwd=ROOT,
        env={**os.environ, "QWEN_EDIT_LOOPBACK_ONLY": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0 and "unshare failed" in result.stderr:
        pytest.skip(f"no network namespace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout
