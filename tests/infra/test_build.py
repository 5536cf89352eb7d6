"""What `make build` (`sam build`) made is what `sam deploy` ships: the layer holds the pinned
packages, built for Lambda's arm64 and Python 3.12, and every function's handler."""

from __future__ import annotations

import re

import pytest

from conftest import ROOT

BUILD = ROOT / ".aws-sam" / "build"
LAYER = BUILD / "CoreLayer" / "python"

pytestmark = pytest.mark.skipif(not LAYER.is_dir(), reason="run `make build` (sam build) first")


def test_the_layer_holds_arm64_wheels_for_python_312():
    (native,) = (LAYER / "pydantic_core").glob("_pydantic_core*.so")
    assert native.name.endswith("cpython-312-aarch64-linux-gnu.so"), native.name


def test_the_layer_holds_the_pinned_packages_and_the_core():
    pinned = (ROOT / "layers" / "core" / "requirements.txt").read_text()
    for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", pinned, re.M):
        dist = name.replace("-", "_").lower()
        found = [
            p for p in LAYER.glob("*.dist-info") if p.name.lower() == f"{dist}-{version}.dist-info"
        ]
        assert found, f"{name}=={version} is not in the built layer"
    assert (LAYER / "qwen_edit" / "runtime.py").is_file()
    assert (LAYER / "qwen_edit" / "entrypoints" / "api" / "console.html").is_file()  # the console


def test_every_module_of_the_layer_ships_its_python_312_bytecode():
    """/opt is read-only in Lambda: a module without its .pyc is compiled again at every cold
    start. Unchecked-hash bytecode is loaded whatever timestamps the zip gives the sources."""
    sources = list(LAYER.rglob("*.py"))
    assert len(sources) > 500
    for source in sources:
        compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"
        assert compiled.is_file(), f"{source.relative_to(LAYER)} has no bytecode"
        flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
        assert flags == 0b01, f"{compiled.relative_to(LAYER)}: not unchecked-hash ({flags:#b})"


def test_every_function_is_built_with_its_handler():
    declared = (ROOT / "template.yaml").read_text().count("Type: AWS::Serverless::Function")
    built = [folder for folder in BUILD.glob("*Function") if (folder / "app.py").is_file()]
    assert len(built) == declared
