"""The repository keeps the shape of SPEC §1 and the bars of §8."""

from __future__ import annotations

import re
import tomllib

from conftest import ROOT
from yaml_loader import template


def test_layout_of_the_design_card():
    for path in [
        "template.yaml",
        "samconfig.toml",
        "functions",
        "layers/core/qwen_edit",
        "layers/core/requirements.txt",
        "statemachine",
        "events",
        "tests",
        "README.md",
        ".ci/run",
        "pyproject.toml",
        "Makefile",
    ]:
        assert (ROOT / path).exists(), path


def test_template_parameters_of_the_foundation():
    params = template()["Parameters"]
    assert params["DashScopeRegion"]["AllowedValues"] == ["singapore", "beijing"]
    assert params["PollIntervalSeconds"]["Default"] == 10
    for name in ["DashScopeBaseUrl", "DashScopeApiKeySecretArn", "DefaultModel"]:
        assert name in params


def test_core_layer_is_built_by_sam_from_layers_core():
    layer = template()["Resources"]["CoreLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/core/"
    assert layer["Metadata"]["BuildMethod"] == "makefile"  # layers/core/Makefile
    assert (ROOT / "layers/core/Makefile").read_text().count("build-CoreLayer:") == 1


def test_dependencies_are_pinned_and_the_layer_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    assert all("==" in pin for pin in pins), pins
    layer = [
        line
        for line in (ROOT / "layers/core/requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert set(layer) <= set(project["dependencies"])


def test_samconfig_has_default_dev_and_prod():
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert {"default", "dev", "prod"} <= set(config)
    assert config["prod"]["global"]["parameters"]["stack_name"] == "qwen-edit-prod"


def test_make_test_lints_first_and_lint_runs_every_checker():
    makefile = (ROOT / "Makefile").read_text()
    lint = makefile[makefile.index("\nlint:") :].split("\n\n# ---")[0].split("\ntest-unit:")[0]
    for checker in ("ruff check", "ruff format --check", "lint-types", "mypy", "cfn-lint"):
        assert checker in lint, checker
    assert re.search(r"^test: .*\blint\b", makefile, re.M)


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci/run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()
    assert "make demo" in (ROOT / "README.md").read_text()


def test_readme_model_table_matches_the_catalog():
    from qwen_edit.domain.catalog import MODELS

    readme = (ROOT / "README.md").read_text()
    for model in MODELS.values():
        view = model.describe()
        limit = view["rate_limit"] + (
            f", {model.max_concurrent_tasks} tasks at once" if model.max_concurrent_tasks else ""
        )
        n = "1" if model.max_outputs == 1 else f"1–{model.max_outputs}"
        row = (
            f"| `{model.id}` | {' + '.join(view['capabilities'])} | {view['endpoint']} | "
            f"{n} | {model.size_rule.value} | {limit} |"
        )
        assert row in readme, row


def test_readme_documents_every_template_parameter():
    readme = (ROOT / "README.md").read_text()
    for name in template()["Parameters"]:
        assert f"| `{name}` |" in readme, name


def test_every_function_has_a_sample_event():
    functions = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))
    events = {p.stem for p in (ROOT / "events").glob("*.json")}
    for name in functions:
        assert name in events or any(e.startswith(f"{name}-") for e in events), name


def test_the_benchmark_report_has_every_section_and_its_chart():
    report = (ROOT / "docs" / "benchmarks.md").read_text()
    for section in ("cold-start", "cost", "latency", "burst"):
        assert f"<!-- {section}:begin -->" in report, section
    assert (ROOT / "docs" / "burst.png").read_bytes().startswith(b"\x89PNG")
