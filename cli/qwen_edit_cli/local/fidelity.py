"""Where moto differs from AWS in a way the service relies on, the local stack makes it match.

DynamoDB applies a conditional write atomically; moto checks the condition and writes without
a lock, so two threads can both pass the same condition. The dispatcher's claims and the job store
depend on that atomicity, so moto's DynamoDB reads and writes run one at a time here (a query
under a concurrent update could even see an item half-written).

Step Functions' SendTaskFailure carries an error and a cause; moto's API drops the cause, so the
job would fail with the error's name instead of the dispatcher's code and message.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

from moto.core.responses import EmptyResult
from moto.dynamodb.models import DynamoDBBackend
from moto.stepfunctions.responses import StepFunctionResponse

_ATOMIC = ("get_item", "put_item", "update_item", "delete_item", "transact_write_items", "query")


@contextmanager
def atomic_dynamodb() -> Iterator[None]:
    lock = threading.RLock()

    def serialized(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(*args, **kwargs)

        return call

    with ExitStack() as patches:
        for name in _ATOMIC:
            patches.enter_context(
                mock.patch.object(DynamoDBBackend, name, serialized(getattr(DynamoDBBackend, name)))
            )
        yield


def _send_task_failure(self: StepFunctionResponse) -> Any:
    # The executing (parser) backend takes the cause; the plain one's signature does not say so.
    self.stepfunction_backend.send_task_failure(  # type: ignore[call-arg]
        self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
    )
    return EmptyResult()


@contextmanager
def as_on_aws() -> Iterator[None]:
    """Every difference above, made to match AWS."""
    with (
        atomic_dynamodb(),
        mock.patch.object(StepFunctionResponse, "send_task_failure", _send_task_failure),
    ):
        yield
