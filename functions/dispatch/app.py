"""The dispatcher (see qwen_edit.app.dispatcher): woken by Admit when no dispatcher runs, and
once a minute by a schedule, in case a wake was lost."""

from qwen_edit.entrypoints.startup import imports_without_gc

with imports_without_gc():  # cold start: see qwen_edit/entrypoints/startup.py
    from typing import Any

    from aws_lambda_powertools import Logger

    from qwen_edit import runtime
    from qwen_edit.app.dispatcher import dispatch

logger = Logger(service="qwen-edit")


@logger.inject_lambda_context(clear_state=True)
def handler(_event: dict[str, Any], context: Any) -> dict[str, str]:
    ctx = runtime.context("dispatch")
    done = dispatch(ctx, remaining=lambda: context.get_remaining_time_in_millis() / 1000)
    logger.info("dispatcher done", extra={"result": done})
    return {"result": done}
