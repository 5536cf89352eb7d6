"""Real HTTP on loopback for the emulator (stdlib server: one thread per connection)."""

from __future__ import annotations

import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from qwen_edit_cli.emulator.fake import FakeDashScope
from qwen_edit_cli.emulator.faults import Faults, invalid
from qwen_edit_cli.emulator.routes import Reply, error_reply, internal_error

# Where a request's body ends is unknown after these answers, so the connection is not reused.
_CLOSE = {"Connection": "close"}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        arrived = time.monotonic()
        try:
            reply = self._reply(arrived)
            payload = reply.payload()
        except Exception as error:  # noqa: BLE001 - a dropped connection makes clients retry
            request_id = str(uuid.uuid4())
            reply = error_reply(
                internal_error(
                    error, f"{self.command} {self.path}", request_id, self.server.verbose
                ),
                request_id,
                _CLOSE,
            )
            payload = reply.payload()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _reply(self, arrived: float) -> Reply:
        length = self._content_length()
        if length is None:
            return error_reply(
                invalid("Content-Length must be a non-negative integer."), str(uuid.uuid4()), _CLOSE
            )
        body = self.rfile.read(length) if length else b""
        return self.server.fake.handle(self.command, self.path, dict(self.headers), body, arrived)

    def _content_length(self) -> int | None:
        """The declared body length, or None unless it is a plain decimal number (int() alone
        would also take "-1", "+5" and "1_0")."""
        declared = (self.headers.get("Content-Length") or "0").strip()
        return int(declared) if declared.isascii() and declared.isdigit() else None

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeDashScope
    verbose: bool


class EmulatorServer:
    """The emulator listening on HOST:PORT (port 0 picks a free one); use as a context manager."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        faults: Faults | None = None,
        verbose: bool = False,
    ):
        self._httpd = _Server((host, port), _Handler)
        self._httpd.verbose = verbose
        bound_host, bound_port = self._httpd.socket.getsockname()[:2]
        self.url = f"http://{bound_host}:{bound_port}"
        self.fake = self._httpd.fake = FakeDashScope(
            api_key=api_key, faults=faults, public_url=self.url, verbose=verbose
        )
        self._thread: threading.Thread | None = None

    @property
    def api_base_url(self) -> str:
        """What a DashScope client takes as its base URL override."""
        return f"{self.url}/api/v1"

    @property
    def task_api_base_url(self) -> str:
        return f"{self.url}/taskapi/v1"

    def start(self) -> EmulatorServer:
        # A short poll interval lets stop() return at once (the default waits up to 0.5 s).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="fake-dashscope", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
