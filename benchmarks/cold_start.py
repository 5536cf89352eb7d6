"""Cold start, measured on what Lambda runs: for each handler, a fresh Python 3.12 process's
import time and first-invocation set-up, against the handler's own floor and a bare boto3 client.

    .venv/bin/python benchmarks/cold_start.py [--runs 7] [--save out.json] [--source CHECKOUT]

What runs. The layer is built by its own build, `make build-CoreLayer` in layers/core (what
`sam build` runs), for the host platform: the pinned packages (layers/core/requirements.txt,
nothing else) and qwen_edit, with the bytecode it ships. functions/<name>/app.py is copied beside
it without bytecode, as `sam build` lays out /opt/python and /var/task. Each process is
`python3.12 -I -S -B` (no dev venv, no site-packages, and, as on Lambda's read-only /opt, no
bytecode written) with those two folders on its path. The same layer stripped of its bytecode, as
SAM's python3.12 build method shipped it before, is measured beside: handler and floor.
(A checkout without layers/core/Makefile gets the packages by pip --target, and one unmeasured
process per script compiles its bytecode, as this script measured before.)

What is timed, inside each process (interpreter start-up is the same for every script):
- handler, import: `import app` (functions/<name>/app.py, as Lambda's `app.handler` does);
- handler, set-up: what its first invocation builds before its first AWS call goes out:
  `runtime.context(name)`, then every port that invocation touches (FIRST_USE below), each built as
  the use case would build it (real boto3 clients, the provider's httpx client, the webhook
  signing key). Secrets are read for real, from a Secrets Manager stand-in that this script serves
  on loopback (AWS_ENDPOINT_URL_SECRETS_MANAGER); no other call is made. The API handler also
  answers one real request (GET /v1/models, which reads no table) through its resolver, so
  Powertools' first-request work counts;
- floor: `import boto3`, exactly the AWS clients of FIRST_USE, httpx with one `httpx.Client()` only
  where the handler calls out, one pydantic model defined and validated once, and for `api` an
  empty `APIGatewayRestResolver(enable_validation=True)`;
- bare: `import boto3; boto3.client("s3")`.

Each round runs, per handler, handler, floor and bare one after the other (so machine load hits
them alike); figures are medians of the rounds. The machine's load average is printed before and
after. One more process per handler, under `-X importtime`, names the five top-level packages that
cost it most (self time).
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from report import ROOT, median, write_section

RUNS = 7
# The figures before issue 24's changes (main at 3478b1b, measured by this script with --source
# and --save): docs/benchmarks.md shows them beside each run's.
BEFORE = Path(__file__).with_name("cold_start_before.json")
PYTHON = "3.12"
ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_LAMBDA_FUNCTION_NAME": "qwen-edit-bench",
    "DASHSCOPE_API_KEY_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:dashscope",
    "JOBS_TABLE": "jobs",
    "LIMITS_TABLE": "limits",
    "INPUT_BUCKET": "in",
    "OUTPUT_BUCKET": "out",
    "WEBHOOK_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/webhooks",
    "WEBHOOK_DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/webhooks-dlq",
    "WEBHOOK_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:webhook",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:1:stateMachine:jobs",
    "IDEMPOTENCY_TABLE": "idempotency",
    "QUEUE_TABLE": "queue",
    "TENANTS_TABLE": "tenants",
    "BUDGETS_TABLE": "budgets",
    "DISPATCH_FUNCTION_NAME": "dispatcher",
    "POWERTOOLS_SERVICE_NAME": "qwen-edit",
    # Set by Lambda's runtime; the handlers freeze what their imports built only there.
    "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
}
# What Lambda sets in a function (LAMBDA_TASK_ROOT) that runs with `Tracing: Active`, as the
# template's do (the trace header and the daemon's address): with them, the first invocation
# imports aws_xray_sdk and patches botocore (qwen_edit/adapters/tracing.py). The daemon's
# address is loopback, where nothing listens.
TRACED = {
    "LAMBDA_TASK_ROOT": "/var/task",
    "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
}


@dataclass(frozen=True)
class FirstUse:
    """What a handler's first invocation builds: the ports (Context attribute names), the AWS
    clients behind them, and whether it calls out over HTTP (the provider, a webhook)."""

    ports: tuple[str, ...]
    clients: tuple[str, ...]
    calls_out: bool = False
    batch: bool = False  # an SQS consumer: Powertools' batch processor
    note: str = ""
    then: str = ""  # what else the first invocation does before its first call (Python)


# The usual first invocation of each function (app/*.py), read from its use case.
FIRST_USE = {
    "admit": FirstUse(
        ("jobs", "queue", "dispatch_lease", "wake_dispatcher", "tracing"),
        ("dynamodb", "lambda"),
        note="loads the job, queues it, wakes the dispatcher",
    ),
    "dispatch": FirstUse(
        ("dispatch_lease", "queue", "limits", "jobs", "callbacks", "provider", "metrics"),
        ("dynamodb", "stepfunctions", "secretsmanager"),
        calls_out=True,
        note="takes the lease, calls the provider, answers the workflow",
    ),
    "poll": FirstUse(
        ("jobs", "metrics", "provider", "tracing"),
        ("dynamodb", "secretsmanager"),
        calls_out=True,
        note="asks the provider for the task",
    ),
    "store": FirstUse(
        ("jobs", "provider", "objects", "tracing"),
        ("dynamodb", "secretsmanager", "s3"),
        calls_out=True,
        note="downloads the images, puts them in S3",
    ),
    "record_failure": FirstUse(
        ("jobs", "limits", "objects", "tracing"),
        ("dynamodb", "s3"),
        note="fails the job, writes its record",
    ),
    "notify": FirstUse(
        ("jobs", "events", "metrics", "tracing"),
        ("dynamodb", "events"),
        note="a job without a webhook: one event",
    ),
    "reconcile": FirstUse(
        ("jobs", "queue", "metrics", "executions", "tracing"),
        ("dynamodb", "stepfunctions"),
        note="the 5-minute sweep",
    ),
    "trigger": FirstUse(
        ("objects", "jobs", "queue", "executions", "metrics", "tracing"),
        ("s3", "dynamodb", "stepfunctions"),
        batch=True,
        note="reads the recipe, records the job, starts it",
    ),
    "intake": FirstUse(
        ("jobs", "queue", "executions", "metrics", "tracing"),
        ("dynamodb", "stepfunctions"),
        batch=True,
        note="records the job, starts it",
    ),
    "webhook": FirstUse(
        ("jobs", "webhook_secret", "webhook_sender", "resolve", "metrics", "tracing"),
        ("dynamodb", "secretsmanager"),
        calls_out=True,
        batch=True,
        note="signs and posts one delivery",
        then="from standardwebhooks import Webhook\n"
        "Webhook(ctx.webhook_secret()).sign('msg_1', __import__('datetime').datetime.now(), '{}')",
    ),
    "api": FirstUse(
        ("jobs", "queue", "executions", "metrics", "tracing"),
        ("dynamodb", "stepfunctions"),
        note="GET /v1/models answered, plus the clients of POST /v1/edits",
    ),
}

TIMER = """
import json, os, sys, time
sys.path[:0] = {paths!r}
os.environ.update({env!r})
started, cpu_started = time.perf_counter(), time.process_time()
{body}
print(json.dumps(dict(marks, total=time.perf_counter() - started, cpu=time.process_time() - cpu_started)))
"""

HANDLER = """
import app
marks = {{"import": time.perf_counter() - started}}
from qwen_edit import runtime
ctx = runtime.context({name!r})
for port in {ports!r}:
    if port == "provider":
        from qwen_edit.domain.catalog import Provider
        ctx.provider(Provider.DASHSCOPE)
    elif port == "webhook_secret":
        ctx.webhook_secret()
    else:
        ctx._port(port)
{then}
if {name!r} == "api":
    event = json.load(open({event!r}))
    answer = app.handler(event, Lambda())
    assert answer["statusCode"] == 200, answer
"""

LAMBDA_CONTEXT = """
class Lambda:
    function_name = "qwen-edit-bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:1:function:qwen-edit-bench"
    memory_limit_in_mb = 512
    aws_request_id = "bench"
    log_group_name = log_stream_name = "bench"
    def get_remaining_time_in_millis(self):
        return 30000
"""

FLOOR = """
import boto3
for service in {clients!r}:
    client = boto3.client(service)
    if service == "secretsmanager":  # the handler reads its key: so does its floor, as fast
        client.get_secret_value(SecretId="arn:aws:secretsmanager:us-east-1:1:secret:bench")
if {calls_out!r}:
    import httpx
    httpx.Client()
from pydantic import BaseModel
class Floor(BaseModel):
    job_id: str
    attempt: int = 0
Floor.model_validate({{"job_id": "j", "attempt": 1}})
if {api!r}:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver
    APIGatewayRestResolver(enable_validation=True)
marks = {{}}
"""

# SnapStart, estimated: Lambda restores the process as it was after init and the before-snapshot
# hook; what remains is the after-restore hook and the first invocation's set-up (timed here),
# plus the restore itself, which only Lambda can measure.
SNAPSTART = """
import app
from qwen_edit import runtime
if hasattr(runtime, "_before_snapshot"):
    runtime._before_snapshot(("dynamodb", "stepfunctions", "s3"))
    started, cpu_started = time.perf_counter(), time.process_time()
    runtime._after_restore()
else:
    started, cpu_started = time.perf_counter(), time.process_time()
marks = {{"import": 0.0}}
"""

FLOOR_IMPORTS_WITHOUT_GC = """
import gc
gc.disable()
{first}
import boto3, pydantic
if {calls_out!r}:
    import httpx
if {api!r}:
    import aws_lambda_powertools.event_handler
{then}
gc.freeze()
gc.enable()
"""

LOGGER = """
from aws_lambda_powertools import Logger
Logger(service="qwen-edit")
"""

BATCH = """
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
BatchProcessor(event_type=EventType.SQS)
"""

CORE = """
import qwen_edit.domain.jobs
from qwen_edit import settings
# (a checkout from before settings.model_for kept its models in FUNCTIONS)
model = settings.model_for({name!r}) if hasattr(settings, "model_for") else settings.FUNCTIONS[{name!r}]
model.from_env(os.environ)
"""

GC_ON = """
import contextlib
from qwen_edit.entrypoints import startup
startup.imports_without_gc = contextlib.nullcontext
"""

BARE = """
import boto3
boto3.client("s3")
marks = {}
"""


class SecretsStandIn(http.server.BaseHTTPRequestHandler):
    """GetSecretValue, on loopback: the handlers read their keys as they would in Lambda."""

    def do_POST(self) -> None:  # http.server's naming
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps(
            {
                "ARN": request["SecretId"],
                "Name": "bench",
                "SecretString": "c2stYmVuY2gtMDEyMzQ1Njc4OWFi",
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


def python312() -> str:
    """The real Python 3.12 executable (pyenv's shim resolved), or this one with a warning."""
    for candidate in (["python3.12"], ["python3"]):
        try:
            found = subprocess.run(
                [*candidate, "-c", "import sys; print(sys.version_info[:2], sys.executable)"],
                capture_output=True,
                text=True,
                env={**os.environ, "PYENV_VERSION": os.environ.get("PYENV_VERSION", "3.12.1")},
                check=True,
            ).stdout.split(") ")
        except (OSError, subprocess.CalledProcessError):
            continue
        if found[0] == "(3, 12":
            return found[1].strip()
    print(f"warning: no Python {PYTHON} found; measuring with {sys.executable}", file=sys.stderr)
    return sys.executable


def layer_packages(python: str, source: Path) -> Path:
    """The layer's requirements for the host platform, cached by the requirements' hash."""
    requirements = source / "layers/core/requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes() + python.encode()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / "qwen-edit-cold-start" / digest
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run(
            [
                python,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
                str(target),
                "-r",
                str(requirements),
            ],
            check=True,
        )
        (target / ".complete").touch()
    return target


@dataclass(frozen=True)
class Built:
    """What sam build lays out: /var/task per function, and the layer's folders (/opt/python)."""

    task: Path
    layer: tuple[Path, ...]
    ships_bytecode: bool

    def paths(self, name: str) -> list[str]:
        return [str(self.task / name), *map(str, self.layer)]

    def without_bytecode(self, scratch: Path) -> Built:
        """The same layer with no .pyc, as SAM's python3.12 build method shipped it."""
        layer = tuple(
            Path(shutil.copytree(folder, scratch / f"raw{i}", ignore=NO_BYTECODE))
            for i, folder in enumerate(self.layer)
        )
        return Built(self.task, layer, ships_bytecode=False)


NO_BYTECODE = shutil.ignore_patterns("__pycache__")


def build(python: str, source: Path, scratch: Path) -> Built:
    task = scratch / "task"
    shutil.copytree(source / "functions", task, ignore=NO_BYTECODE)
    if (source / "layers/core/Makefile").exists():  # the layer's own build, for this platform
        target = scratch / "layer"
        make = ["make", "--no-print-directory", "-C", str(source / "layers/core")]
        # For this machine (LAYER_PLATFORMS empty); PYTHON and PLATFORM for the first version.
        variables = [f"ARTIFACTS_DIR={target}", f"LAYER_PYTHON={python}", "LAYER_PLATFORMS="]
        variables += [f"PYTHON={python}", "PLATFORM="]
        done = subprocess.run(
            [*make, *variables, "build-CoreLayer"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the layer's build failed:\n{done.stdout}{done.stderr}")
        return Built(task, (target / "python",), ships_bytecode=True)
    layer = scratch / "layer"
    shutil.copytree(source / "layers/core/qwen_edit", layer / "qwen_edit", ignore=NO_BYTECODE)
    return Built(task, (layer, layer_packages(python, source)), ships_bytecode=False)


def run(
    python: str,
    code: str,
    env: dict[str, str],
    importtime: bool = False,
    write_bytecode: bool = False,
) -> Any:
    flags = ["-I", "-S"] + ([] if write_bytecode else ["-B"])
    flags += ["-X", "importtime"] if importtime else []
    done = subprocess.run(
        [python, *flags, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"a measured process failed:\n{done.stderr[-3000:]}")
    return done.stderr if importtime else json.loads(done.stdout.strip().splitlines()[-1])


def top_imports(stderr: str, count: int = 5) -> list[tuple[str, float]]:
    """Self time per top-level package (`-X importtime`), the largest first, in ms."""
    per_root: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line[len("import time:") :].split("|")
        per_root[name.strip().split(".")[0]] += int(self_us) / 1000
    return sorted(per_root.items(), key=lambda item: -item[1])[:count]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min, {os.cpu_count()} CPUs)"


def measure(source: Path, runs: int, only: list[str]) -> dict[str, Any]:
    python = python312()
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True
    ).stdout.strip()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SecretsStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": f"http://127.0.0.1:{server.server_address[1]}",
    }
    names = only or sorted(FIRST_USE)
    with tempfile.TemporaryDirectory() as scratch:
        built = build(python, source, Path(scratch))
        raw = built.without_bytecode(Path(scratch)) if built.ships_bytecode else None
        scripts: dict[str, dict[str, str]] = {}
        for name in names:
            use = FIRST_USE[name]
            paths = built.paths(name)

            def timer(body: str, paths: list[str] = paths, env: dict[str, str] = ENV) -> str:
                return TIMER.format(paths=paths, env=env, body=body)

            handler_code = LAMBDA_CONTEXT + HANDLER.format(
                name=name,
                ports=use.ports,
                then=use.then,
                event=str(source / "events/api-list-models.json"),
            )
            floor_code = FLOOR.format(
                clients=use.clients, calls_out=use.calls_out, api=name == "api"
            )
            scripts[name] = {
                "handler": timer(handler_code),
                "floor": timer(floor_code),
                "bare": timer(BARE),
                # The issue's own floors of a workflow step and of the API include Powertools'
                # Logger, which every handler here logs with: shown beside the strict floor.
                "floor_logger": timer(floor_code + LOGGER),
                # The floor, its imports run as the handlers run theirs: without the cyclic
                # garbage collector, and frozen after (qwen_edit/entrypoints/startup.py).
                "floor_gc": timer(
                    FLOOR_IMPORTS_WITHOUT_GC.format(
                        first="", calls_out=use.calls_out, api=name == "api", then=""
                    )
                    + floor_code
                ),
                # What no handler of this design goes below: the floor with Logger, plus the
                # batch processor of an SQS consumer (imported first, as its handler does),
                # the job record's models and the function's settings, validated; imported as
                # the handlers import, without the collector.
                "floor_core": timer(
                    FLOOR_IMPORTS_WITHOUT_GC.format(
                        first="import aws_lambda_powertools.utilities.batch" if use.batch else "",
                        calls_out=use.calls_out,
                        api=name == "api",
                        then="import aws_lambda_powertools.logging, qwen_edit.domain.jobs, "
                        "qwen_edit.settings",
                    )
                    + (BATCH if use.batch else "")
                    + floor_code
                    + LOGGER
                    + CORE.format(name=name)
                ),
            }
            if (source / "layers/core/qwen_edit/entrypoints/startup.py").exists():
                # The same handler importing with the collector on: what the pause saves.
                scripts[name]["handler_gc_on"] = scripts[name]["handler"].replace(
                    "\nimport app\n", GC_ON + "import app\n", 1
                )
            if raw:  # handler and floor, every module compiled as it is imported
                scripts[name]["handler_raw"] = timer(handler_code, paths=raw.paths(name))
                scripts[name]["floor_raw"] = timer(floor_code, paths=raw.paths(name))
            if (source / "layers/core/qwen_edit/adapters/tracing.py").exists():
                scripts[name]["handler_traced"] = timer(
                    handler_code + "assert type(ctx._port('tracing')).__name__ == 'XRayTracing'\n",
                    env={**ENV, **TRACED},
                )
            if name == "api":
                handler_body = scripts[name]["handler"]
                scripts[name]["snapstart"] = handler_body.replace(
                    'import app\nmarks = {"import": time.perf_counter() - started}',
                    SNAPSTART.format(),
                )
            for code in scripts[name].values():  # unmeasured: warms the file cache
                run(python, code, env, write_bytecode=not built.ships_bytecode)
        before = load()
        print(f"Python {version}, load before: {before}", flush=True)
        samples: dict[str, dict[str, list[dict[str, float]]]] = {
            name: defaultdict(list) for name in names
        }
        for round_ in range(runs):
            for name in names:
                for kind in scripts[name]:
                    samples[name][kind].append(run(python, scripts[name][kind], env))
            print(f"  round {round_ + 1}/{runs} done, load {os.getloadavg()[0]:.2f}", flush=True)
        after = load()
        files = [path for folder in built.layer for path in folder.rglob("*") if path.is_file()]
        layer = {
            "ships_bytecode": built.ships_bytecode,
            "bytes": sum(path.stat().st_size for path in files),
            "pyc_bytes": sum(path.stat().st_size for path in files if path.suffix == ".pyc"),
        }
        tops = {
            name: top_imports(run(python, scripts[name]["handler"], env, True)) for name in names
        }
    server.shutdown()
    bare_all = sorted(s["total"] for name in names for s in samples[name]["bare"])
    bare = median(bare_all)
    bare_cpu = median([s["cpu"] for name in names for s in samples[name]["bare"]])
    rows = {}
    for name in names:
        handler = samples[name]["handler"]
        total = median([s["total"] for s in handler])
        floor = median([s["total"] for s in samples[name]["floor"]])
        cpu, floor_cpu = (
            median([s["cpu"] for s in samples[name][kind]]) for kind in ("handler", "floor")
        )
        with_logger = median([s["total"] for s in samples[name]["floor_logger"]])
        core = median([s["total"] for s in samples[name]["floor_core"]])
        floor_gc = median([s["total"] for s in samples[name]["floor_gc"]])
        gc_on = samples[name].get("handler_gc_on")
        gc_on_total = median([s["total"] for s in gc_on]) if gc_on else math.nan
        rows[name] = {
            "floor_logger": with_logger,
            "to_floor_logger": total / with_logger,
            "gc_on": gc_on_total,
            "floor_gc": floor_gc,
            "to_floor_gc": total / floor_gc,
            "floor_core": core,
            "to_floor_core": total / core,
            "cpu": cpu,
            "floor_cpu": floor_cpu,
            "cpu_to_floor": cpu / floor_cpu,
            "cpu_to_bare": cpu / bare_cpu,
            "import": median([s["import"] for s in handler]),
            "setup": median([s["total"] - s["import"] for s in handler]),
            "total": total,
            "floor": floor,
            "to_floor": total / floor,
            "to_bare": total / bare,
            "floor_to_bare": floor / bare,
            "top": tops[name],
        }
        if samples[name].get("handler_traced"):
            rows[name]["traced"] = median([s["total"] for s in samples[name]["handler_traced"]])
        if samples[name].get("handler_raw"):
            rows[name]["raw"] = median([s["total"] for s in samples[name]["handler_raw"]])
            rows[name]["floor_raw"] = median([s["total"] for s in samples[name]["floor_raw"]])
        if samples[name].get("snapstart"):
            rows[name]["snapstart"] = median([s["total"] for s in samples[name]["snapstart"]])
    return {
        "python": version,
        "runs": runs,
        "load_before": before,
        "load_after": after,
        "bare": bare,
        # One script's spread over its processes: how far a single figure can move.
        "bare_range": [bare_all[0], bare_all[-1]],
        "bare_cpu": bare_cpu,
        "rows": rows,
        "layer": layer,
    }


def show(result: dict[str, Any]) -> None:
    print(
        f"\nbare `import boto3; boto3.client('s3')`: {result['bare'] * 1000:.0f} ms "
        f"(median of {result['runs']} per handler)"
    )
    print(
        f"{'handler':<15}{'floor':>8}{'import':>8}{'set-up':>8}{'handler':>9}{'GC on':>7}"
        f"{'÷ floor':>9}{'÷ bare':>8}{'CPU: floor':>12}{'handler':>9}{'÷ floor':>9}{'÷ bare':>8}"
        f"{'no-GC':>7}{'÷ it':>7}{'+Logger':>9}{'÷ it':>7}{'design':>8}{'÷ it':>7}   top 5 (self ms)"
    )
    for name, row in result["rows"].items():
        top = ", ".join(f"{package} {ms:.0f}" for package, ms in row["top"])
        print(
            f"{name:<15}{row['floor'] * 1000:8.0f}{row['import'] * 1000:8.0f}"
            f"{row['setup'] * 1000:8.0f}{row['total'] * 1000:9.0f}{row['gc_on'] * 1000:7.0f}"
            f"{row['to_floor']:9.2f}{row['to_bare']:8.2f}{row['floor_cpu'] * 1000:12.0f}"
            f"{row['cpu'] * 1000:9.0f}{row['cpu_to_floor']:9.2f}{row['cpu_to_bare']:8.2f}"
            f"{row['floor_gc'] * 1000:7.0f}{row['to_floor_gc']:7.2f}"
            f"{row['floor_logger'] * 1000:9.0f}{row['to_floor_logger']:7.2f}"
            f"{row['floor_core'] * 1000:8.0f}{row['to_floor_core']:7.2f}   {top}"
        )
    for name, row in result["rows"].items():
        if "traced" in row:
            print(f"{name} with X-Ray on, as deployed: {row['traced'] * 1000:.0f} ms")
        if "raw" in row:
            print(
                f"{name} without the layer's bytecode: {row['raw'] * 1000:.0f} ms "
                f"(floor {row['floor_raw'] * 1000:.0f} ms)"
            )
    for name, row in result["rows"].items():
        if "snapstart" in row:
            print(
                f"{name} with SnapStart (estimate: after-restore hook + set-up, restore not "
                f"included): {row['snapstart'] * 1000:.0f} ms"
            )
    print(f"load before: {result['load_before']}\nload after:  {result['load_after']}")


def table(after: dict[str, Any], before: dict[str, Any] | None) -> str:
    head = (
        "| handler | its floor | import + set-up | handler | it, importing with GC on "
        "| ÷ its floor | ÷ bare "
        "| ÷ floor, imports without GC | ÷ floor with Logger | ÷ design floor "
        "| CPU time ÷ its floor |"
    )
    rule = "|---|---|---|---|---|---|---|---|---|---|---|"
    if before:
        head += " before: handler | before: ÷ its floor | before: ÷ bare |"
        rule += "---|---|---|"
    lines = [head, rule]
    for name, row in after["rows"].items():
        line = (
            f"| `{name}` | {row['floor'] * 1000:.0f} ms ({row['floor_to_bare']:.2f}× bare) "
            f"| {row['import'] * 1000:.0f} + {row['setup'] * 1000:.0f} ms "
            f"| {row['total'] * 1000:.0f} ms | {row['gc_on'] * 1000:.0f} ms "
            f"| **{row['to_floor']:.2f}×** | {row['to_bare']:.2f}× "
            f"| {row['floor_gc'] * 1000:.0f} ms, {row['to_floor_gc']:.2f}× "
            f"| {row['to_floor_logger']:.2f}× | {row['floor_core'] * 1000:.0f} ms, "
            f"{row['to_floor_core']:.2f}× | {row['cpu_to_floor']:.2f}× |"
        )
        if before and name in before["rows"]:
            old = before["rows"][name]
            line += (
                f" {old['total'] * 1000:.0f} ms | {old['to_floor']:.2f}× | {old['to_bare']:.2f}× |"
            )
        lines.append(line)
    return "\n".join(lines)


def load_of(before: dict[str, Any] | None) -> str:
    if not before:
        return ""
    return (
        "The before columns are main at 3478b1b, measured by this script in its own run (load "
        f"{before['load_before']}; {before['load_after']}), with the layer's bytecode compiled "
        "by a first, unmeasured process: as fast as the layer now ships, not as it shipped "
        "then (see below). "
    )


def complete(result: dict[str, Any]) -> dict[str, Any]:
    """A run saved by an older version of this script: the columns it lacks are blank."""
    for row in result["rows"].values():
        for key in ("gc_on", "floor_gc", "to_floor_gc", "floor_core", "to_floor_core"):
            row.setdefault(key, math.nan)
    return result


def noise(result: dict[str, Any]) -> str:
    if "bare_range" not in result:
        return ""
    low, high = (value * 1000 for value in result["bare_range"])
    return (
        f"On this machine one script's time varies a lot from process to process: bare's "
        f"{result['runs'] * len(result['rows'])} processes took {low:.0f} to {high:.0f} ms. A "
        "median of 7 still moves by several percent between runs, so a ratio here is good to "
        "about ±0.07: read the columns side by side, not one figure against 1.10."
    )


def verdict(result: dict[str, Any]) -> str:
    rows = result["rows"]

    def within(key: str) -> list[str]:
        return sorted(name for name, row in rows.items() if row[key] <= 1.10)

    def spread(values: list[float]) -> str:
        return f"{min(values):.2f}–{max(values):.2f}×"

    best = min(rows, key=lambda name: rows[name]["to_floor"])
    worst = max(rows, key=lambda name: rows[name]["to_floor"])
    design = [row["floor_core"] / row["floor_gc"] for row in rows.values()]
    gc_on = [row["gc_on"] / row["total"] for row in rows.values()]
    pause = (
        f"importing with it on, they take {spread(gc_on)} as long"
        if not any(math.isnan(ratio) for ratio in gc_on)
        else "this checkout was not measured importing with it on"
    )
    return (
        f"\n**Within 1.10× of its own floor: {len(within('to_floor'))} of {len(rows)} handlers"
        f"{' (' + ', '.join(within('to_floor')) + ')' if within('to_floor') else ''}**; the "
        f"closest is `{best}` at {rows[best]['to_floor']:.2f}×, the furthest `{worst}` at "
        f"{rows[worst]['to_floor']:.2f}×."
        "\n\nThe handlers import without the cyclic garbage collector (see below): "
        f"{pause}. The floor "
        "as the issue defines it imports with the collector on; against a floor that imports "
        "the same way as the handlers, they are "
        f"{spread([row['to_floor_gc'] for row in rows.values()])} (within 1.10×: "
        f"{len(within('to_floor_gc'))} of {len(rows)}). The design floor, the floor "
        "plus what every handler of this design loads before its first AWS call, imported the "
        f"same way, is {spread(design)} that floor; against it the handlers are "
        f"{spread([row['to_floor_core'] for row in rows.values()])}.\n"
    )


def snapstart(result: dict[str, Any]) -> str:
    row = result["rows"].get("api", {})
    if "snapstart" not in row:
        return ""
    over = (row["total"] - row["floor"]) * 1000
    return (
        f"\n`api` is {row['to_floor']:.2f}× its floor, {over:.0f} ms over it, and "
        f"{row['to_floor_core']:.2f}× its design floor: on top of the core every handler loads, "
        "its routes and their schemas, the request models and the acceptance use case, and "
        "Powertools' idempotency. Powertools' OpenAPI models (about 50 ms) are not among them: "
        "only GET /openapi.json and `qwen-edit openapi` build the document, and request "
        "validation does not need them."
        f"\n\n`api` with SnapStart, estimated: {row['snapstart'] * 1000:.0f} ms after the restore "
        "(the after-restore hook and the first request's set-up, the imports being in the "
        "snapshot), plus the restore itself, which only Lambda can measure.\n"
    )


def what_ran(result: dict[str, Any]) -> str:
    if result.get("layer", {}).get("ships_bytecode"):
        return (
            "the layer as its own build makes it (layers/core/Makefile, for the host platform: "
            "the pinned packages and qwen_edit with their bytecode, no dev packages)"
        )
    return (
        "the layer's pinned packages only (pip --target for the host platform, no dev "
        "packages), their bytecode compiled by a first, unmeasured process"
    )


def tracing(result: dict[str, Any]) -> str:
    added = [
        (row["traced"] - row["total"]) * 1000 for row in result["rows"].values() if "traced" in row
    ]
    if not added:
        return ""
    return (
        "\nThe table's handlers run with tracing off, as their floors do. In Lambda, with the "
        "template's `Tracing: Active`, the first invocation also imports aws_xray_sdk and "
        "patches botocore (the handlers measured again with Lambda's trace variables set): "
        f"{min(added):.0f} to {max(added):.0f} ms more, {median(added):.0f} ms for the median "
        "handler.\n"
    )


def bytecode(result: dict[str, Any]) -> str:
    rows = {name: row for name, row in result["rows"].items() if "raw" in row}
    if not rows:
        return ""
    lines = "\n".join(
        f"| `{name}` | {row['raw'] * 1000:.0f} ms | {row['total'] * 1000:.0f} ms "
        f"| {row['total'] / row['raw']:.2f}× | {row['floor_raw'] * 1000:.0f} ms "
        f"| {row['floor'] * 1000:.0f} ms |"
        for name, row in rows.items()
    )
    cut = [1 - row["total"] / row["raw"] for row in rows.values()]
    layer = result["layer"]
    size = (
        f"{layer['pyc_bytes'] / 2**20:.1f} MB of its {layer['bytes'] / 2**20:.1f} MB (the files' "
        "sizes, built for this machine; Lambda allows 250 MB unpacked)"
    )
    return f"""
### The layer's bytecode

Lambda's /opt is read-only, so Python cannot cache the bytecode of a module it compiles there: a
module whose .pyc the layer does not ship is compiled again at every cold start. SAM's python3.12
build method leaves every `__pycache__` out, so until now every cold start compiled boto3,
botocore, pydantic, Powertools, httpx and qwen_edit from source. The layer is now built by
layers/core/Makefile (`BuildMethod: makefile`), which compiles it for Python 3.12 as
unchecked-hash .pyc files: Python loads them without comparing the sources' timestamps, which
the zip does not keep. The same handlers, the same layer, measured in the same run with and
without its bytecode (the floor pays it too: a floor without bytecode is no floor on Lambda):

| handler | without bytecode (as shipped until now) | with it | ÷ | its floor, without | with |
|---|---|---|---|---|---|
{lines}

Shipping the bytecode takes {min(cut):.0%}–{max(cut):.0%} off a handler's import and first
invocation's set-up, as measured here. The layer grows by its .pyc files: {size}.
tests/infra/test_build.py checks that every module of the built layer has its bytecode. The
functions' own `app.py` (a few lines each, about 0.5 ms to compile) is still compiled at each
cold start.
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=RUNS, help="fresh processes per script")
    parser.add_argument("--source", type=Path, default=ROOT, help="a checkout to measure")
    parser.add_argument("--only", action="append", default=[], choices=sorted(FIRST_USE))
    parser.add_argument("--save", type=Path, help="write the figures as JSON")
    parser.add_argument(
        "--baseline", type=Path, default=BEFORE, help="a saved run, shown as 'before'"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="leave docs/benchmarks.md's section as it is"
    )
    parser.add_argument("--render", type=Path, help="write the section from a saved run instead")
    args = parser.parse_args()
    if args.render:
        result = complete(json.loads(args.render.read_text()))
    else:
        result = measure(args.source.resolve(), args.runs, args.only)
    show(result)
    if args.save:
        args.save.write_text(json.dumps(result, indent=2))
    if not args.no_write and not args.only:
        before = json.loads(args.baseline.read_text()) if args.baseline.exists() else None
        write_section("cold-start", report(result, before))


def report(after: dict[str, Any], before: dict[str, Any] | None) -> str:
    tops = "\n".join(
        f"| `{name}` | " + ", ".join(f"{package} {ms:.0f} ms" for package, ms in row["top"]) + " |"
        for name, row in after["rows"].items()
    )
    uses = "\n".join(
        f"| `{name}` | {use.note} | {', '.join(use.clients)}{' + httpx' if use.calls_out else ''} |"
        for name, use in FIRST_USE.items()
        if name in after["rows"]
    )
    return f"""
## Cold start

`benchmarks/cold_start.py`: Python {after["python"]}, {what_ran(after)}, each figure the median
of {after["runs"]} fresh processes, handler, floor and bare measured interleaved in one run. The machine's load average
at the run's start and end: {after["load_before"]}; {after["load_after"]}.
{load_of(before)}Bare `import boto3; boto3.client("s3")`: {after["bare"] * 1000:.0f} ms.
{noise(after)}
{verdict(after)}

A handler's time is its import plus its first invocation's set-up: `runtime.context()` and every
port that invocation touches, built for real (AWS clients, the provider's httpx client, secrets
read from a loopback stand-in); for `api`, one request answered through the resolver. Its floor is
`import boto3`, the same AWS clients, `httpx.Client()` where it calls out, one pydantic model
validated once, and for `api` an empty `APIGatewayRestResolver(enable_validation=True)`. The goal
(issue 24): at most 1.10× its own floor. "Floor with Logger" adds Powertools' `Logger`, which
every handler logs with (the issue's own workflow-step and API floors include it); the design
floor is described below the table. CPU time (`time.process_time()`, same processes) is shown
beside: here it tracks wall time closely, so the spread between runs is in the processes' own
work, not in waiting for the CPU.

{table(after, before)}
{snapstart(after)}{bytecode(after)}

| handler | its first invocation | AWS clients (its floor's) |
|---|---|---|
{uses}

Every handler module imports inside `imports_without_gc()` (qwen_edit/entrypoints/startup.py):
the cyclic garbage collector is paused while boto3, pydantic, Powertools and the core package
build their objects, and what they built is frozen afterwards, so no later collection scans it.
The floor as issue 24 defines it pays the collector's passes over its imports; the column
"floor, imports without GC" runs the floor's imports the same way, so that its ratio compares
like with like.

A handler's design floor adds to that floor what every handler of this design loads before its
first AWS call: Powertools' `Logger`; for the SQS consumers (`trigger`, `intake`, `webhook`),
Powertools' batch processor (its package loads asyncio and all of Powertools' event data
classes, about 30 ms); and `qwen_edit.domain.jobs` with the function's settings model,
validated (the job record is about 40 pydantic classes with the spend-cap, tenant and catalog
types it holds; a class costs its fields' collection even when its validator is built on first
use). What is left above the design floor is the function's own use cases and adapters: the
request models and acceptance for `api`, `trigger` and `intake`, the provider client for the
steps that call out, the workflow's state and queue models.
{tracing(after)}
Where each handler's import time goes (`-X importtime`, self time per package, one process):

| handler | top 5 |
|---|---|
{tops}
"""


if __name__ == "__main__":
    main()
