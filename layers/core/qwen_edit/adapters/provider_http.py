"""HTTP plumbing shared by the provider clients: timeouts, and every failure as a ProviderError."""

from __future__ import annotations

import ssl
from functools import cache
from typing import Any

import httpx

from qwen_edit.domain.provider import ProviderError

# Sync edits can take about a minute at the provider; task calls answer quickly.
SYNC_TIMEOUT = httpx.Timeout(150.0, connect=10.0)
TASK_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
USER_AGENT = "qwen-edit/0.1 (+https://github.com/qwen-edit)"


@cache
def tls() -> ssl.SSLContext:
    """One TLS context for every client of the process: loading the CA bundle takes about
    20 ms a context, and a context serves any number of clients and threads."""
    return httpx.create_ssl_context()


class ProviderHttp:
    def __init__(
        self, base_url: str, api_key: str, *, transport: httpx.BaseTransport | None = None
    ):
        if not api_key:
            raise ValueError("a provider API key is required")
        self._api = httpx.Client(
            base_url=base_url.rstrip("/"),
            transport=transport,
            verify=tls(),
            timeout=TASK_TIMEOUT,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT},
        )
        # Result URLs are presigned: they get no Authorization header, so the key never leaves.
        self._files = httpx.Client(
            transport=transport,
            verify=tls(),
            timeout=DOWNLOAD_TIMEOUT,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=True,
        )

    @property
    def base_url(self) -> str:
        return str(self._api.base_url)

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout = TASK_TIMEOUT,
    ) -> dict[str, Any]:
        response = self._send(self._api, method, path, json=json, headers=headers, timeout=timeout)
        body = _json_or_empty(response)
        if response.status_code >= 400:
            code, message = _error_fields(body)
            raise ProviderError.from_http(
                response.status_code, code, message or response.text[:200], body.get("request_id")
            )
        return body

    def download(self, url: str) -> bytes:
        response = self._send(self._files, "GET", url)
        if response.status_code in (403, 404, 410):
            # Result URLs expire after 24 h; the object storage answers 403 or 404 after that.
            raise ProviderError(
                "ResultExpired",
                f"the result URL answered {response.status_code}: it expired or was purged",
                http_status=response.status_code,
            )
        if response.status_code >= 400:
            raise ProviderError.from_http(
                response.status_code, None, "downloading a result failed", None
            )
        return response.content

    def close(self) -> None:
        self._api.close()
        self._files.close()

    @staticmethod
    def _send(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return client.request(method, url, **kwargs)
        except _NOT_SENT as error:
            raise ProviderError(
                "ConnectionError",
                f"could not reach the provider ({type(error).__name__})",
                retryable=True,
            ) from None
        except httpx.TimeoutException as error:
            raise ProviderError(
                "RequestTimeout",
                f"the provider did not answer in time ({type(error).__name__})",
                retryable=True,
                outcome_unknown=True,
            ) from None
        except httpx.TransportError as error:
            raise ProviderError(
                "ConnectionError",
                f"the connection failed before the provider answered ({type(error).__name__})",
                retryable=True,
                outcome_unknown=True,
            ) from None


# Failures before a byte of the request left: the provider cannot have seen it.
_NOT_SENT = (httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ConnectError, httpx.UnsupportedProtocol)


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_fields(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """DashScope answers {code, message}; the Vtrix-style task API answers
    {error: {code, error_message}}."""
    error = body.get("error")
    nested: dict[str, Any] = error if isinstance(error, dict) else {}
    code = body.get("code") or nested.get("code")
    message = body.get("message") or nested.get("error_message") or nested.get("message")
    return (str(code) if code not in (None, "") else None), message
