"""Each handler's import graph holds only what it uses (issue 24: cold starts). A handler module
is imported in a fresh interpreter, as Lambda does, and its sys.modules checked: what a handler
never touches must not be loaded by importing it, so this cannot silently rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))
# Loaded on first use, never by an import: AWS clients, the adapters, tracing, the webhook
# signer. (Powertools imports the bare `botocore` package for its user agent: not a client.)
NEVER_AT_IMPORT = (
    "boto3",
    "botocore.client",
    "qwen_edit.adapters",
    "aws_xray_sdk",
    "standardwebhooks",
)
MUST_NOT_LOAD = {name: (*NEVER_AT_IMPORT, "httpx") for name in FUNCTIONS}
# The API validates requests without Powertools' OpenAPI document models (only GET
# /openapi.json builds the document); Idempotency brings boto3 in with its persistence layer.
MUST_NOT_LOAD["api"] = (
    "aws_xray_sdk",
    "standardwebhooks",
    "httpx",
    "qwen_edit.adapters",
    "aws_lambda_powertools.event_handler.openapi.models",
)
# Workflow steps and the queue consumers never load the API's request and response schemas.
# Powertools' batch utility loads its parser's pydantic event models when pydantic is loaded
# before it: the queue consumers import it first, and no handler needs those models.
for name in FUNCTIONS:
    MUST_NOT_LOAD[name] += ("aws_lambda_powertools.utilities.parser",)
    if name != "api":
        MUST_NOT_LOAD[name] += ("qwen_edit.entrypoints.api", "aws_lambda_powertools.event_handler")
# The workflow steps share app/lifecycle.py, never the API's acceptance (the request models);
# the dispatcher alone reads a request, to make its provider call.
WORKFLOW_STEPS = ("admit", "poll", "store", "record_failure", "notify", "reconcile")
for name in WORKFLOW_STEPS:
    MUST_NOT_LOAD[name] += ("qwen_edit.app.service", "qwen_edit.domain.requests")
# The reconciler reads its EventBridge event as a dict: no Powertools data classes.
MUST_NOT_LOAD["reconcile"] += ("aws_lambda_powertools.utilities.data_classes",)
# The queue consumers and the API never load the workflow's steps; webhook deliveries load
# no job acceptance either.
for name in ("api", "trigger", "intake", "webhook"):
    MUST_NOT_LOAD[name] += ("qwen_edit.app.workflow",)
MUST_NOT_LOAD["webhook"] += ("qwen_edit.app.service", "qwen_edit.domain.requests")

PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
print(json.dumps(sorted(sys.modules)))
"""


def loaded_by_import(function: str) -> set[str]:
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_SERVICE_NAME": "qwen-edit"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT / "functions" / function / "app.py")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_handler_imports_only_what_it_uses(function):
    loaded = loaded_by_import(function)
    found = sorted(
        module
        for module in loaded
        for banned in MUST_NOT_LOAD[function]
        if module == banned or module.startswith(banned + ".")
    )
    assert not found, f"importing functions/{function}/app.py loads {found}"


def test_the_snapshot_hooks_are_a_no_op_outside_lambda():
    from qwen_edit import runtime

    runtime.snapstart()  # snapshot_restore_py exists only in Lambda's Python runtime


def test_the_snapshot_keeps_no_context_client_or_secret(monkeypatch):
    from qwen_edit import runtime

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name, value in {
        "JOBS_TABLE": "jobs",
        "LIMITS_TABLE": "limits",
        "DASHSCOPE_API_KEY_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:k",
    }.items():
        monkeypatch.setenv(name, value)
    runtime.context("poll")
    assert runtime.context.cache_info().currsize == 1
    runtime._before_snapshot(("dynamodb",))  # no request leaves: the client is only made
    assert runtime.context.cache_info().currsize == 0
    runtime.context("poll")
    runtime._after_restore()
    assert runtime.context.cache_info().currsize == 0


def test_the_cold_start_benchmark_sets_what_every_function_needs(monkeypatch):
    """benchmarks/cold_start.py builds each function's real context: its environment must
    stay complete as functions gain settings (it once lacked the budgets' tables)."""
    from qwen_edit.settings import FUNCTIONS, model_for

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import cold_start

    assert set(cold_start.FIRST_USE) == set(FUNCTIONS)
    for function in FUNCTIONS:
        model_for(function).from_env(cold_start.ENV)  # ConfigurationError names what is missing


BUILT_AT_IMPORT = """
import importlib, json, pkgutil, qwen_edit
from pydantic import BaseModel
for module in pkgutil.walk_packages(qwen_edit.__path__, "qwen_edit."):
    importlib.import_module(module.name)
def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)
print(json.dumps(sorted(
    f"{c.__module__}.{c.__qualname__}"
    for c in set(subclasses(BaseModel))
    if c.__module__.startswith("qwen_edit.") and c.__pydantic_complete__
)))
"""


def test_no_model_of_ours_is_built_at_import():
    """A model's validator is built when it is first used (`defer_build`): building every
    model of the layer at import cost each cold start about a millisecond per model."""
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_SERVICE_NAME": "qwen-edit"}
    done = subprocess.run(
        [sys.executable, "-c", BUILT_AT_IMPORT], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_handler_imports_with_the_collector_paused(function):
    """Every import of a handler module runs inside `imports_without_gc()` (startup.py)."""
    import ast

    tree = ast.parse((ROOT / "functions" / function / "app.py").read_text())
    loose = [
        ast.unparse(node)
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        and not (isinstance(node, ast.ImportFrom) and node.module == "__future__")
        and ast.unparse(node) != "from qwen_edit.entrypoints.startup import imports_without_gc"
    ]
    paused = [
        node
        for node in tree.body
        if isinstance(node, ast.With) and ast.unparse(node.items[0]) == "imports_without_gc()"
    ]
    assert not loose and len(paused) == 1, f"functions/{function}/app.py imports {loose} unpaused"


def test_the_collector_is_paused_for_imports_and_in_lambda_what_they_built_is_frozen(
    monkeypatch,
):
    import gc

    from qwen_edit.entrypoints.startup import imports_without_gc

    frozen = gc.get_freeze_count()
    with imports_without_gc():  # outside Lambda: paused, nothing frozen
        assert not gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == frozen
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
    try:
        with imports_without_gc():
            built = [[] for _ in range(1000)]
        assert gc.isenabled() and gc.get_freeze_count() >= frozen + len(built)
    finally:
        gc.unfreeze()  # the test process's own objects go back to the collector


def test_a_failed_import_leaves_the_collector_on_and_freezes_nothing(monkeypatch):
    import gc

    from qwen_edit.entrypoints.startup import imports_without_gc

    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
    frozen = gc.get_freeze_count()
    with pytest.raises(ImportError), imports_without_gc():
        import qwen_edit.no_such_module  # noqa: F401
    assert gc.isenabled() and gc.get_freeze_count() == frozen
