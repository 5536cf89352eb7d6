"""inspect_image: real structure and size of an input image, before any provider call."""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from qwen_edit.domain.image_headers import (
    MAX_INPUT_PIXELS,
    ImageHeader,
    ImageRejected,
    inspect_image,
)
from qwen_edit_cli.local.samples import image_bytes

RULES = {"format", "truncated", "corrupt", "pixels"}
SIZE = (67, 45)
FUZZ = settings(max_examples=300, deadline=None, database=None)


def noise(mode: str, size: tuple[int, int] = SIZE, seed: int = 0) -> Image.Image:
    """Random pixels (random alpha too in RGBA), so images do not compress to a few bytes."""
    base = "RGBA" if mode == "RGBA" else "RGB"
    pixels = random.Random(seed).randbytes(size[0] * size[1] * len(base))
    return Image.frombytes(base, size, pixels).convert(mode)


def save(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def two_frames(fmt: str, **options: object) -> bytes:
    first, second = noise("RGB", seed=1), noise("RGB", seed=2)
    return save(first, fmt, save_all=True, append_images=[second], duration=100, **options)


SAMPLES: dict[str, tuple[str, bytes]] = {
    "png-rgb": ("png", image_bytes("png", SIZE)),
    "png-rgb-noise": ("png", save(noise("RGB"), "PNG")),
    "png-rgba": ("png", save(noise("RGBA"), "PNG")),
    "png-palette": ("png", save(noise("P"), "PNG")),
    "jpeg-baseline": ("jpeg", image_bytes("jpeg", SIZE)),
    "jpeg-progressive": ("jpeg", save(noise("RGB"), "JPEG", progressive=True)),
    "gif": ("gif", image_bytes("gif", SIZE)),
    "gif-animated": ("gif", two_frames("GIF")),
    "bmp-24": ("bmp", image_bytes("bmp", SIZE)),
    "bmp-8": ("bmp", save(noise("P"), "BMP")),
    "tiff-raw": ("tiff", image_bytes("tiff", SIZE)),
    "tiff-lzw": ("tiff", save(noise("RGB"), "TIFF", compression="tiff_lzw")),
    "tiff-deflate": ("tiff", save(noise("RGB"), "TIFF", compression="tiff_adobe_deflate")),
    "tiff-big-endian": ("tiff", save(noise("L").convert("I;16B"), "TIFF")),
    "webp-lossy": ("webp", image_bytes("webp", SIZE)),
    "webp-lossless": ("webp", save(noise("RGB"), "WEBP", lossless=True)),
    "webp-alpha": ("webp", save(noise("RGBA"), "WEBP")),
    "webp-animated": ("webp", two_frames("WEBP")),
}


def outcome(data: bytes) -> ImageHeader | ImageRejected:
    """The header, or the refusal (which must name a known rule and explain itself)."""
    try:
        return inspect_image(data)
    except ImageRejected as refused:
        assert refused.rule in RULES and str(refused)
        return refused


def refusal(data: bytes) -> ImageRejected:
    with pytest.raises(ImageRejected) as refused:
        inspect_image(data)
    return refused.value


def chunk(kind: bytes, body: bytes = b"") -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width: int, height: int, *, depth: int = 8, color: int = 2) -> bytes:
    """A structurally valid PNG (correct CRCs) declaring this size, with a tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND")
    )


# ---- every format Pillow makes is accepted, with its real size ---------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_pillow_images_are_accepted_with_their_size(name: str) -> None:
    fmt, data = SAMPLES[name]
    assert inspect_image(data) == ImageHeader(fmt, *SIZE)


def test_the_samples_cover_both_tiff_byte_orders_and_every_webp_kind() -> None:
    assert SAMPLES["tiff-raw"][1][:2] == b"II" and SAMPLES["tiff-big-endian"][1][:2] == b"MM"
    first_chunks = {name: data[12:16] for name, (fmt, data) in SAMPLES.items() if fmt == "webp"}
    assert first_chunks == {
        "webp-lossy": b"VP8 ",
        "webp-lossless": b"VP8L",
        "webp-alpha": b"VP8X",
        "webp-animated": b"VP8X",
    }


@pytest.mark.parametrize("size", [(1, 1), (1, 300), (300, 1)])
@pytest.mark.parametrize("fmt", ["png", "jpeg", "gif", "bmp", "tiff", "webp"])
def test_extreme_aspect_ratios(fmt: str, size: tuple[int, int]) -> None:
    assert inspect_image(image_bytes(fmt, size)) == ImageHeader(fmt, *size)


@pytest.mark.parametrize("name", ["png-rgb", "jpeg-baseline", "gif", "webp-lossy"])
def test_bytes_after_the_end_marker_are_tolerated(name: str) -> None:
    fmt, data = SAMPLES[name]
    assert inspect_image(data + b"\0" * 100) == ImageHeader(fmt, *SIZE)


# ---- truncated uploads -------------------------------------------------------------------------


def test_a_png_cut_after_60_bytes_is_refused_as_truncated() -> None:
    refused = refusal(SAMPLES["png-rgb"][1][:60])
    assert refused.rule == "truncated"
    assert str(refused) == "the PNG ends after 60 bytes, before its IEND chunk (truncated upload?)"


@pytest.mark.parametrize("name", SAMPLES)
def test_every_cut_image_is_refused(name: str) -> None:
    data = SAMPLES[name][1]
    cuts = {8, 24, 60, len(data) // 2, len(data) - 1, *range(8, len(data), len(data) // 40)}
    for cut in sorted(cut for cut in cuts if cut < len(data)):
        assert refusal(data[:cut]).rule in {"truncated", "corrupt"}, cut


# ---- corrupt or fake images --------------------------------------------------------------------


def test_a_script_behind_a_gif_signature_is_refused() -> None:
    assert refusal(b"GIF89a<script>alert(1)</script>").rule == "corrupt"


def flip(data: bytes, pos: int) -> bytes:
    return data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1 :]


def replace(data: bytes, pos: int, new: bytes) -> bytes:
    return data[:pos] + new + data[pos + len(new) :]


PNG = png(10, 10)
JPEG = SAMPLES["jpeg-baseline"][1]
BMP = SAMPLES["bmp-24"][1]
TIFF = SAMPLES["tiff-raw"][1]
WEBP = SAMPLES["webp-lossy"][1]
BROKEN = {
    "empty": (b"", "format"),
    "text": (b"hello, world", "format"),
    "riff-wave": (b"RIFF\x04\x00\x00\x00WAVE", "format"),
    "png-bad-crc": (flip(PNG, 30), "corrupt"),
    "png-ihdr-not-first": (PNG[:8] + chunk(b"tEXt", b"a\0b") + PNG[8:], "corrupt"),
    "png-zero-width": (png(0, 10), "corrupt"),
    "png-impossible-depth": (png(10, 10, depth=3), "corrupt"),
    "png-no-idat": (PNG[:33] + chunk(b"IEND"), "corrupt"),
    "png-bad-chunk-type": (PNG[:33] + chunk(b"ID1T") + chunk(b"IEND"), "corrupt"),
    "jpeg-eoi-before-scan": (b"\xff\xd8\xff\xd9", "corrupt"),
    "jpeg-garbage-after-soi": (b"\xff\xd8hello", "corrupt"),
    "jpeg-no-eoi": (JPEG[:-2], "truncated"),
    "gif-no-image": (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "corrupt"),
    "gif-no-trailer": (SAMPLES["gif"][1][:-1], "truncated"),
    "bmp-unknown-header-size": (replace(BMP, 14, b"\x29"), "corrupt"),
    "bmp-two-planes": (replace(BMP, 26, b"\x02"), "corrupt"),
    "bmp-offset-in-headers": (replace(BMP, 10, b"\x10"), "corrupt"),
    "bmp-zero-height": (replace(BMP, 22, b"\0\0\0\0"), "corrupt"),
    "tiff-ifd-in-header": (replace(TIFF, 4, b"\x04"), "corrupt"),
    "tiff-ifd-past-end": (replace(TIFF, 4, b"\xff\xff\xff\x00"), "truncated"),
    "tiff-no-entries": (TIFF[:8] + b"\0\0\0\0\0\0", "corrupt"),
    "webp-bad-start-code": (flip(WEBP, 23), "corrupt"),
    "webp-riff-size-too-big": (replace(WEBP, 4, b"\xff\xff"), "truncated"),
    "webp-chunk-past-riff": (replace(WEBP, 16, b"\xff\xff"), "truncated"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_images_are_refused_naming_the_rule(name: str) -> None:
    data, rule = BROKEN[name]
    assert refusal(data).rule == rule


# ---- decompression bombs -----------------------------------------------------------------------


def test_a_png_declaring_30000_by_30000_pixels_is_refused() -> None:
    refused = refusal(png(30000, 30000))
    assert refused.rule == "pixels"
    assert "30,000x30,000" in str(refused) and f"{MAX_INPUT_PIXELS:,}" in str(refused)


def test_the_pixel_cap_is_inclusive() -> None:
    assert inspect_image(png(6144, 6144)) == ImageHeader("png", 6144, 6144)
    assert refusal(png(6144, 6145)).rule == "pixels"


@pytest.mark.parametrize(
    "fmt, data",
    [
        ("gif", b"GIF89a\xff\xff\xff\xff\x00\x00\x00,\0\0\0\0\x01\0\x01\0\0\x02\x02D\x01\0;"),
        ("webp", replace(SAMPLES["webp-alpha"][1], 24, b"\xff\xff\0\xff\xff\0")),
    ],
)
def test_other_formats_declaring_too_many_pixels_are_refused(fmt: str, data: bytes) -> None:
    refused = refusal(data)
    assert refused.rule == "pixels" and str(refused).startswith(f"the {fmt.upper()} declares")


# ---- any bytes at all: a header or a refusal, nothing else -------------------------------------


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    outcome(data)


@FUZZ
@given(
    st.sampled_from(
        [
            b"\x89PNG\r\n\x1a\n",
            b"\xff\xd8",
            b"GIF89a",
            b"BM",
            b"II*\x00",
            b"MM\x00*",
            b"RIFF\x40\x00\x00\x00WEBP",
        ]
    ),
    st.binary(max_size=4096),
)
def test_random_bytes_behind_a_signature(signature: bytes, rest: bytes) -> None:
    outcome(signature + rest)


@FUZZ
@given(
    st.sampled_from(sorted(SAMPLES)),
    st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 2**20),
)
def test_mutated_images(name: str, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(SAMPLES[name][1])
    for pos, value in edits:
        data[pos % len(data)] = value
    outcome(bytes(data[: len(data) - cut % 64]))
