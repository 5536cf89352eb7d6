"""HTTP for webhook deliveries: connect to an address already checked as public, so a DNS
answer that changes between the check and the connection cannot redirect the request; the
name still goes in Host and in TLS SNI, so certificates verify as usual. No redirects."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit, urlunsplit

import httpx

TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def resolve_host(host: str, port: int) -> list[str]:
    """Every address the name resolves to now (webhooks.check_target judges them)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError):  # no such name, or not a name at all
        return []
    return sorted({str(info[4][0]) for info in infos})


class HttpWebhookSender:
    def __init__(self, transport: httpx.BaseTransport | None = None):
        self.client = httpx.Client(
            timeout=TIMEOUT,
            follow_redirects=False,
            transport=transport,
            headers={"User-Agent": "qwen-edit-webhooks/1"},
        )

    def post(
        self, url: str, addresses: list[str], headers: dict[str, str], body: str
    ) -> tuple[int | None, str | None]:
        parts = urlsplit(url)
        address = addresses[0]
        host = f"[{address}]" if ":" in address else address
        pinned = urlunsplit(
            (
                parts.scheme,
                f"{host}:{parts.port}" if parts.port else host,
                parts.path or "/",
                parts.query,
                "",
            )
        )
        extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
        try:
            answer = self.client.post(
                pinned,
                content=body.encode(),
                extensions=extensions,
                headers={**headers, "Host": parts.netloc.rsplit("@", 1)[-1]},
            )
        except httpx.TimeoutException:
            return None, "timed out"
        except httpx.TransportError as error:
            return None, f"could not connect ({type(error).__name__})"
        return (
            answer.status_code,
            None if 200 <= answer.status_code < 300 else f"answered HTTP {answer.status_code}",
        )
