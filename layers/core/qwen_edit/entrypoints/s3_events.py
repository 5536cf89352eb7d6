"""S3 notifications (as the trigger queue carries them) into the uploads use case's Upload."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event

from qwen_edit.app.uploads import Upload


def from_s3_notification(body: dict[str, Any]) -> list[Upload]:
    """The object creations in an S3 notification (an s3:TestEvent has none)."""
    uploads = []
    for record in S3Event(body).records if "Records" in body else []:
        if not record.event_name.startswith("ObjectCreated"):
            continue
        stored = record.s3.get_object
        # The object version names the job: versionId (versioned buckets), else the sequencer
        # (always sent by S3), else eTag@eventTime (emulators that send neither).
        identity = (
            stored.get("versionId")
            or stored.get("sequencer")
            or f"{stored.get('eTag')}@{record.event_time}"
        )
        # Keys arrive URL-encoded ("+" for a space); Powertools decodes only the first record's.
        uploads.append(
            Upload(
                bucket=record.s3.bucket.name,
                key=unquote_plus(stored.key),
                size=stored.size,
                identity=identity,
            )
        )
    return uploads
