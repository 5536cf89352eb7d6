"""Upload trigger: S3 ObjectCreated on inbox/ → SQS → here, in batches. Each record is one S3
notification; a record that fails (storage or workflow trouble) is retried by SQS alone, and
ends in the dead-letter queue after 5 tries. Rejected uploads are answered, not retried."""

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
    from qwen_edit.app import uploads
    from qwen_edit.entrypoints import s3_events
    from qwen_edit.entrypoints.lambda_handlers import logger

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    for upload in s3_events.from_s3_notification(record.json_body):
        uploads.handle(runtime.context("trigger"), upload)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
