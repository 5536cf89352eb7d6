"""Webhook deliveries: one attempt per queued message (qwen_edit.app.webhooks.deliver), which queues
the next one itself and counts each delivery's outcome (WebhookDeliveries)."""

from qwen_edit.entrypoints.startup import imports_without_gc

with imports_without_gc():  # cold start: see qwen_edit/entrypoints/startup.py
    from typing import Any

    from aws_lambda_powertools.utilities.batch import (
        BatchProcessor,
        EventType,
        process_partial_response,
    )
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from qwen_edit import runtime
    from qwen_edit.app import webhooks
    from qwen_edit.entrypoints.lambda_handlers import logger

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    delivery = webhooks.Delivery.model_validate_json(record.body)
    logger.append_keys(job_id=delivery.job_id, webhook_id=delivery.webhook_id)
    webhooks.deliver(runtime.context("webhook"), delivery)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
