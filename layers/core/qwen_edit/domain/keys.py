"""Every S3 key shape the service reads or writes, in one place (template.yaml repeats the
prefixes in its notification filter and lifecycle rules; a test keeps them equal).

Input bucket: `inbox/` (uploads that trigger jobs), `recipes/<name>.json`, `uploads/<tenant>/…`
(POST /v1/uploads), `inputs/<job id>/…` (inline images of API jobs). Output bucket:
`results/<job id>/…` (API jobs) and `outbox/…` (upload-triggered jobs, mirroring `inbox/`).

Keys that come from outside (an upload's key, a manifest's image) are parsed, never joined
blindly: a `.`, `..` or empty segment, or a control character, is refused, so nothing can be
read or written outside the prefix it claims.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath

INBOX, OUTBOX, RECIPES = "inbox/", "outbox/", "recipes/"
RESULTS, INPUTS, UPLOADS = "results/", "inputs/", "uploads/"
REJECTED = f"{OUTBOX}_rejected/"  # error records of uploads whose key cannot be mirrored
MAX_KEY_BYTES = 1024  # S3's own limit


class UnsafeKey(ValueError):
    """A key with a `.`, `..` or empty segment, a control character, or over 1024 bytes."""


def segments(key: str) -> list[str]:
    """The key's path segments; UnsafeKey if any could escape or blur its prefix."""
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise UnsafeKey(f"the key is over {MAX_KEY_BYTES} bytes")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in key):
        raise UnsafeKey("the key contains a control character")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeKey(f"{key!r} has an empty, '.' or '..' segment")
    return parts


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of an s3:// URI the service wrote itself."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def tenant_folder(tenant: str) -> str:
    """A tenant's folder name: fixed length and safe whatever its API key id looks like."""
    return hashlib.sha256(tenant.encode()).hexdigest()[:20]


def upload_key(tenant: str, extension: str) -> str:
    return f"{UPLOADS}{tenant_folder(tenant)}/{uuid.uuid4().hex}.{extension}"


def is_tenant_upload(key: str, tenant: str) -> bool:
    parts = key.split("/")
    return len(parts) == 3 and parts[:2] == [UPLOADS.rstrip("/"), tenant_folder(tenant)]


def input_key(job_id: str, index: int, extension: str) -> str:
    return f"{INPUTS}{job_id}/{index}.{extension}"


def results_prefix(job_id: str) -> str:
    return f"{RESULTS}{job_id}/"


def job_id_in(folder: str, key: str) -> str | None:
    """The job id of `<folder><job id>/<file>` (RESULTS or INPUTS), else None."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == folder.rstrip("/") and parts[1] and parts[2]:
        return parts[1]
    return None


def recipe_key(name: str) -> str:
    return f"{RECIPES}{name}.json"


@dataclass(frozen=True)
class InboxKey:
    """An upload's key under `inbox/`: a manifest (`inbox/<name>.json`) or an image of a recipe
    (`inbox/<recipe>/<path>/<file>`). Built only by parse_inbox_key, so its parts are safe."""

    parts: tuple[str, ...]  # the segments after inbox/

    @property
    def recipe(self) -> str | None:
        return self.parts[0] if len(self.parts) > 1 else None

    @property
    def extension(self) -> str:
        return PurePosixPath(self.parts[-1]).suffix.lower().lstrip(".")

    @property
    def outbox_prefix(self) -> str:
        """Where its outputs go: the same path under outbox/."""
        return OUTBOX + "".join(f"{part}/" for part in self.parts[:-1])

    @property
    def stem(self) -> str:
        return PurePosixPath(self.parts[-1]).stem


def parse_inbox_key(key: str) -> InboxKey:
    """UnsafeKey unless `key` is a safe key under inbox/ whose outputs fit S3's key limit."""
    parts = segments(key)
    if parts[0] != INBOX.rstrip("/") or len(parts) < 2:
        raise UnsafeKey(f"{key!r} is not under {INBOX}")
    inbox = InboxKey(tuple(parts[1:]))
    longest = f"{inbox.outbox_prefix}{inbox.stem}.error.json"  # longer than <stem>-6.png
    if len(longest.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise UnsafeKey(f"its outputs' keys would be over {MAX_KEY_BYTES} bytes")
    return inbox


def rejection_key(key: str) -> str:
    """Where an upload's `.error.json` goes: beside its would-be outputs, or, for a key that
    cannot be mirrored safely, under outbox/_rejected/ named by the key's digest."""
    try:
        inbox = parse_inbox_key(key)
    except UnsafeKey:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return f"{REJECTED}{digest}.error.json"
    return f"{inbox.outbox_prefix}{inbox.stem}.error.json"


def is_folder_marker(key: str) -> bool:
    """The empty object a console creates for a folder (`inbox/watercolor/`)."""
    return key.endswith("/")
