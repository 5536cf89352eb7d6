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
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import S3Event
from pydantic import BaseModel

from qwen_edit import service
from qwen_edit.catalog import Capability
from qwen_edit.context import Context
from qwen_edit.errors import InvalidRequest, JobConflict
from qwen_edit.images import FORMAT_OF_EXTENSION
from qwen_edit.jobs import Job, JobSource, JobStatus, OutputTarget

logger = Logger(child=True)
INBOX, OUTBOX, RECIPES = "inbox/", "outbox/", "recipes/"
UPLOAD_TENANT = "s3-uploads"  # upload jobs belong to no API key


class Upload(BaseModel):
    """One object creation, as an S3 event record tells it (keys already URL-decoded)."""

    bucket: str
    key: str
    size: int
    identity: str  # version id, else sequencer, else eTag@eventTime: the same for redeliveries


class Rejected(Exception):
    def __init__(self, code: str, message: str, details: list[dict] | None = None):
        super().__init__(message)
        self.code, self.message, self.details = code, message, details or []


@dataclass(frozen=True)
class Plan:
    payload: dict[str, Any]
    output: OutputTarget


def from_s3_notification(body: dict[str, Any]) -> list[Upload]:
    """The object creations in an S3 notification (an s3:TestEvent has none)."""
    uploads = []
    for record in S3Event(body).records if "Records" in body else []:
        if not record.event_name.startswith("ObjectCreated"):
            continue
        stored = record.s3.get_object
        # The object version names the job: versionId (versioned buckets), else the sequencer
        # (always sent by S3), else eTag@eventTime (emulators that send neither).
        identity = (stored.get("versionId") or stored.get("sequencer")
                    or f"{stored.get('eTag')}@{record.event_time}")
        # Keys arrive URL-encoded ("+" for a space); Powertools decodes only the first record's.
        uploads.append(Upload(bucket=record.s3.bucket.name, key=unquote_plus(stored.key),
                              size=stored.size, identity=identity))
    return uploads


def upload_job_id(upload: Upload) -> str:
    digest = hashlib.sha256(f"{upload.bucket}\n{upload.key}\n{upload.identity}".encode())
    return f"s3-{digest.hexdigest()[:40]}"


def handle(ctx: Context, upload: Upload) -> Job | None:
    """Start the upload's job, or record why it was refused. Redeliveries change nothing."""
    job_id = upload_job_id(upload)
    try:
        plan = _plan(ctx, upload)
        valid = service.validate(ctx, Capability.EDIT, plan.payload)
    except Rejected as rejected:
        _write_rejection(ctx, upload, rejected)
        return None
    except InvalidRequest as invalid:
        _write_rejection(ctx, upload, Rejected("InvalidRequest", invalid.message, invalid.details))
        return None
    try:
        return service.accept(ctx, valid, tenant=UPLOAD_TENANT, source=JobSource.S3,
                              job_id=job_id, output=plan.output)
    except JobConflict:
        job = ctx.jobs.get(job_id)
        if job.status is JobStatus.QUEUED:  # an earlier delivery died before starting it
            ctx.executions.start(job.id, {"job_id": job.id})
        logger.info("duplicate delivery", extra={"key": upload.key, "job_id": job_id})
        return None


def _mirror(key: str) -> tuple[str, str]:
    """(outbox prefix, file stem) mirroring an inbox key."""
    path = PurePosixPath(key.removeprefix(INBOX))
    parent = "" if str(path.parent) == "." else f"{path.parent}/"
    return f"{OUTBOX}{parent}", path.stem


def _plan(ctx: Context, upload: Upload) -> Plan:
    prefix, stem = _mirror(upload.key)
    output = OutputTarget(prefix=prefix, stem=stem)
    relative = upload.key.removeprefix(INBOX)
    extension = PurePosixPath(relative).suffix.lower().lstrip(".")
    if "/" not in relative:
        if extension != "json":
            raise Rejected("NotInARecipe", "put images under inbox/<recipe>/ (a recipe is "
                                           "recipes/<recipe>.json), or a manifest at inbox/<name>.json")
        return Plan(_manifest(ctx, upload), output)
    if extension not in FORMAT_OF_EXTENSION:
        raise Rejected("NotAnImage", f"{upload.key} does not end in an image extension "
                                     "(jpg, jpeg, png, bmp, tif, tiff, webp, gif)")
    recipe_name = relative.split("/", 1)[0]
    recipe = _read_json(ctx, f"{RECIPES}{recipe_name}.json", what=f"recipe {recipe_name!r}",
                        missing=f"unknown recipe {recipe_name!r}: upload "
                                f"recipes/{recipe_name}.json to the input bucket first")
    references = [_as_reference(ctx, ref) for ref in recipe.pop("images", None) or []]
    return Plan({**recipe, "images": [f"s3://{upload.bucket}/{upload.key}", *references]},
                output)


def _manifest(ctx: Context, upload: Upload) -> dict[str, Any]:
    manifest = _read_json(ctx, upload.key, what="the manifest", missing="the manifest is gone")
    images = manifest.get("images")
    if isinstance(images, list):
        for index, ref in enumerate(images):
            if isinstance(ref, str) and ref.startswith(INBOX):
                raise Rejected("InvalidRequest", f"images[{index}]: {ref} is in inbox/, which "
                                                 "triggers jobs; upload it under assets/ instead")
        manifest["images"] = [_as_reference(ctx, ref) for ref in images]
    return manifest


def _as_reference(ctx: Context, ref: Any) -> Any:
    """A bare key names an object of the input bucket; URLs and s3:// pass as they are."""
    if isinstance(ref, str) and "://" not in ref and not ref.startswith("data:"):
        return f"s3://{ctx.settings.input_bucket}/{ref.lstrip('/')}"
    return ref


def _read_json(ctx: Context, key: str, *, what: str, missing: str) -> dict[str, Any]:
    raw = ctx.objects.get(ctx.settings.input_bucket, key)
    if raw is None:
        raise Rejected("NotFound", missing)
    try:
        document = json.loads(raw)
    except ValueError as error:
        raise Rejected("MalformedJson", f"{what} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise Rejected("MalformedJson", f"{what} must be a JSON object (an edit request)")
    return document


def _write_rejection(ctx: Context, upload: Upload, rejected: Rejected) -> None:
    prefix, stem = _mirror(upload.key)
    record = {"input": f"s3://{upload.bucket}/{upload.key}",
              "error": {"code": rejected.code, "message": rejected.message,
                        "details": rejected.details}}
    ctx.objects.put(ctx.settings.output_bucket, f"{prefix}{stem}.error.json",
                    json.dumps(record, indent=2).encode(), "application/json")
    logger.info("upload rejected", extra={"key": upload.key, "code": rejected.code})
