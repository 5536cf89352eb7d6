"""Input image references and the formats the provider accepts (seeds 002, 003).

A reference is one of: an http(s) URL, a `data:<mime>;base64,<data>` URL, or `s3://bucket/key`.
Inline data is checked here, before anything reaches the provider: real bytes of an accepted
format, agreeing with the declared MIME type, at most 10 MB decoded.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import urlsplit

from qwen_edit.catalog import INPUT_FORMATS, MAX_IMAGE_BYTES

# Canonical format name → MIME types a data URL may declare for it.
MIME_TYPES: dict[str, tuple[str, ...]] = {
    "jpeg": ("image/jpeg", "image/jpg"),
    "png": ("image/png",),
    "bmp": ("image/bmp", "image/x-ms-bmp"),
    "tiff": ("image/tiff",),
    "webp": ("image/webp",),
    "gif": ("image/gif",),
}
FORMAT_OF_EXTENSION = {ext: ("jpeg" if ext == "jpg" else "tiff" if ext == "tif" else ext)
                       for ext in (*INPUT_FORMATS, "tif")}
_MAX_BASE64_CHARS = 4 * ((MAX_IMAGE_BYTES + 2) // 3)


class ImageRejected(ValueError):
    """An input image that breaks a rule; `rule` names which one."""

    def __init__(self, rule: str, message: str):
        super().__init__(message)
        self.rule = rule


def sniff_format(data: bytes) -> str | None:
    """The image format the bytes really are, by their signature, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def png_dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk, or None for anything else."""
    if sniff_format(data) != "png" or len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


EXTENSION_OF_FORMAT = {"jpeg": "jpg", "png": "png", "bmp": "bmp", "tiff": "tiff",
                       "webp": "webp", "gif": "gif"}


def check_image_bytes(data: bytes, declared_mime: str | None = None) -> str:
    """Return the format of `data`, or raise ImageRejected naming the rule it breaks."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageRejected("max-bytes", f"the image is {len(data):,} bytes; the limit is "
                                         f"{MAX_IMAGE_BYTES:,} (10 MB)")
    found = sniff_format(data)
    if found is None:
        raise ImageRejected("format", "the data is not an image in a supported format "
                                      "(JPG, JPEG, PNG, BMP, TIFF, WEBP, GIF)")
    if declared_mime is not None and declared_mime.lower() not in MIME_TYPES[found]:
        raise ImageRejected("mime-mismatch", f"declared as {declared_mime} but the bytes are "
                                             f"{found.upper()} ({MIME_TYPES[found][0]})")
    return found


@dataclass(frozen=True)
class UrlImage:
    url: str


@dataclass(frozen=True)
class InlineImage:
    mime: str
    data: bytes
    format: str

    def as_data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode()}"


@dataclass(frozen=True)
class S3Image:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


ImageRef = UrlImage | InlineImage | S3Image


def parse_image_ref(value: str) -> ImageRef:
    """Parse one entry of `images`; raise ImageRejected with the rule it breaks."""
    if value.startswith("data:"):
        return _parse_data_url(value)
    parts = urlsplit(value)
    if parts.scheme == "s3":
        key = parts.path.lstrip("/")
        if not parts.netloc or not key:
            raise ImageRejected("s3-reference", "an s3 reference must be s3://<bucket>/<key>")
        return S3Image(parts.netloc, key)
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise ImageRejected("url", f"{value!r} has no host")
        return UrlImage(value)
    raise ImageRejected("scheme", "an image must be an http(s) URL, a data:<mime>;base64,… URL "
                                  "or an s3://bucket/key reference")


def _parse_data_url(value: str) -> InlineImage:
    header, sep, payload = value.partition(",")
    mime, _, encoding = header.removeprefix("data:").partition(";")
    if not sep or encoding != "base64" or not mime.startswith("image/"):
        raise ImageRejected("data-url", "inline images must be data:<image mime>;base64,<data>")
    if mime.lower() not in {m for mimes in MIME_TYPES.values() for m in mimes}:
        raise ImageRejected("format", f"{mime} is not a supported image type (JPG, JPEG, PNG, "
                                      "BMP, TIFF, WEBP, GIF)")
    if len(payload) > _MAX_BASE64_CHARS:
        raise ImageRejected("max-bytes", f"the inline image is over {MAX_IMAGE_BYTES:,} bytes "
                                         "(10 MB) decoded")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageRejected("data-url", "the inline image is not valid base64") from None
    return InlineImage(mime=mime.lower(), data=data, format=check_image_bytes(data, mime))
