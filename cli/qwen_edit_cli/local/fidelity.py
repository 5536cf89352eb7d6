"""Where moto differs from AWS in a way the service relies on, the local stack makes it match.

DynamoDB applies a conditional write atomically; moto checks the condition and writes without
a lock, so two threads can both pass the same condition. Admission control and the job store
depend on that atomicity, so moto's DynamoDB reads and writes run one at a time here.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

from moto.dynamodb.models import DynamoDBBackend

_ATOMIC = ("get_item", "put_item", "update_item", "delete_item", "transact_write_items")


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
