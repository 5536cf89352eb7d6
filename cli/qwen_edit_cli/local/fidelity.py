"""Where moto differs from AWS in a way the service relies on, the local stack makes it match.

DynamoDB applies a conditional write atomically; moto checks the condition and writes without
a lock, so two threads can both pass the same condition. The dispatcher's claims and the job store
depend on that atomicity, so moto's DynamoDB reads and writes run one at a time here (a query
under a concurrent update could even see an item half-written). What they return is copied under
the same lock: moto hands back its live items and turns them into JSON after the call, while
another thread's update may be changing them.

Step Functions' SendTaskFailure carries an error and a cause; moto's API drops the cause, so the
job would fail with the error's name instead of the dispatcher's code and message.

S3 answers a browser's CORS preflight (OPTIONS) from the bucket's CORS rules. moto's server
checks the presigned signature against OPTIONS instead (a 403) and lets its blanket CORS layer
allow any origin; the console's uploads need S3's behaviour, so the local stack's S3 endpoint
answers preflights from the bucket's rules (template.yaml's CorsConfiguration).
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.core.responses import EmptyResult
from moto.dynamodb.models import DynamoDBBackend
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.s3.models import s3_backends
from moto.stepfunctions.responses import StepFunctionResponse
from werkzeug.serving import make_server

_ATOMIC = (
    *("get_item", "put_item", "update_item", "delete_item", "transact_write_items"),
    *("query", "scan"),
)


@contextmanager
def atomic_dynamodb() -> Iterator[None]:
    lock = threading.RLock()

    def serialized(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return copy.deepcopy(method(*args, **kwargs))

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


# ---- S3 CORS preflights --------------------------------------------------------------------

_CORS_REFUSED = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessForbidden</Code>'
    b"<Message>CORSResponse: This CORS request is not allowed.</Message></Error>"
)


def _bucket_cors(bucket: str) -> list[Any]:
    try:
        return list(s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_bucket(bucket).cors)
    except Exception:  # noqa: BLE001 - no such bucket: no rules, as S3 answers then
        return []


def _allows(patterns: Iterable[str] | None, value: str) -> bool:
    return any(fnmatch.fnmatchcase(value.lower(), p.lower()) for p in patterns or ())


def s3_preflight(app: Callable[..., Any]) -> Callable[..., Any]:
    """WSGI middleware: an OPTIONS preflight on a path-style S3 URL is answered as S3 does, by
    the first of the bucket's CORS rules that allows its origin, method and headers, or 403."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        origin = environ.get("HTTP_ORIGIN")
        method = environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD")
        if environ["REQUEST_METHOD"] != "OPTIONS" or not origin or not method:
            return app(environ, start_response)  # type: ignore[no-any-return]
        bucket = environ.get("PATH_INFO", "/").lstrip("/").split("/", 1)[0]
        asked = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "")
        headers = [h.strip() for h in asked.split(",") if h.strip()]
        for rule in _bucket_cors(bucket):
            if (
                _allows(rule.allowed_origins, origin)
                and method in rule.allowed_methods
                and all(_allows(rule.allowed_headers, h) for h in headers)
            ):
                answer = [
                    ("Access-Control-Allow-Origin", "*" if "*" in rule.allowed_origins else origin),
                    ("Access-Control-Allow-Methods", ", ".join(rule.allowed_methods)),
                    (
                        "Vary",
                        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
                    ),
                    ("Content-Length", "0"),
                ]
                if headers:
                    answer.append(("Access-Control-Allow-Headers", ", ".join(headers)))
                if rule.max_age_seconds:
                    answer.append(("Access-Control-Max-Age", str(rule.max_age_seconds)))
                start_response("200 OK", answer)
                return [b""]
        start_response(
            "403 Forbidden",
            [("Content-Type", "application/xml"), ("Content-Length", str(len(_CORS_REFUSED)))],
        )
        return [_CORS_REFUSED]

    return wsgi


class MotoServer(ThreadedMotoServer):
    """moto's threaded server, with S3's preflight answers (s3_preflight)."""

    def _server_entry(self) -> None:
        app = s3_preflight(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()
