"""Sample images made on the spot (Pillow), for the demo, the tests and the benchmarks: no files,
no network."""

from __future__ import annotations

import base64
import io

from PIL import Image

PIL_FORMATS = {
    "jpeg": "JPEG",
    "png": "PNG",
    "bmp": "BMP",
    "tiff": "TIFF",
    "webp": "WEBP",
    "gif": "GIF",
}
MIME = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "webp": "image/webp",
    "gif": "image/gif",
}


def image_bytes(
    fmt: str = "png",
    size: tuple[int, int] = (640, 480),
    color: tuple[int, int, int] = (200, 60, 40),
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=PIL_FORMATS[fmt])
    return out.getvalue()


def data_url(
    fmt: str = "png",
    size: tuple[int, int] = (640, 480),
    mime: str | None = None,
    color: tuple[int, int, int] = (200, 60, 40),
) -> str:
    encoded = base64.b64encode(image_bytes(fmt, size, color)).decode()
    return f"data:{mime or MIME[fmt]};base64,{encoded}"


def png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n"), "not a PNG"
    with Image.open(io.BytesIO(png)) as image:
        return image.size
