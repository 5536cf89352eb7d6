"""Safety net, so that no accepted job is left behind:
- a Step Functions execution that ends FAILED, TIMED_OUT or ABORTED (an EventBridge rule) makes
  its job final and announces it (qwen_edit.app.workflow.reconcile);
- every 5 minutes (a schedule) the sweep settles jobs whose workflow never started or ended
  unseen (qwen_edit.app.sweeper)."""

from qwen_edit.entrypoints.startup import imports_without_gc

with imports_without_gc():  # cold start: see qwen_edit/entrypoints/startup.py
    from typing import Any

    from qwen_edit import runtime
    from qwen_edit.app import sweeper, workflow
    from qwen_edit.domain.jobs import now_utc
    from qwen_edit.entrypoints.lambda_handlers import logger


# The event is read as the dict it is: Powertools' EventBridgeEvent would import its whole
# data_classes package (about 30 event classes, ~19 ms of every cold start) for two fields.
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], _context: Any) -> None:
    ctx = runtime.context("reconcile")
    if event["detail-type"] == "Scheduled Event":
        logger.info("swept", extra=sweeper.sweep(ctx, now_utc()))
        return
    detail = event["detail"]
    logger.append_keys(job_id=detail["name"])
    workflow.reconcile(ctx, detail["name"], detail["status"], detail.get("cause"))
