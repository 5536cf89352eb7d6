"""Input image references and the formats the provider accepts (the image-edit parameters
reference and the Vtrix-style task API reference).

A reference is one of: an http(s) URL, a `data:<mime>;base64,<data>` URL, or `s3://bucket/key`.
Inline data is checked here, before anything reaches the provider: at most 10 MB decoded, an
accepted format whose whole structure is intact (image_headers), a pixel count under the
decompression-bomb cap, and agreeing with the declared MIME type.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from qwen_edit.domain.catalog import INPUT_FORMATS, MAX_IMAGE_BYTES
from qwen_edit.domain.image_headers import ImageHeader, ImageRejected, inspect_image
from qwen_edit.domain.urls import parse_web_url

# Canonical format name → MIME types a data URL may declare for it.
MIME_TYPES: dict[str, tuple[str, ...]] = {
    "jpeg": ("image/jpeg", "image/jpg"),
    "png": ("image/png",),
    "bmp": ("image/bmp", "image/x-ms-bmp"),
    "tiff": ("image/tiff",),
    "webp": ("image/webp",),
    "gif": ("image/gif",),
}
FORMAT_OF_EXTENSION = {
    ext: ("jpeg" if ext == "jpg" else "tiff" if ext == "tif" else ext)
    for ext in (*INPUT_FORMATS, "tif")
}
_MAX_BASE64_CHARS = 4 * ((MAX_IMAGE_BYTES + 2) // 3)
# The longest data URL that can hold a 10 MB image (the longest MIME type's header included).
MAX_DATA_URL_CHARS = len("data:image/x-ms-bmp;base64,") + _MAX_BASE64_CHARS


def png_dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height of a well-formed PNG, or None for anything else."""
    try:
        header = inspect_image(data)
    except ImageRejected:
        return None
    return (header.width, header.height) if header.format == "png" else None


EXTENSION_OF_FORMAT = {
    "jpeg": "jpg",
    "png": "png",
    "bmp": "bmp",
    "tiff": "tiff",
    "webp": "webp",
    "gif": "gif",
}


def check_image_bytes(data: bytes, declared_mime: str | None = None) -> ImageHeader:
    """The image's real format and size, or ImageRejected naming the rule it breaks."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageRejected(
            "max-bytes",
            f"the image is {len(data):,} bytes; the limit is {MAX_IMAGE_BYTES:,} (10 MB)",
        )
    header = inspect_image(data)
    if declared_mime is not None and declared_mime.lower() not in MIME_TYPES[header.format]:
        raise ImageRejected(
            "mime-mismatch",
            f"declared as {declared_mime} but the bytes are "
            f"{header.format.upper()} "
            f"({MIME_TYPES[header.format][0]})",
        )
    return header


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
    if value.startswith("s3://"):
        bucket, _, key = value.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise ImageRejected("s3-reference", "an s3 reference must be s3://<bucket>/<key>")
        return S3Image(bucket, key)
    if value.startswith(("http://", "https://")) or "://" not in value:
        try:
            parse_web_url(value)
        except ValueError as error:
            raise ImageRejected("url", f"{value[:100]!r}: {error}") from None
        return UrlImage(value)
    raise ImageRejected(
        "scheme",
        "an image must be an http(s) URL, a data:<mime>;base64,… URL "
        "or an s3://bucket/key reference",
    )


def _parse_data_url(value: str) -> InlineImage:
    header, sep, payload = value.partition(",")
    mime, _, encoding = header.removeprefix("data:").partition(";")
    if not sep or encoding != "base64" or not mime.startswith("image/"):
        raise ImageRejected("data-url", "inline images must be data:<image mime>;base64,<data>")
    if mime.lower() not in {m for mimes in MIME_TYPES.values() for m in mimes}:
        raise ImageRejected(
            "format", f"{mime} is not a supported image type (JPG, JPEG, PNG, BMP, TIFF, WEBP, GIF)"
        )
    if len(payload) > _MAX_BASE64_CHARS:
        raise ImageRejected(
            "max-bytes", f"the inline image is over {MAX_IMAGE_BYTES:,} bytes (10 MB) decoded"
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageRejected("data-url", "the inline image is not valid base64") from None
    return InlineImage(mime=mime.lower(), data=data, format=check_image_bytes(data, mime).format)


def direct_url(ref: ImageRef) -> str:
    """The provider-readable form of a URL or inline image (s3:// needs presigning by the
    caller)."""
    if isinstance(ref, InlineImage):
        return ref.as_data_url()
    if isinstance(ref, UrlImage):
        return ref.url
    raise ValueError(f"{ref.uri} must be presigned before the provider can read it")
