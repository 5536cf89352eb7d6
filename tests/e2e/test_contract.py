"""The contract as outside tools read it: Schemathesis fuzzes `qwen-edit local serve` from
docs/openapi.json, and a client generated from it by openapi-python-client type-checks and runs
a job end to end.

Fuzzed URLs name hosts that the service resolves, so all of it runs in a loopback-only network
namespace, where not even a DNS query leaves the machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from loopback_only import inside, outside, rerun_in_namespace

from processes import serving

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KEY = "qe-contract-tenant"
SERVE = [
    *(sys.executable, "-m", "qwen_edit_cli.main", "local", "serve"),
    *("--port", "0", "--poll-interval", "1", "--api-key", KEY),
    # The fuzzer outruns a key's 10 requests a second, and a 429 to a valid request fails its
    # positive_data_acceptance check: the throttle is tested in test_rate_limits.py.
    *("--parameter-overrides", "ApiThrottleRateLimit=10000", "ApiThrottleBurstLimit=10000"),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with serving(SERVE, tmp_path_factory.mktemp("serve")) as ready:
        yield ready


@outside
def test_the_contract_holds_in_a_loopback_only_namespace():
    rerun_in_namespace(__file__)


@inside
def test_schemathesis_finds_nothing(served):
    # Every check but `unsupported_method`: API Gateway itself answers methods a resource does
    # not declare (403 MissingAuthenticationToken, as 404 NotFound in our envelope), not the API.
    # The seed is fixed so that a run is reproducible; `st run` without it explores further.
    # One worker: Python 3.11's ast module can fail ("recursion depth mismatch") when
    # Hypothesis describes strategies in two threads at once, an error of the tool, not the API.
    command = [
        *(str(BIN / "st"), "run", str(ROOT / "docs" / "openapi.json")),
        *("--url", served["api_url"], "-H", f"x-api-key: {KEY}"),
        *("--checks", "all", "--exclude-checks", "unsupported_method"),
        *("--max-examples", "40", "--seed", "20261126", "--workers", "1"),
        *("--request-timeout", "30"),  # GET /jobs/{id}?wait may take its documented 20 s
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
        "PYTHONPATH": str(Path(__file__).parent),
    }
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-6000:]
    assert "No issues found" in report, report[-6000:]


@inside
def test_a_generated_client_type_checks_and_runs_a_job(tmp_path):
    config = tmp_path / "generator.yaml"
    config.write_text("post_hooks: []\n")  # the code as generated, not reformatted by a linter
    generate = [
        *(str(BIN / "openapi-python-client"), "generate", "--config", str(config)),
        *("--path", str(ROOT / "docs" / "openapi.json"), "--meta", "none"),
        *("--output-path", str(tmp_path / "qwen_edit_client")),
    ]
    made = subprocess.run(generate, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    typed = subprocess.run(
        [str(BIN / "mypy"), "--strict", "--no-incremental", "qwen_edit_client", "use_client.py"],
        cwd=_write_user(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert typed.returncode == 0, typed.stdout + typed.stderr
    # A stack of its own: the fuzzer's hundreds of jobs would be ahead of this one in line.
    (tmp_path / "serve").mkdir()
    with serving(SERVE, tmp_path / "serve") as served:
        used = subprocess.run(
            [sys.executable, "use_client.py", served["api_url"], KEY],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert used.returncode == 0, used.stdout + used.stderr
    job = json.loads(used.stdout)
    assert job["status"] == "succeeded" and len(job["outputs"]) == 2


def _write_user(folder: Path) -> Path:
    """A program as a client's user writes it: the catalog, one job to its end, a 404."""
    (folder / "use_client.py").write_text(
        """\
import json
import sys
import time

from qwen_edit_client import AuthenticatedClient
from qwen_edit_client.api.default import create_generation, get_job, list_models
from qwen_edit_client.models import (
    ErrorEnvelope, GenerationRequest, JobStatus, JobView, ModelCatalog,
)

client = AuthenticatedClient(
    base_url=sys.argv[1], token=sys.argv[2], prefix="", auth_header_name="x-api-key"
)
catalog = list_models.sync(client=client)
assert isinstance(catalog, ModelCatalog), catalog
assert any(model.id == "qwen-image-plus" for model in catalog.models)

job = create_generation.sync(client=client, body=GenerationRequest(prompt="a red fox", n=2))
assert isinstance(job, JobView), job
deadline = time.monotonic() + 60
while job.status not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED):
    assert time.monotonic() < deadline, job
    time.sleep(0.5)
    seen = get_job.sync(job.id, client=client)
    assert isinstance(seen, JobView), seen
    job = seen

missing = get_job.sync("no-such-job", client=client)
assert isinstance(missing, ErrorEnvelope) and missing.error.code == "JobNotFound", missing
print(json.dumps(job.to_dict()))
"""
    )
    return folder
