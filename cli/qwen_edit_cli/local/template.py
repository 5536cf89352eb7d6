"""template.yaml as data: parameters, conditions and the intrinsic functions the stack uses.

The local stack and the tests build AWS resources from this, so they cannot drift from the
template that `sam deploy` ships.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, cast

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "template.yaml"
_NO_VALUE = object()


@cache
def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    parsed, problems = decode(str(path))
    if problems:
        raise ValueError(f"{path} does not parse: {problems}")
    return cast(dict[str, Any], parsed)


class Resolver:
    """Evaluates Ref, Fn::GetAtt, Fn::Sub, Fn::If and conditions against known values."""

    def __init__(
        self,
        template: dict[str, Any],
        parameters: dict[str, Any],
        ref: Callable[[str], Any],
        get_att: Callable[[str, str], Any],
    ):
        self.template = template
        defaults = {
            name: spec.get("Default") for name, spec in template.get("Parameters", {}).items()
        }
        self.parameters = {**defaults, **parameters}
        self._ref, self._get_att = ref, get_att

    def condition(self, name: str) -> bool:
        return bool(self.value(self.template["Conditions"][name]))

    def value(self, node: Any) -> Any:
        resolved = self._resolve(node)
        return None if resolved is _NO_VALUE else resolved

    def _resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self._resolve(x) for x in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self._reference(arg)
            if key == "Fn::GetAtt":
                name, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self._get_att(name, attribute)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self._resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Equals":
                left, right = (self._resolve(x) for x in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self._resolve(arg[0])
            if key == "Fn::Join":
                separator, items = arg
                return separator.join(str(item) for item in self._resolve(items))
            if key == "Condition":
                return self.condition(arg)
        return {
            k: v for k, v in ((k, self._resolve(x)) for k, x in node.items()) if v is not _NO_VALUE
        }

    def _reference(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.parameters:
            value = self.parameters[name]
            spec = self.template.get("Parameters", {}).get(name, {})
            if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                return value.split(",")  # as CloudFormation: "" is [""]
            return value
        return self._ref(name)

    def _sub(self, text: str) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if "." in name and not name.startswith("AWS::"):
                return str(self._get_att(*name.split(".", 1)))
            return str(self._reference(name))

        return re.sub(r"\$\{([^}!]+)\}", one, text)


def substitute(definition: str, values: dict[str, Any]) -> str:
    """DefinitionSubstitutions as Step Functions applies them: ${Name} replaced textually."""

    def one(match: re.Match[str]) -> str:
        return str(values[match.group(1)])

    return re.sub(r"\$\{(\w+)\}", one, definition)
