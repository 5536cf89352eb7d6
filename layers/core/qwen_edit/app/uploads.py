"""Upload-triggered editing (SPEC §5): one S3 object version in `inbox/` → at most one job.

- `inbox/<recipe>/<path>/<file>.<image ext>`: an edit with the recipe `recipes/<recipe>.json`
  (an edit request without images; its `images`, if any, are extra references after Image 1).
- `inbox/<name>.json`: a manifest, an edit request whose `images` may be keys of the input
  bucket outside `inbox/`, s3:// references or URLs.
Outputs mirror the input path under `outbox/` in the output bucket; a rejected upload writes
`<stem>.error.json` there instead and costs no provider call. Inputs are never changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict

from qwen_edit.app import lifecycle, service
from qwen_edit.context import Context
from qwen_edit.domain import keys
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.errors import (
    BudgetExceeded,
    InvalidRequest,
    JobConflict,
    JobNotFound,
    QueueFull,
)
from qwen_edit.domain.images import FORMAT_OF_EXTENSION
from qwen_edit.domain.jobs import UPLOAD_TENANT, Job, JobSource, JobStatus, OutputTarget
from qwen_edit.settings import Buckets

logger = Logger(child=True)


class Upload(BaseModel):
    """One object creation, as an S3 event record tells it (keys already URL-decoded)."""

    model_config = ConfigDict(defer_build=True)

    bucket: str
    key: str
    size: int
    identity: str  # version id, else sequencer, else eTag@eventTime: the same for redeliveries


class Rejected(Exception):
    def __init__(self, code: str, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.code, self.message, self.details = code, message, details or []


@dataclass(frozen=True)
class Plan:
    payload: dict[str, Any]
    output: OutputTarget


def upload_job_id(upload: Upload) -> str:
    digest = hashlib.sha256(f"{upload.bucket}\n{upload.key}\n{upload.identity}".encode())
    return f"s3-{digest.hexdigest()[:40]}"


def handle(ctx: Context, upload: Upload) -> Job | None:
    """Start the upload's job, or record why it was refused. Redeliveries change nothing."""
    if keys.is_folder_marker(upload.key):
        return None  # a console's "create folder": nothing to edit, nothing to answer
    job_id = upload_job_id(upload)
    ctx.tracing.follow(job_id)  # a rejection too is written under the job id it would have had
    try:
        inbox = _inbox_key(upload)
        plan = _plan(ctx, upload, inbox)
        valid = service.validate(ctx, Capability.EDIT, plan.payload, tenant=UPLOAD_TENANT)
    except Rejected as rejected:
        _write_rejection(ctx, upload, rejected)
        return None
    except InvalidRequest as invalid:
        _write_rejection(ctx, upload, Rejected("InvalidRequest", invalid.message, invalid.details))
        return None
    try:
        job, _room = service.accept(
            ctx, valid, tenant=UPLOAD_TENANT, source=JobSource.S3, job_id=job_id, output=plan.output
        )
        return job
    except (QueueFull, BudgetExceeded, InvalidRequest) as full:
        # Over a cap (or a model without a price under a spend cap): the upload stays in the
        # inbox, and a new version of it (README "Budgets and keys") is a new job.
        try:
            _redelivered(ctx, upload, job_id)  # this very upload may be one of those waiting
        except JobNotFound:
            _write_rejection(ctx, upload, Rejected(full.code, full.message, full.details))
        return None
    except JobConflict:
        _redelivered(ctx, upload, job_id)
        return None


def _redelivered(ctx: Context, upload: Upload, job_id: str) -> None:
    """A delivery of an upload that already has its job (JobNotFound if it has none)."""
    job = lifecycle.load_job(ctx, job_id)
    if job.status is JobStatus.QUEUED:  # an earlier delivery died before starting it
        ctx.executions.start(job.id, {"job_id": job.id})
    logger.info("duplicate delivery", extra={"key": upload.key, "job_id": job_id})


def _inbox_key(upload: Upload) -> keys.InboxKey:
    try:
        return keys.parse_inbox_key(upload.key)
    except keys.UnsafeKey as unsafe:
        raise Rejected(
            "UnsafeKey", f"{unsafe}: rename the file; nothing was read or written for it"
        ) from None


def _plan(ctx: Context, upload: Upload, inbox: keys.InboxKey) -> Plan:
    """Read the recipe or manifest (storage trouble propagates, and SQS retries), then turn it
    into a request. A document that cannot be turned into one is the uploader's mistake: it
    is answered with an .error.json, never retried."""
    output = OutputTarget(prefix=inbox.outbox_prefix, stem=inbox.stem)
    if inbox.recipe is None:
        if inbox.extension != "json":
            raise Rejected(
                "NotInARecipe",
                "put images under inbox/<recipe>/ (a recipe is "
                "recipes/<recipe>.json), or a manifest at inbox/<name>.json",
            )
        what, document = (
            "the manifest",
            _read_json(ctx, upload.key, what="the manifest", missing="the manifest is gone"),
        )
    else:
        if inbox.extension not in FORMAT_OF_EXTENSION:
            raise Rejected(
                "NotAnImage",
                f"{upload.key} does not end in an image extension "
                "(jpg, jpeg, png, bmp, tif, tiff, webp, gif)",
            )
        what = f"recipe {inbox.recipe!r}"
        document = _read_json(
            ctx,
            keys.recipe_key(inbox.recipe),
            what=what,
            missing=f"unknown recipe {inbox.recipe!r}: upload "
            f"{keys.recipe_key(inbox.recipe)} to the input bucket first",
        )
    try:
        images = _references(ctx, what, document.pop("images", None))
    except Rejected:
        raise
    except Exception as error:
        logger.exception("upload not planned", extra={"key": upload.key})
        raise Rejected(
            "InvalidDocument",
            f"{what} could not be read as an edit request ({type(error).__name__}: {error})",
        ) from None
    if inbox.recipe is not None:
        images = [keys.s3_uri(upload.bucket, upload.key), *images]
    return Plan({**document, "images": images}, output)


def _references(ctx: Context, what: str, images: Any) -> list[str]:
    """A recipe's extra images, or a manifest's images, as s3:// references or URLs."""
    if images is None:
        return []
    if not isinstance(images, list) or not all(isinstance(ref, str) for ref in images):
        raise Rejected(
            "InvalidRequest",
            f"{what}: images must be a list of strings (keys of the "
            "input bucket, s3:// references or URLs)",
        )
    references = [_as_reference(ctx, ref) for ref in images]
    for index, ref in enumerate(references):
        if _triggers_jobs(ctx, ref):
            raise Rejected(
                "InvalidRequest",
                f"images[{index}]: {images[index]} is in "
                f"{keys.INBOX}, which triggers jobs; upload it "
                "under assets/ instead",
            )
    return references


def _as_reference(ctx: Context, ref: str) -> str:
    """A bare key names an object of the input bucket; URLs and s3:// pass as they are."""
    if "://" not in ref and not ref.startswith("data:"):
        return keys.s3_uri(ctx.need(Buckets).input_bucket, ref.lstrip("/"))
    return ref


def _triggers_jobs(ctx: Context, ref: str) -> bool:
    prefix = keys.s3_uri(ctx.need(Buckets).input_bucket, keys.INBOX)
    return ref.startswith(prefix)


def _read_json(ctx: Context, key: str, *, what: str, missing: str) -> dict[str, Any]:
    raw = ctx.objects.get(ctx.need(Buckets).input_bucket, key)
    if raw is None:
        raise Rejected("NotFound", missing)
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise Rejected("MalformedJson", f"{what} is not valid JSON: {str(error)[:200]}") from None
    if not isinstance(document, dict):
        raise Rejected("MalformedJson", f"{what} must be a JSON object (an edit request)")
    return document


def _write_rejection(ctx: Context, upload: Upload, rejected: Rejected) -> None:
    ctx.metrics.count("UploadRejections", Reason=rejected.code)
    record = {
        "input": keys.s3_uri(upload.bucket, upload.key),
        "error": {"code": rejected.code, "message": rejected.message, "details": rejected.details},
    }
    ctx.objects.put(
        ctx.need(Buckets).output_bucket,
        keys.rejection_key(upload.key),
        json.dumps(record, indent=2).encode(),
        "application/json",
    )
    logger.info(
        "upload rejected",
        extra={"key": upload.key, "code": rejected.code, "reason": rejected.message},
    )
