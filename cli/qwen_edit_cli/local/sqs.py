"""Lambda's SQS poller for the local stack: receive a batch, call the function with an SQS
event, delete what succeeded, and make the reported failures visible again (moto counts the
receives and moves a message to the dead-letter queue after maxReceiveCount)."""

from __future__ import annotations

from typing import Any

from qwen_edit_cli.local.lambdas import FakeLambdaContext, LambdaDispatcher


class SqsEventSource:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        function_name: str,
        dispatcher: LambdaDispatcher,
        batch_size: int,
        region: str,
    ):
        self.sqs, self.queue_url, self.queue_arn = sqs, queue_url, queue_arn
        self.function_name, self.dispatcher = function_name, dispatcher
        self.batch_size, self.region = batch_size, region

    def poll_once(self, wait_seconds: int = 0) -> int:
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        event = {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": self.region,
                }
                for m in messages
            ]
        }
        context = FakeLambdaContext(self.function_name, self.function_name)
        try:
            answer = self.dispatcher.call(self.function_name, event, context) or {}
            failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
        except Exception:  # noqa: BLE001 - as Lambda's poller: a failed batch comes back whole
            failed = {m["MessageId"] for m in messages}
        for message in messages:
            if message["MessageId"] in failed:
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    VisibilityTimeout=0,
                    ReceiptHandle=message["ReceiptHandle"],
                )
            else:
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return len(messages)
