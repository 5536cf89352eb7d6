"""Traces: X-Ray subsegments (Powertools' Tracer) around each DynamoDB write of a job, S3 put and
provider call, annotated with the `job_id` and `model` the current thread works for, so one job
can be found across its functions (`annotation.job_id = "…"`).

Tracing costs nothing unless it is really on: aws_xray_sdk is imported, and botocore and httpx
patched, only in Lambda with X-Ray's trace header (the template's `Tracing: Active`), outside
SAM local, and without POWERTOOLS_TRACE_DISABLED. Otherwise the port is NoTracing and `traced`
leaves every port as it is. This module itself imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

from qwen_edit.ports import Tracing

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

Port = TypeVar("Port")
# Per wrapped port: the span name's prefix, and the methods that get a span `<prefix>.<method>`
# (a job's writes and paid calls). Of the queue only Admit's put: the dispatcher's own thread
# claims and removes entries of many jobs, and follows none of them.
SPANNED = {
    "jobs": (
        "dynamodb",
        frozenset(
            {"create", "transition", "update", "note", "record_webhook", "claim_webhook_event"}
        ),
    ),
    "queue": ("dynamodb.queue", frozenset({"put"})),
    "objects": ("s3", frozenset({"put"})),
    "provider": ("provider", frozenset({"submit", "fetch", "download", "cancel"})),
}
# The AWS SDK only (patch_all would import every library it knows: sqlite3…). Not httpx: its
# subsegments would record webhook URLs, whose paths can hold the receiver's secret (Slack- and
# Discord-style hooks); provider calls have spans of their own.
PATCHED = ("botocore",)


def enabled(environ: Mapping[str, str]) -> bool:
    """Whether X-Ray traces this invocation (the header is set per invocation, so ask inside
    one: ports are built on first use)."""
    return (
        constants.LAMBDA_TASK_ROOT_ENV in environ
        and constants.XRAY_TRACE_ID_ENV in environ
        and constants.SAM_LOCAL_ENV not in environ
        and not resolve_truthy_env_var_choice(
            env=environ.get(constants.TRACER_DISABLED_ENV, "false")
        )
    )


def tracing_for(environ: Mapping[str, str]) -> Tracing:
    return XRayTracing() if enabled(environ) else NoTracing()


class NoTracing:
    """Tracing off: nothing recorded, and `traced` wraps no port."""

    def follow(self, job_id: str, model: str | None = None) -> None:
        pass

    def span(self, name: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


class XRayTracing:
    def __init__(self, tracer: Tracer | None = None):
        from aws_lambda_powertools import Tracer

        # Built before the clients that use them, so the AWS SDK's and httpx's own subsegments
        # nest inside ours.
        self._tracer = tracer or Tracer(patch_modules=PATCHED)
        # Per thread (the dispatcher's workers each call for their own job) and per task.
        self._job: ContextVar[tuple[str, str | None]] = ContextVar("traced_job")

    def follow(self, job_id: str, model: str | None = None) -> None:
        self._job.set((job_id, model))

    @contextlib.contextmanager
    def span(self, name: str) -> Iterator[None]:
        # The X-Ray SDK records an error leaving the block on the subsegment, then re-raises it.
        with self._tracer.provider.in_subsegment(name=name) as subsegment:
            job_id, model = self._job.get((None, None))
            if subsegment is not None and job_id is not None:
                subsegment.put_annotation(key="job_id", value=job_id)
                if model is not None:
                    subsegment.put_annotation(key="model", value=model)
            yield


def traced(tracing: Tracing, name: str, port: Port) -> Port:
    """Port `name` with its SPANNED methods in spans; the port itself when tracing is off."""
    if isinstance(tracing, NoTracing):
        return port
    return cast(Port, _Spanned(tracing, *SPANNED[name], port))


class _Spanned:
    def __init__(self, tracing: Tracing, prefix: str, methods: frozenset[str], port: Any):
        self._tracing, self._prefix, self._methods, self._port = tracing, prefix, methods, port

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._port, name)
        if name not in self._methods:
            return attribute
        span = f"{self._prefix}.{name}"

        @functools.wraps(attribute)
        def spanned(*args: Any, **kwargs: Any) -> Any:
            with self._tracing.span(span):
                return attribute(*args, **kwargs)

        return spanned
