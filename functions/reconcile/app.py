"""Safety net, so that no accepted job is left behind:
- a Step Functions execution that ends FAILED, TIMED_OUT or ABORTED (an EventBridge rule) makes
  its job final and announces it (qwen_edit.app.workflow.reconcile);
- every 5 minutes (a schedule) the sweep settles jobs whose workflow never started or ended
  unseen (qwen_edit.app.sweeper)."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source

from qwen_edit import runtime
from qwen_edit.app import sweeper, workflow
from qwen_edit.domain.jobs import now_utc
from qwen_edit.entrypoints.lambda_handlers import logger


@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, _context: Any) -> None:
    ctx = runtime.context("reconcile")
    if event.detail_type == "Scheduled Event":
        logger.info("swept", extra=sweeper.sweep(ctx, now_utc()))
        return
    detail = event.detail
    logger.append_keys(job_id=detail["name"])
    workflow.reconcile(ctx, detail["name"], detail["status"], detail.get("cause"))
