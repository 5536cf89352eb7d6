"""Reads template.yaml with its CloudFormation tags (cfn-lint's loader understands them)."""

from __future__ import annotations

from functools import cache

from cfnlint.decode import decode

from conftest import ROOT


@cache
def template() -> dict:
    parsed, matches = decode(str(ROOT / "template.yaml"))
    assert not matches, matches
    return parsed
