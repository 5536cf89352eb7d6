"""Safety net: Step Functions executions that end FAILED, TIMED_OUT or ABORTED (an EventBridge
rule) leave no job unfinished or unannounced (qwen_edit.app.workflow.reconcile)."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source

from qwen_edit import runtime
from qwen_edit.app import workflow
from qwen_edit.entrypoints.lambda_handlers import logger


@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, _context: Any) -> None:
    detail = event.detail
    logger.append_keys(job_id=detail["name"])
    workflow.reconcile(
        runtime.context("reconcile"), detail["name"], detail["status"], detail.get("cause")
    )
