"""Input images as the emulator takes them, and the refusals the provider gives for them.

A data URL's bytes are checked by the service's own parser; an http(s) URL on loopback is
downloaded and checked the same way; a URL on any other host stands in for an image (emulator
choice: it never leaves loopback). Every image it holds is then decoded for real
(render.image_size), so that bytes the provider could not decode get its answer:
400 InvalidParameter "The image at images[i] cannot be decoded: <reason>.".
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from qwen_edit.domain.image_headers import ImageRejected
from qwen_edit.domain.images import InlineImage, check_image_bytes, parse_image_ref
from qwen_edit_cli.emulator.faults import ProviderFault, invalid
from qwen_edit_cli.emulator.render import STAND_IN_SIZE, UndecodableImage, image_size

# Rules of qwen_edit.domain.image_headers for bytes that cannot be decoded: refused by that check
# or by Pillow's decode (_decoded), an image gets the same answer.
_UNDECODABLE_RULES = frozenset({"corrupt", "truncated", "pixels"})


@dataclass(frozen=True)
class InputImage:
    material: bytes  # what outputs derive from: the bytes, or a remote URL standing in for them
    size: tuple[int, int]
    data: bytes | None  # the decoded image when the emulator has it


def load_image(index: int, ref: str) -> InputImage:
    """The image `ref` names, at `index` of the request's images; raises ProviderFault."""
    try:
        parsed = parse_image_ref(ref)
    except ImageRejected as rejected:
        raise _refusal(index, rejected, "") from None
    if isinstance(parsed, InlineImage):
        return _decoded(index, parsed.data)
    if not _is_loopback(ref):
        # Emulator choice: it never leaves loopback, so a remote URL stands for an image.
        return InputImage(ref.encode(), STAND_IN_SIZE, None)
    return _decoded(index, _download(index, ref))


def _download(index: int, url: str) -> bytes:
    try:
        response = httpx.get(url, timeout=10.0)
    except httpx.HTTPError:
        raise ProviderFault(
            400, "InvalidURL", f"Failed to download the image from {url}."
        ) from None
    if response.status_code != 200:
        raise ProviderFault(
            400,
            "InvalidURL",
            f"Failed to download the image from {url} (HTTP {response.status_code}).",
        )
    try:
        check_image_bytes(response.content)
    except ImageRejected as rejected:
        raise _refusal(index, rejected, f" at {url}") from None
    return response.content


def _decoded(index: int, data: bytes) -> InputImage:
    try:
        size = image_size(data)
    except UndecodableImage as error:
        raise _undecodable(index, error) from None
    return InputImage(data, size, data)


def _refusal(index: int, rejected: ImageRejected, where: str) -> ProviderFault:
    if rejected.rule in ("scheme", "url", "s3-reference"):
        return ProviderFault(400, "InvalidURL", "The provided URL is not valid.")
    if rejected.rule in _UNDECODABLE_RULES:
        return _undecodable(index, rejected)
    return invalid(f"Invalid image{where}: {rejected}.")


def _undecodable(index: int, reason: object) -> ProviderFault:
    return invalid(f"The image at images[{index}] cannot be decoded: {str(reason).rstrip('.')}.")


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
