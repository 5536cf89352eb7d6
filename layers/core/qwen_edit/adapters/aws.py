"""S3, Step Functions and EventBridge adapters."""

from __future__ import annotations

import contextlib
import json
from typing import Any, cast

import boto3
from botocore.config import Config

from qwen_edit.domain.budgets import THRESHOLD_DETAIL_TYPE, BudgetAlert
from qwen_edit.domain.intake import REJECTED_DETAIL_TYPE, JobRejection
from qwen_edit.domain.jobs import Job
from qwen_edit.ports import ExecutionState

EVENT_SOURCE = "qwen-edit"


class S3ObjectStore:
    def __init__(self, client: Any = None):
        # SigV4 presigned URLs work in every region and in the local stack.
        self.client = client or boto3.client("s3", config=Config(signature_version="s3v4"))

    def put(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    def get(self, bucket: str, key: str) -> bytes | None:
        try:
            return cast(bytes, self.client.get_object(Bucket=bucket, Key=key)["Body"].read())
        except self.client.exceptions.NoSuchKey:
            return None

    def presigned_get(self, bucket: str, key: str, expires_in: int) -> str:
        return cast(
            str,
            self.client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
            ),
        )

    def presigned_put(
        self, bucket: str, key: str, content_type: str, content_length: int | None, expires_in: int
    ) -> str:
        params: dict[str, str | int] = {"Bucket": bucket, "Key": key, "ContentType": content_type}
        if content_length is not None:  # signed: S3 refuses a body of any other size
            params["ContentLength"] = content_length
        url = self.client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_in)
        return cast(str, url)

    def peek(self, bucket: str, key: str, length: int) -> tuple[int, bytes] | None:
        try:
            answer = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{length - 1}")
        except self.client.exceptions.NoSuchKey:
            return None
        except self.client.exceptions.ClientError as error:
            if error.response["Error"]["Code"] == "InvalidRange":  # an empty object
                return 0, b""
            raise
        size = int(answer.get("ContentRange", "/0").rsplit("/", 1)[-1] or 0)
        return size or answer["ContentLength"], answer["Body"].read()


class StepFunctionsExecutions:
    def __init__(self, state_machine_arn: str, client: Any = None):
        self.state_machine_arn = state_machine_arn
        self.client = client or boto3.client("stepfunctions")

    def execution_arn(self, name: str) -> str:
        return f"{self.state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"

    def start(self, name: str, payload: dict[str, Any]) -> None:
        # Step Functions answers a repeated name with the same input with the running
        # execution, and a finished or different one with ExecutionAlreadyExists: either way
        # the job has its one execution.
        with contextlib.suppress(self.client.exceptions.ExecutionAlreadyExists):
            self.client.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload)
            )

    def state(self, name: str) -> ExecutionState | None:
        try:
            answer = self.client.describe_execution(executionArn=self.execution_arn(name))
        except self.client.exceptions.ExecutionDoesNotExist:
            return None
        cause = answer.get("cause") or answer.get("error")
        return ExecutionState(answer["status"], cause, answer.get("stopDate"))

    def stop(self, name: str, cause: str) -> None:
        with contextlib.suppress(self.client.exceptions.ExecutionDoesNotExist):
            self.client.stop_execution(
                executionArn=self.execution_arn(name), error="JobCanceled", cause=cause
            )


class StepFunctionsCallbacks:
    """Resumes a workflow waiting on its task token (the dispatcher's answer to the job)."""

    def __init__(self, client: Any = None):
        self.client = client or boto3.client("stepfunctions")
        errors = self.client.exceptions
        self.gone = (errors.InvalidToken, errors.TaskDoesNotExist, errors.TaskTimedOut)

    def succeed(self, task_token: str, output: dict[str, Any]) -> bool:
        try:
            self.client.send_task_success(taskToken=task_token, output=json.dumps(output))
        except self.gone:
            return False  # the execution ended otherwise (canceled, timed out)
        return True

    def fail(self, task_token: str, error: str, cause: str) -> bool:
        try:
            self.client.send_task_failure(taskToken=task_token, error=error, cause=cause)
        except self.gone:
            return False
        return True


class LambdaDispatcherWake:
    """Starts the dispatcher function (asynchronously: the caller does not wait for it)."""

    def __init__(self, function_name: str, client: Any = None):
        self.function_name = function_name
        self.client = client or boto3.client("lambda")

    def __call__(self) -> None:
        self.client.invoke(
            FunctionName=self.function_name, InvocationType="Event", Payload=b'{"wake": true}'
        )


class EventBridgePublisher:
    """Publishes `Job Succeeded|Failed|Canceled` with the job as detail (SPEC §4), and
    `Job Rejected` for an event that asked for a job and got none (README "Pipelines")."""

    def __init__(self, bus_name: str, client: Any = None):
        self.bus_name = bus_name
        self.client = client or boto3.client("events")

    def publish(self, job: Job) -> None:
        self._put(f"Job {job.status.value.title()}", json.dumps(job.public()))

    def reject(self, rejection: JobRejection) -> None:
        self._put(REJECTED_DETAIL_TYPE, rejection.model_dump_json())

    def budget_threshold(self, alert: BudgetAlert) -> None:
        self._put(THRESHOLD_DETAIL_TYPE, alert.model_dump_json())

    def _put(self, detail_type: str, detail: str) -> None:
        answer = self.client.put_events(
            Entries=[
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": detail_type,
                    "Detail": detail,
                    "EventBusName": self.bus_name,
                    "Resources": [],
                }
            ]
        )
        if answer.get("FailedEntryCount"):
            raise RuntimeError(f"EventBridge refused the event: {answer['Entries']}")


class SqsWebhookOutbox:
    MAX_DELAY = 900  # SQS's longest message delay

    def __init__(self, queue_url: str, dead_letter_queue_url: str | None, client: Any = None):
        # Only the webhook function dead-letters; the others only queue first attempts.
        self.queue_url, self.dead_letter_queue_url = queue_url, dead_letter_queue_url
        self.client = client or boto3.client("sqs")

    def send(self, delivery: Any, delay_seconds: float) -> None:
        self.client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=delivery.model_dump_json(),
            DelaySeconds=int(min(self.MAX_DELAY, max(0, delay_seconds))),
        )

    def dead_letter(self, delivery: Any) -> None:
        if self.dead_letter_queue_url is None:
            raise RuntimeError("this function has no webhook dead-letter queue")
        self.client.send_message(
            QueueUrl=self.dead_letter_queue_url, MessageBody=delivery.model_dump_json()
        )
