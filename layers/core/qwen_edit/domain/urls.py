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
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

MAX_URL_CHARS = 2048


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
