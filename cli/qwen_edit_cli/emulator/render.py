"""Real PNG results for the emulator: sized as asked, and derived from the inputs and the seed so
that tests can tell outputs apart (different inputs, seed or index → different pixels)."""

from __future__ import annotations

import hashlib
import io

from PIL import Image, ImageDraw, UnidentifiedImageError

from qwen_edit.domain.catalog import PIXELS_MAX, PIXELS_MIN, SizeRule
from qwen_edit.domain.image_headers import MAX_INPUT_PIXELS

STAND_IN_SIZE = (1024, 768)  # inputs the emulator cannot download (it never leaves loopback)


class UndecodableImage(ValueError):
    """Image bytes Pillow cannot decode; the message is a short reason."""


def image_size(data: bytes) -> tuple[int, int]:
    """The size of the first frame, after decoding it for real as the provider does; an image
    over the service's pixel cap is refused before its pixels are allocated. Raises
    UndecodableImage."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_INPUT_PIXELS:
                raise UndecodableImage(
                    f"{image.width}x{image.height} pixels is over the limit of {MAX_INPUT_PIXELS:,}"
                )
            image.load()
            return image.size
    except UndecodableImage:
        raise
    # Pillow's plugins raise many types on malformed data (OSError, SyntaxError, struct.error,
    # zlib.error...); for untrusted bytes each means "undecodable".
    except Exception as error:
        raise UndecodableImage(_reason(error)) from error


def _reason(error: Exception) -> str:
    if isinstance(error, UnidentifiedImageError):
        return "not an image Pillow recognises"  # Pillow's own message names a BytesIO object
    lines = str(error).strip().splitlines()
    return lines[0].rstrip(".")[:160] if lines else type(error).__name__


def render_png(width: int, height: int, material: bytes, base: bytes | None = None) -> bytes:
    """A `width`×`height` PNG: the base image (an edit's last input) tinted, or a plain field,
    with marks whose colours and places come from `material`."""
    digest = hashlib.sha256(material).digest()
    tint = Image.new("RGB", (width, height), tuple(digest[0:3]))
    if base is None:
        image = tint
    else:
        with Image.open(io.BytesIO(base)) as source:
            image = Image.blend(source.convert("RGB").resize((width, height)), tint, 0.35)
    draw = ImageDraw.Draw(image)
    for i in range(4):  # four shapes whose colours and places come from the digest
        r, g, b, x, y, s = digest[3 + 6 * i : 9 + 6 * i]
        left, top = x * width // 256, y * height // 256
        extent = max(8, (s + 32) * min(width, height) // 512)
        draw.ellipse([left, top, left + extent, top + extent], fill=(r, g, b))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _round16(value: float) -> int:
    return max(16, round(value / 16) * 16)


def output_size(
    rule: SizeRule,
    requested: str | None,
    last_input: tuple[int, int] | None,
    text_default: str | None,
) -> tuple[int, int]:
    """The size the provider would produce (the edit parameters, task API and text-to-image
    references)."""
    if requested and rule is not SizeRule.NOT_SETTABLE:
        width, height = (int(v) for v in requested.split("*"))
        # The task API reference: the edit-plus family snaps a requested size to multiples of 16.
        return (
            (_round16(width), _round16(height)) if rule is SizeRule.EACH_SIDE else (width, height)
        )
    if last_input is None:  # text-to-image without a size
        width, height = (int(v) for v in (text_default or "1024*1024").split("*"))
        return width, height
    width, height = last_input
    if rule is SizeRule.TOTAL_PIXELS:  # 2.0 series: the last input's size, kept within bounds
        pixels = width * height
        scale = max(min(1.0, (PIXELS_MAX / pixels) ** 0.5), (PIXELS_MIN / pixels) ** 0.5)
        return round(width * scale), round(height * scale)
    # edit-max/plus/edit: about 1024*1024 pixels with the last input's aspect ratio.
    scale = (1024 * 1024 / (width * height)) ** 0.5
    return _round16(width * scale), _round16(height * scale)
