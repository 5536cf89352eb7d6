"""The real structure and size of an input image, read from its headers without decoding pixels.

Sniffing an image's first bytes lets through a PNG cut after 60 bytes, `GIF89a<script>...`, and
a 110 KB PNG whose header declares 30000x30000 pixels, and each of them would reach the paid
provider. `inspect_image` walks the container structure of every accepted format (PNG chunks,
JPEG segments, GIF blocks, BMP headers, the first TIFF IFD, WEBP chunks) in one linear pass, so a
truncated or undecodable image and a decompression bomb are refused before any provider call.
Standard library only: it runs in Lambda, where Pillow is not installed.
"""

from __future__ import annotations

import re
import sys
import zlib
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

# 4x the provider's largest recommended input (3072*3072; "Model Studio image-edit API
# reference": best results with each side 384-3072). 37.7 MP decodes to ~151 MB as RGBA, which a
# 512 MB Lambda or the provider can hold; 30000*30000 is a decompression bomb.
MAX_INPUT_PIXELS = 6144 * 6144

Order = Literal["little", "big"]
Size = tuple[int, int]


class ImageRejected(ValueError):
    """An input image that breaks a rule; `rule` names which one."""

    def __init__(self, rule: str, message: str):
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True)
class ImageHeader:
    format: str  # one of "png", "jpeg", "gif", "bmp", "tiff", "webp"
    width: int
    height: int


def inspect_image(data: bytes) -> ImageHeader:
    """The format and size the bytes really have; ImageRejected naming the rule otherwise."""
    fmt = next((name for signature, name in _SIGNATURES if data.startswith(signature)), None)
    if fmt is None:
        raise ImageRejected(
            "format",
            "the data is not a PNG, JPEG, GIF, BMP, TIFF or WEBP image (no known signature)",
        )
    width, height = _PARSERS[fmt](data)
    if width <= 0 or height <= 0:
        raise _corrupt(fmt, f"it declares {width}x{height} pixels")
    if width * height > MAX_INPUT_PIXELS:
        raise ImageRejected(
            "pixels",
            f"the {fmt.upper()} declares {width:,}x{height:,} = "
            f"{width * height:,} pixels; the limit is "
            f"{MAX_INPUT_PIXELS:,} (6144x6144)",
        )
    return ImageHeader(fmt, width, height)


# ---- shared helpers ----------------------------------------------------------------------------


def _corrupt(fmt: str, problem: str) -> ImageRejected:
    return ImageRejected("corrupt", f"the {fmt.upper()} is corrupt: {problem}")


def _truncated(data: bytes, fmt: str, where: str) -> ImageRejected:
    """`where` says what is missing, e.g. "before its IEND chunk"."""
    return ImageRejected(
        "truncated",
        f"the {fmt.upper()} ends after {len(data):,} bytes, {where} (truncated upload?)",
    )


def _need(data: bytes, end: int, fmt: str, where: str) -> None:
    """Refuse as truncated unless `data` reaches `end`."""
    if end > len(data):
        raise _truncated(data, fmt, where)


def _uint(data: bytes, pos: int, size: int, order: Order) -> int:
    return int.from_bytes(data[pos : pos + size], order)


# ---- PNG: signature, then chunks (length, type, data, CRC) from IHDR to IEND -------------------

_PNG_END = "before its IEND chunk"
_PNG_MAX_CHUNK = 2**31 - 1
_PNG_BIT_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}


def _png_size(data: bytes) -> Size:
    pos, size, has_idat = 8, None, False
    while True:
        kind, body, pos = _png_chunk(data, pos)
        if size is None:
            size = _png_ihdr(kind, body)
        elif kind == b"IHDR":
            raise _corrupt("png", "it has a second IHDR chunk")
        has_idat = has_idat or kind == b"IDAT"
        if kind == b"IEND":
            break
    if not has_idat:
        raise _corrupt("png", "it has no IDAT chunk (no image data)")
    return size


def _png_chunk(data: bytes, pos: int) -> tuple[bytes, bytes, int]:
    """The type and data of the chunk at `pos`, its CRC checked, and where the next one starts."""
    _need(data, pos + 8, "png", _PNG_END)
    length, kind = _uint(data, pos, 4, "big"), data[pos + 4 : pos + 8]
    if not kind.isalpha():
        raise _corrupt("png", f"the chunk at byte {pos:,} has an invalid type {kind!r}")
    if length > _PNG_MAX_CHUNK:
        raise _corrupt("png", f"its {kind.decode()} chunk declares {length:,} bytes")
    end = pos + 12 + length
    _need(data, end, "png", _PNG_END)
    body = data[pos + 8 : end - 4]
    if zlib.crc32(body, zlib.crc32(kind)) != _uint(data, end - 4, 4, "big"):
        raise _corrupt("png", f"the CRC of its {kind.decode()} chunk does not match")
    return kind, body, end


def _png_ihdr(kind: bytes, body: bytes) -> Size:
    if kind != b"IHDR":
        raise _corrupt("png", f"its first chunk is {kind.decode()}, not IHDR")
    if len(body) != 13:
        raise _corrupt("png", f"its IHDR chunk has {len(body)} bytes, not 13")
    depth, color, compression, filtering, interlace = body[8:13]
    if depth not in _PNG_BIT_DEPTHS.get(color, set()):
        raise _corrupt("png", f"bit depth {depth} with color type {color} is impossible")
    if compression or filtering or interlace > 1:
        raise _corrupt("png", "its IHDR names an unknown compression, filter or interlace method")
    return _uint(body, 0, 4, "big"), _uint(body, 4, 4, "big")


# ---- JPEG: SOI, marker segments up to the first SOS, then scans and segments up to EOI ---------

_JPEG_END = "before its EOI marker"
_JPEG_SOF = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-RST7: no length
_JPEG_FILL_AND_MARKER = re.compile(rb"\xff+[^\xff]")
# In scan data FF is followed by 00 (stuffing), 01/D0-D7 (TEM/RST) or FF (fill), else a marker.
_JPEG_MARKER_IN_SCAN = re.compile(rb"\xff[\x02-\xcf\xd8-\xfe]")


def _jpeg_size(data: bytes) -> Size:
    pos, size, marker = 2, None, 0
    while marker != 0xDA:
        marker, pos = _jpeg_marker(data, pos)
        if marker not in _JPEG_STANDALONE:
            end = _jpeg_segment_end(data, pos)
            if marker in _JPEG_SOF and size is None:
                size = _jpeg_sof(data[pos + 2 : end])
            pos = end
    if size is None:
        raise _corrupt("jpeg", "its image data (SOS) comes before any frame header (SOF)")
    _jpeg_find_eoi(data, pos)
    return size


def _jpeg_marker(data: bytes, pos: int) -> tuple[int, int]:
    """The marker at `pos`, after any fill bytes, and the position after it."""
    found = _JPEG_FILL_AND_MARKER.match(data, pos)
    if found is None:
        if data[pos : pos + 1] in (b"", b"\xff"):
            raise _truncated(data, "jpeg", _JPEG_END)
        raise _corrupt("jpeg", f"byte {pos:,} should start a marker but is 0x{data[pos]:02X}")
    marker = data[found.end() - 1]
    if marker in (0x00, 0xD8, 0xD9):
        raise _corrupt("jpeg", f"marker FF{marker:02X} at byte {pos:,} comes before any scan")
    return marker, found.end()


def _jpeg_segment_end(data: bytes, pos: int) -> int:
    """Where the segment whose length field is at `pos` ends."""
    _need(data, pos + 2, "jpeg", _JPEG_END)
    length = _uint(data, pos, 2, "big")
    if length < 2:
        raise _corrupt("jpeg", f"the segment at byte {pos:,} declares {length} bytes")
    _need(data, pos + length, "jpeg", _JPEG_END)
    return pos + length


def _jpeg_sof(payload: bytes) -> Size:
    if len(payload) < 6 or len(payload) != 6 + 3 * payload[5]:
        raise _corrupt("jpeg", "its frame header (SOF) has the wrong length")
    return _uint(payload, 3, 2, "big"), _uint(payload, 1, 2, "big")


def _jpeg_find_eoi(data: bytes, pos: int) -> None:
    """Skip scan data and the segments between scans until the EOI marker."""
    while True:
        found = _JPEG_MARKER_IN_SCAN.search(data, pos)
        if found is None:
            raise _truncated(data, "jpeg", _JPEG_END)
        if data[found.start() + 1] == 0xD9:
            return
        pos = _jpeg_segment_end(data, found.end())


# ---- GIF: header, logical screen, color table, then extensions and images up to the trailer ----

_GIF_END = "before its trailer"


def _gif_size(data: bytes) -> Size:
    _need(data, 13, "gif", _GIF_END)
    pos, images = 13 + _gif_color_table(data[10]), 0
    while True:
        _need(data, pos + 1, "gif", _GIF_END)
        if data[pos] == 0x3B:
            break
        if data[pos] == 0x21:
            pos = _gif_sub_blocks(data, pos + 2)
        elif data[pos] == 0x2C:
            pos, images = _gif_image(data, pos), images + 1
        else:
            raise _corrupt("gif", f"byte {pos:,} starts an unknown block 0x{data[pos]:02X}")
    if not images:
        raise _corrupt("gif", "it has no image")
    return _uint(data, 6, 2, "little"), _uint(data, 8, 2, "little")


def _gif_color_table(flags: int) -> int:
    """The length of the color table that a descriptor with these flags is followed by."""
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _gif_image(data: bytes, pos: int) -> int:
    """Where the image (descriptor, color table, LZW data) starting at `pos` ends."""
    _need(data, pos + 10, "gif", _GIF_END)
    pos += 10 + _gif_color_table(data[pos + 9])
    _need(data, pos + 1, "gif", _GIF_END)
    if data[pos] > 11:
        raise _corrupt("gif", f"its LZW minimum code size {data[pos]} is impossible")
    return _gif_sub_blocks(data, pos + 1)


def _gif_sub_blocks(data: bytes, pos: int) -> int:
    """Where the data sub-blocks starting at `pos` end, after their 0 terminator."""
    while pos < len(data) and data[pos]:
        pos += 1 + data[pos]
    _need(data, pos + 1, "gif", _GIF_END)
    return pos + 1


# ---- BMP: file header, DIB header, pixel data ----------------------------------------------------

_BMP_DIB_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})
_BMP_BIT_COUNTS = frozenset({1, 4, 8, 16, 24, 32})
_BMP_UNCOMPRESSED = frozenset({0, 3})  # RGB, BITFIELDS: rows stored as they are


def _bmp_size(data: bytes) -> Size:
    _need(data, 18, "bmp", "inside its headers")
    header = _uint(data, 14, 4, "little")
    if header not in _BMP_DIB_SIZES:
        raise _corrupt("bmp", f"its DIB header size {header} is unknown")
    _need(data, 14 + header, "bmp", "inside its headers")
    width, height, planes, bits, compression = _bmp_fields(data, header)
    if planes != 1 or bits not in _BMP_BIT_COUNTS or compression > 6:
        raise _corrupt(
            "bmp", f"planes {planes}, bit count {bits} or compression {compression} is impossible"
        )
    offset = _uint(data, 10, 4, "little")
    if offset < 14 + header:
        raise _corrupt("bmp", f"its pixel data offset {offset:,} points inside its headers")
    rows = ((width * bits + 31) // 32) * 4 * abs(height)  # each row padded to 4 bytes
    _need(
        data,
        offset + (rows if compression in _BMP_UNCOMPRESSED else 1),
        "bmp",
        "before the end of its pixel data",
    )
    return width, abs(height)


def _bmp_fields(data: bytes, header: int) -> tuple[int, int, int, int, int]:
    """Width, height (negative: top-down), planes, bit count and compression."""
    if header == 12:  # OS/2 BITMAPCOREHEADER: 16-bit fields, never compressed
        width, height, planes, bits = (_uint(data, pos, 2, "little") for pos in (18, 20, 22, 24))
        return width, height, planes, bits, 0
    width = int.from_bytes(data[18:22], "little", signed=True)
    height = int.from_bytes(data[22:26], "little", signed=True)
    return (
        width,
        height,
        _uint(data, 26, 2, "little"),
        _uint(data, 28, 2, "little"),
        _uint(data, 30, 4, "little"),
    )


# ---- TIFF: header, first IFD (entries and the values they point to), strips or tiles ---------

_TIFF_WHERE = "before the end of its first directory"
_TIFF_TYPE_SIZES = {
    1: 1,
    2: 1,
    3: 2,
    4: 4,
    5: 8,
    6: 1,
    7: 1,
    8: 2,
    9: 4,
    10: 8,
    11: 4,
    12: 8,
    13: 4,
}  # field types of TIFF 6.0; readers skip others
_TIFF_READ = frozenset({256, 257, 273, 279, 324, 325})
_TIFF_DATA = ((273, 279, "strip"), (324, 325, "tile"))  # offsets tag, byte counts tag, unit


def _tiff_size(data: bytes) -> Size:
    order: Order = "little" if data.startswith(b"II") else "big"
    _need(data, 8, "tiff", _TIFF_WHERE)
    ifd = _uint(data, 4, 4, order)
    if ifd < 8:
        raise _corrupt("tiff", f"its first directory offset {ifd} points inside its header")
    tags = _tiff_tags(data, ifd, order)
    _tiff_check_data(data, tags)
    return _tiff_first(tags, 256, "ImageWidth"), _tiff_first(tags, 257, "ImageLength")


def _tiff_tags(data: bytes, ifd: int, order: Order) -> dict[int, array[int]]:
    """The values of the tags read here, from the directory at `ifd`; all entries checked."""
    _need(data, ifd + 2, "tiff", _TIFF_WHERE)
    count = _uint(data, ifd, 2, order)
    if count == 0:
        raise _corrupt("tiff", "its first directory has no entries")
    _need(data, ifd + 2 + 12 * count + 4, "tiff", _TIFF_WHERE)
    tags: dict[int, array[int]] = {}
    for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
        tag = _uint(data, entry, 2, order)
        kind, start, size = _tiff_value_span(data, entry, order)
        if tag in _TIFF_READ and tag not in tags:  # the first of duplicates: each read once
            tags[tag] = _tiff_integers(tag, kind, data[start : start + size], order)
    return tags


def _tiff_value_span(data: bytes, entry: int, order: Order) -> tuple[int, int, int]:
    """The type of a directory entry and where its values lie (in the entry or where it
    points), which must be inside the file."""
    kind, count = _uint(data, entry + 2, 2, order), _uint(data, entry + 4, 4, order)
    size = _TIFF_TYPE_SIZES.get(kind, 0) * count
    start = entry + 8 if size <= 4 else _uint(data, entry + 8, 4, order)
    _need(data, start + size, "tiff", _TIFF_WHERE)
    return kind, start, size


def _tiff_integers(tag: int, kind: int, values: bytes, order: Order) -> array[int]:
    if kind not in (3, 4):
        raise _corrupt("tiff", f"tag {tag} has type {kind}, not SHORT or LONG")
    integers = array("H" if kind == 3 else "I", values)
    if order != sys.byteorder:
        integers.byteswap()
    return integers


def _tiff_first(tags: dict[int, array[int]], tag: int, name: str) -> int:
    if not tags.get(tag):
        raise _corrupt("tiff", f"it has no {name} tag")
    return tags[tag][0]


def _tiff_check_data(data: bytes, tags: dict[int, array[int]]) -> None:
    """Every strip or tile the first directory names lies inside the file."""
    for offsets_tag, counts_tag, unit in _TIFF_DATA:
        if offsets_tag in tags or counts_tag in tags:
            offsets, counts = tags.get(offsets_tag, array("I")), tags.get(counts_tag, array("I"))
            if not offsets or len(offsets) != len(counts):
                raise _corrupt("tiff", f"its {unit} offsets and byte counts do not pair up")
            ends = (offset + count for offset, count in zip(offsets, counts, strict=False))
            past = next((n for n, end in enumerate(ends, 1) if end > len(data)), None)
            if past is not None:
                raise _truncated(
                    data, "tiff", f"before the end of {unit} {past:,} of {len(offsets):,}"
                )
            return
    raise _corrupt("tiff", "its first directory names no strips or tiles (no image data)")


# ---- WEBP: RIFF container of chunks; the first is VP8 (lossy), VP8L (lossless) or VP8X ---------

_WEBP_IMAGE_CHUNKS = (b"VP8 ", b"VP8L", b"ANMF")


def _webp_size(data: bytes) -> Size:
    _need(data, 12, "webp", "inside its RIFF header")
    if data[8:12] != b"WEBP":
        raise ImageRejected("format", "the data is a RIFF file but not a WEBP image")
    end = 8 + _uint(data, 4, 4, "little")
    _need(data, end, "webp", f"before the {end:,} bytes its RIFF header declares")
    chunks = _webp_chunks(data, end)
    kind, payload = next(chunks, (b"", b""))
    later_images = sum(later in _WEBP_IMAGE_CHUNKS for later, _ in chunks)  # walks every chunk
    if kind == b"VP8 ":
        return _webp_vp8(payload)
    if kind == b"VP8L":
        return _webp_vp8l(payload)
    if kind == b"VP8X" and later_images:
        return _webp_vp8x(payload)
    raise _corrupt(
        "webp", f"its first chunk {kind!r} is not VP8, VP8L, or VP8X followed by an image chunk"
    )


def _webp_chunks(data: bytes, end: int) -> Iterator[tuple[bytes, bytes]]:
    """The (type, payload) of each chunk in the RIFF data, which ends at `end`."""
    pos = 12
    while pos < end:
        size = _uint(data, pos + 4, 4, "little")
        if pos + 8 + size > end:  # also when the 8-byte chunk header itself does not fit
            raise ImageRejected(
                "truncated",
                f"the WEBP chunk at byte {pos:,} runs past the end "
                "of its RIFF data (truncated upload?)",
            )
        yield data[pos : pos + 4], data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)  # payloads are padded to an even length


def _webp_vp8(payload: bytes) -> Size:
    if len(payload) < 10 or payload[0] & 1 or payload[3:6] != b"\x9d\x01\x2a":
        raise _corrupt("webp", "its VP8 chunk does not start with a key frame")
    return _uint(payload, 6, 2, "little") & 0x3FFF, _uint(payload, 8, 2, "little") & 0x3FFF


def _webp_vp8l(payload: bytes) -> Size:
    if len(payload) < 5 or payload[0] != 0x2F:
        raise _corrupt("webp", "its VP8L chunk lacks the lossless signature")
    bits = _uint(payload, 1, 4, "little")
    if bits >> 29:
        raise _corrupt("webp", f"its VP8L chunk has unknown version {bits >> 29}")
    return (bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1


def _webp_vp8x(payload: bytes) -> Size:
    if len(payload) < 10:
        raise _corrupt("webp", "its VP8X chunk is too short")
    return _uint(payload, 4, 3, "little") + 1, _uint(payload, 7, 3, "little") + 1


_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"RIFF", "webp"),
)
_PARSERS: dict[str, Callable[[bytes], Size]] = {
    "png": _png_size,
    "jpeg": _jpeg_size,
    "gif": _gif_size,
    "bmp": _bmp_size,
    "tiff": _tiff_size,
    "webp": _webp_size,
}
