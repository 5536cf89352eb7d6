"""The layers of the core package, enforced: what each folder may import (docs/architecture.md).

The domain holds pure rules and values; use cases (app/) reach the world only through ports;
only adapters/ (and the composition root, lazily) touch boto3, httpx or sockets; and Powertools'
event classes stay at the edge (entrypoints/, functions/).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "core" / "qwen_edit"
OUTSIDE_WORLD = ("boto3", "botocore", "httpx", "socket", "urllib.request", "http.client")
# X-Ray: only the tracing adapter (the use cases reach it through the Tracing port).
TRACING = ("aws_xray_sdk", "aws_lambda_powertools.tracing", "aws_lambda_powertools.Tracer")
EDGE_ONLY = ("aws_lambda_powertools.utilities.data_classes", "aws_lambda_powertools.event_handler")
RULES = {
    # folder: (qwen_edit modules it may import, third-party roots it may import)
    "domain": (("qwen_edit.domain",), ("pydantic", "pydantic_core")),
    "app": (
        (
            "qwen_edit.domain",
            "qwen_edit.ports",
            "qwen_edit.context",
            "qwen_edit.settings",
            "qwen_edit.app",
        ),
        ("pydantic", "standardwebhooks", "aws_lambda_powertools.logging", "aws_lambda_powertools"),
    ),
}


def imports_of(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).glob("*.py"))


def within(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


@pytest.mark.parametrize("folder", sorted(RULES))
def test_each_layer_imports_only_what_it_may(folder):
    own, third_party = RULES[folder]
    for path in modules(folder):
        for name in imports_of(path):
            if name.startswith("qwen_edit"):
                assert within(name, own), f"{path.name} imports {name}"
            elif name.split(".")[0] not in sys.stdlib_module_names:
                assert within(name, third_party), f"{path.name} imports {name}"
            assert not within(name, OUTSIDE_WORLD + EDGE_ONLY + TRACING), (
                f"{path.name} imports {name}"
            )


def test_only_adapters_and_the_composition_root_reach_the_outside_world():
    allowed = {PACKAGE / "adapters", PACKAGE / "runtime.py"}
    for path in PACKAGE.rglob("*.py"):
        if path.parent in allowed or path in allowed:
            continue
        reaching = [
            n for n in imports_of(path) if within(n, ("boto3", "botocore", "httpx", *TRACING))
        ]
        assert not reaching, f"{path.relative_to(PACKAGE)} imports {reaching}"


def test_the_domain_and_ports_import_no_adapter():
    for path in [*modules("domain"), PACKAGE / "ports.py", PACKAGE / "settings.py"]:
        assert not [
            n
            for n in imports_of(path)
            if n.startswith(("qwen_edit.adapters", "qwen_edit.app", "qwen_edit.runtime"))
        ], path
