"""Reading an http(s) URL that a client gave us (an image to fetch, a webhook to call) the way
the fetcher will: one parser for every check, so the host that is judged is the host that is
reached.

URL parsers disagree on the edges: WHATWG parsers (browsers, Node, many HTTP stacks) read a
backslash as a slash and percent-decode the host, so `http://169.254.169.254\\@1.1.1.1/` and
`http://169.254.169%2e254/` reach the metadata address while urllib sees a public host. Those
spellings are refused or normalized here before any address is judged.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

MAX_URL_CHARS = 2048
# The shape every accepted URL has, and the OpenAPI document states: an ASCII host name
# (international names in punycode) or an IP literal, a port of 1 to 65535 without leading
# zeros, no user name or password, no space, control character or backslash.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"  # DNS names may hold "_"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*\.?|\[[0-9A-Fa-f:.]+\])"
_PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_REST = r"(?:[/?#][^\x00-\x20\x7f\\]*)?"


def url_pattern(schemes: str) -> str:
    """The shape of an accepted URL of these schemes (a regular expression alternation)."""
    return f"^(?:{schemes})://{_HOST}(?::{_PORT})?{_REST}$"


_SHAPE = re.compile(url_pattern("https?"))


@dataclass(frozen=True)
class WebUrl:
    scheme: str
    host: str  # lowercased, percent-decoded, without a trailing dot or IPv6 brackets
    port: int


def parse_web_url(url: str) -> WebUrl:
    """The URL's scheme, host and port; ValueError saying what is wrong with it."""
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"the URL is over {MAX_URL_CHARS} characters")
    if any(char <= " " or char in "\\\x7f" for char in url):
        raise ValueError("the URL contains a space, a control character or a backslash")
    try:
        parts = urlsplit(url)
        hostname, port = parts.hostname, parts.port  # both raise ValueError when malformed
    except ValueError as error:
        raise ValueError(f"the URL does not parse ({error})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("the URL must be http:// or https://")
    host = unquote(hostname or "").rstrip(".").lower()
    if not host or port == 0:
        raise ValueError("the URL has no host" if not host else "the URL's port is 0")
    _check_host(host)
    if not _SHAPE.fullmatch(url):
        raise ValueError(
            "the URL must be http(s)://host[:port][/path] with an ASCII host name (international "
            "names in punycode) and no user name or password"
        )
    return WebUrl(parts.scheme, host, port or (443 if parts.scheme == "https" else 80))


def _check_host(host: str) -> None:
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    try:
        host.encode("idna")  # empty labels, labels over 63 characters, bad code points
    except UnicodeError:
        raise ValueError(f"{host[:100]!r} is not a valid host name") from None
    if "%" in host or "/" in host:
        raise ValueError(f"{host[:100]!r} is not a valid host name")
