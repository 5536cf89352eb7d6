"""Runs the real handlers of functions/<name>/app.py as moto's Lambda functions, in-process.

moto invokes Lambda functions through LambdaFunction._invoke_lambda (normally a Docker
container). The dispatcher replaces it: the function's name selects the handler, and an
exception surfaces as a Lambda function error with the Python runtime's payload, so the
state machine's Retry and Catch rules see the real error names.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from unittest import mock

from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from moto.awslambda.models import LambdaFunction

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class FakeLambdaContext:
    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def __post_init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 300_000


def load_handler(code_dir: Path, handler: str) -> Any:
    module_name, _, attribute = handler.rpartition(".")
    spec = importlib.util.spec_from_file_location(
        f"qwen_edit_functions.{code_dir.name}.{module_name}", code_dir / f"{module_name}.py"
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"no handler module {module_name} in {code_dir}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import would: pydantic resolves annotations here
    spec.loader.exec_module(module)
    return getattr(module, attribute)  # `module.attribute`: a handler, or what is asked for


class LambdaDispatcher:
    def __init__(self) -> None:
        self.sources: dict[str, tuple[Path, str]] = {}
        self.handlers: dict[str, Handler] = {}
        self.invocations: Counter[str] = Counter()
        self._lock = threading.Lock()
        # One event at a time per function, as in one Lambda instance: handlers keep per-event
        # state in module globals (the API resolver's current event, the logger's keys), which
        # separate instances never share, and threads of one process would.
        self._instances: defaultdict[str, threading.RLock] = defaultdict(threading.RLock)
        self._running = threading.local()  # the instance lock this thread's event holds

    def register(self, function_name: str, code_dir: Path, handler: str) -> None:
        self.sources[function_name] = (code_dir, handler)

    def handler(self, function_name: str) -> Handler:
        """Loaded on first use, like a Lambda cold start: module code sees the environment."""
        with self._lock:
            if function_name not in self.handlers:
                self.handlers[function_name] = cast(
                    Handler, load_handler(*self.sources[function_name])
                )
            return self.handlers[function_name]

    def call(self, function_name: str, event: dict[str, Any], context: Any) -> Any:
        handler = self.handler(function_name)
        with self._lock:
            self.invocations[function_name] += 1
            instance = self._instances[function_name]
        with instance:
            self._running.instance = instance
            try:
                return handler(event, context)
            finally:
                self._running.instance = None

    def pause(self, seconds: float) -> None:
        """A handler waiting for its job (GET ?wait): on AWS, other events of the function
        run meanwhile in other instances; here they run while this one sleeps. Powertools
        keeps the resolver's current event class-wide, so it is put back after."""
        instance = getattr(self._running, "instance", None)
        if instance is None:
            time.sleep(seconds)
            return
        event = BaseRouter.current_event
        instance.release()
        try:
            time.sleep(seconds)
        finally:
            instance.acquire()
            BaseRouter.current_event = event

    def invoke(self, function: LambdaFunction, event: Any) -> tuple[str, bool, str]:
        context = FakeLambdaContext(function.function_name, function.function_arn)
        try:
            result = self.call(
                function.function_name, event if isinstance(event, dict) else {}, context
            )
        except Exception as error:  # noqa: BLE001 - as the Lambda runtime: any error is a payload
            return (
                json.dumps(
                    {
                        "errorType": type(error).__name__,
                        "errorMessage": str(error),
                        "stackTrace": traceback.format_tb(error.__traceback__),
                    }
                ),
                True,
                "",
            )
        return json.dumps(result), False, ""

    @contextmanager
    def installed(self) -> Iterator[LambdaDispatcher]:
        dispatcher = self

        def _invoke_lambda(function: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
            if function.function_name not in dispatcher.sources:
                raise RuntimeError(f"no local handler for {function.function_name}")
            return dispatcher.invoke(function, event)

        with mock.patch.object(LambdaFunction, "_invoke_lambda", _invoke_lambda):
            yield self
