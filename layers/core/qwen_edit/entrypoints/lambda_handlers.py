"""What every Lambda handler shares: logging context, the runtime context, pydantic in and out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from pydantic import BaseModel

from qwen_edit import runtime
from qwen_edit.context import Context

logger = Logger(service="qwen-edit")


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
Input = TypeVar("Input", bound=BaseModel)


def workflow_task(
    function: str,
    step: Callable[[Context, Input], BaseModel | None],
    payload: type[Input],
) -> Handler:
    """The Step Functions task handler of functions/<function>/, running one workflow step.
    Domain errors propagate: their class name is the state's error, which the definition's
    Retry and Catch rules name."""

    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        state = payload.model_validate(event)
        logger.append_keys(job_id=getattr(state, "job_id", None))
        result = step(runtime.context(function), state)
        return {} if result is None else result.model_dump(mode="json", exclude_none=True)

    return handler
