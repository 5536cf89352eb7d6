"""Cold start: for each Lambda handler, a fresh Python process's import and AWS client set-up
time (median of 5), beside a bare `import boto3` plus one client measured in the same run;
and the size of each function and of the layer as built for arm64 / python3.12.

    .venv/bin/python benchmarks/cold_start.py
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from report import ROOT, median, write_section

RUNS = 5
ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "x",
    "DASHSCOPE_API_KEY_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:k",
    "JOBS_TABLE": "jobs",
    "LIMITS_TABLE": "limits",
    "INPUT_BUCKET": "in",
    "OUTPUT_BUCKET": "out",
    "WEBHOOK_QUEUE_URL": "https://sqs/q",
    "WEBHOOK_DEAD_LETTER_QUEUE_URL": "https://sqs/d",
    "WEBHOOK_SECRET_ARN": "arn:s",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:1:stateMachine:m",
    "IDEMPOTENCY_TABLE": "idem",
    "QUEUE_TABLE": "queue",
    "DISPATCH_FUNCTION_NAME": "dispatcher",
    "POWERTOOLS_SERVICE_NAME": "qwen-edit",
}

HANDLER = """
import importlib.util, os, sys, time
os.environ.update({env!r})
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec); sys.modules["app"] = module
spec.loader.exec_module(module)
from qwen_edit import runtime
runtime.context()  # what the first invocation sets up: every AWS client of the function
print(time.perf_counter() - started)
"""
BASELINE = """
import os, time
os.environ.update({env!r})
started = time.perf_counter()
import boto3
boto3.client("s3")
print(time.perf_counter() - started)
"""


def timed(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def zipped_size(folder: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(folder))
    return len(buffer.getvalue())


def layer_size() -> tuple[int, int] | None:
    """What `sam build` puts in the layer: the requirements for arm64 and python3.12, plus the
    qwen_edit package, under python/. None when the wheels cannot be fetched."""
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "python"
        fetched = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--target",
                str(target),
                "--platform",
                "manylinux2014_aarch64",
                "--python-version",
                "3.12",
                "--implementation",
                "cp",
                "--only-binary=:all:",
                "-r",
                str(ROOT / "layers/core/requirements.txt"),
            ],
            capture_output=True,
            text=True,
        )
        if fetched.returncode != 0:
            return None
        shutil.copytree(
            ROOT / "layers/core/qwen_edit",
            target / "qwen_edit",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        unzipped = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        return unzipped, zipped_size(Path(scratch))


def main() -> None:
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    functions = sorted(p.parent for p in (ROOT / "functions").glob("*/app.py"))
    rows = []
    for function in functions:
        code = HANDLER.format(env=ENV, path=str(function / "app.py"))
        baseline = median([timed(BASELINE.format(env=ENV)) for _ in range(RUNS)])
        handler = median([timed(code) for _ in range(RUNS)])
        rows.append((function.name, handler, baseline, zipped_size(function)))
        print(
            f"{function.name:<15} {handler * 1000:7.0f} ms   boto3+client {baseline * 1000:6.0f} ms"
            f"   ratio {handler / baseline:4.1f}   function zip {zipped_size(function):>6} B"
        )
    layer = layer_size()
    layer_text = (
        "not measured (the arm64 wheels could not be fetched)"
        if layer is None
        else f"{layer[0] / 1e6:.1f} MB unzipped, {layer[1] / 1e6:.1f} MB zipped"
    )
    print(f"layer: {layer_text}")
    table = "\n".join(
        f"| `{name}` | {h * 1000:.0f} ms | {b * 1000:.0f} ms | {h / b:.1f}× | {size:,} B |"
        for name, h, b, size in rows
    )
    slowest = max(rows, key=lambda r: r[1])
    write_section(
        "cold-start",
        f"""
## Cold start

A fresh process imports the handler and sets up its AWS clients (`runtime.context()`, what the
first invocation does), median of {RUNS}. It is measured beside a bare `import boto3` plus one
client, also a median of {RUNS}, in the same run.

| function | import + clients | `import boto3` + 1 client | ratio | function zip |
|---|---|---|---|---|
{table}

The layer as `sam build` makes it (arm64, python3.12: the pinned requirements plus
`qwen_edit`): {layer_text}. The slowest start is `{slowest[0]}` at {slowest[1] * 1000:.0f} ms,
{slowest[1] / slowest[2]:.1f}× a bare boto3 client. What a handler adds to that client is the
core package with its dependencies (pydantic, Powertools, httpx) and its other AWS clients.
""",
    )


if __name__ == "__main__":
    main()
