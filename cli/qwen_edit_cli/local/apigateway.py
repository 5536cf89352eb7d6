"""API Gateway for the local stack: `/v1` over HTTP, the API-key check (each key is a tenant),
the usage plan's throttle and quota per key, the body limits, and REST proxy events into the
real ApiFunction handler.

A Werkzeug server, threaded. Every request gets an answer in the service's error envelope
`{"error": {"code", "message", "details": []}}`, as template.yaml's GatewayResponses make the
deployed API answer: an unknown route or method (404 NotFound), a missing or unknown API key
(401 InvalidApiKey), a key over the usage plan's throttle or quota (429 Throttled or
QuotaExceeded, with template.yaml's Retry-After), a malformed request (400 BadRequest), a body
over the limits (413 RequestTooLarge), and a handler that fails (502, worded as the template's
DEFAULT_5XX). The routes are the ApiFunction's `Api` events in template.yaml, so they cannot
drift from what `sam deploy` ships.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import re
import select
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import IO, Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from werkzeug.serving import BaseWSGIServer, DechunkedInput, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from qwen_edit_cli.local.lambdas import FakeLambdaContext
from qwen_edit_cli.local.stack import LocalStack
from qwen_edit_cli.local.template import load_template

API_GATEWAY_BODY_LIMIT = 10 * 1024 * 1024
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024
STAGE = "/v1"
CONSOLE = "/console"  # the web console's resource
READ_TIMEOUT_S = 5.0  # a socket that sends nothing for this long: the request is malformed
BODY_DEADLINE_S = 60.0  # the whole body, however slowly it trickles in
# API Gateway's ANY method; otherwise methods are matched as sent (case-sensitive, like AWS).
ANY_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
TOO_LARGE_MESSAGE = (
    "the body is over the limit (10 MB at API Gateway, 6 MB into Lambda); upload images with "
    "POST /v1/uploads"
)
JSON = "application/json"
_log = logging.getLogger(__name__)


def key_id(api_key: str) -> str:
    """What API Gateway passes as requestContext.identity.apiKeyId: the tenant."""
    return "key-" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


def _envelope(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "details": []}}).encode()


class _Refusal(Exception):
    """A request the gateway answers itself, without calling the function."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.body = status, _envelope(code, message)
        self.headers: list[tuple[str, str]] = []


class _GatewayResponse(_Refusal):
    """A refusal as template.yaml's GatewayResponses word it for the deployed API: its status,
    body and static headers (each value a quoted literal, as in `'1'`)."""

    def __init__(self, name: str, status: int | None = None):
        spec = load_template()["Resources"]["Api"]["Properties"]["GatewayResponses"][name]
        Exception.__init__(self, name)
        self.status = status or int(spec["StatusCode"])  # DEFAULT_5XX keeps the original status
        self.body = spec["ResponseTemplates"][JSON].encode()
        headers = spec.get("ResponseParameters", {}).get("Headers", {})
        self.headers = [(name, str(value).strip("'")) for name, value in headers.items()]


# ---- the usage plan -----------------------------------------------------------------------------


class UsagePlan:
    """The usage plan's limits per API key, as API Gateway applies them once the key is known:
    the throttle, a token bucket (BurstLimit tokens, refilled at RateLimit a second; each
    request takes one), then the quota, requests per period. Its days are UTC days here; API
    Gateway does not say when its periods start, which is why QUOTA_EXCEEDED's Retry-After is a
    whole day. A throttled request does not count against the quota."""

    def __init__(
        self,
        rate: float,
        burst: int,
        quota_per_day: int | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.rate, self.burst, self.quota_per_day, self.clock = rate, burst, quota_per_day, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, at)
        self._used: dict[str, tuple[int, int]] = {}  # key → (UTC day, requests)
        self._lock = threading.Lock()

    @classmethod
    def of(cls, spec: dict[str, Any]) -> UsagePlan:
        """From the template's Auth.UsagePlan, its parameters resolved."""
        quota = spec.get("Quota")
        if quota and quota.get("Period") != "DAY":
            raise ValueError(f"the local gateway applies daily quotas only, not {quota}")
        return cls(
            rate=float(spec["Throttle"]["RateLimit"]),
            burst=int(spec["Throttle"]["BurstLimit"]),
            quota_per_day=int(quota["Limit"]) if quota else None,
        )

    def admit(self, key: str) -> None:
        """Count one request of `key`, or refuse it (THROTTLED, then QUOTA_EXCEEDED)."""
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                raise _GatewayResponse("THROTTLED")
            self._buckets[key] = (tokens - 1, now)
            if self.quota_per_day is None:
                return
            day = int(now // 86400)
            seen, used = self._used.get(key, (day, 0))
            used = used if seen == day else 0
            if used >= self.quota_per_day:
                raise _GatewayResponse("QUOTA_EXCEEDED")
            self._used[key] = (day, used + 1)


# ---- routes: the ApiFunction's Api events ----------------------------------------------------


@dataclass(frozen=True)
class Route:
    resource: str  # the template path, e.g. /jobs/{job_id}
    methods: frozenset[str]
    pattern: re.Pattern[str]
    rank: tuple[int, ...]  # per segment 0 literal, 1 {var}, 2 {var+}: API Gateway prefers literals
    keyless: frozenset[str] = frozenset()  # methods declared with Auth.ApiKeyRequired false

    @classmethod
    def of(cls, resource: str, methods: Iterable[str], keyless: Iterable[str] = ()) -> Route:
        parts, rank = [], []
        for segment in resource.strip("/").split("/") if resource != "/" else []:
            variable = re.fullmatch(r"\{(\w+)(\+?)\}", segment)
            if variable is None:
                parts.append(re.escape(segment))
                rank.append(0)
            elif variable.group(2):
                parts.append(f"(?P<{variable.group(1)}>.+)")
                rank.append(2)
            else:
                parts.append(f"(?P<{variable.group(1)}>[^/]+)")
                rank.append(1)
        pattern = re.compile("/" + "/".join(parts), re.DOTALL)
        return cls(resource, frozenset(methods), pattern, tuple(rank), frozenset(keyless))


def template_routes() -> list[Route]:
    """`Type: Api` events of the ApiFunction in template.yaml, one Route per resource path."""
    events = load_template()["Resources"]["ApiFunction"]["Properties"]["Events"]
    methods: dict[str, set[str]] = {}
    keyless: dict[str, set[str]] = {}
    for event in events.values():
        if event.get("Type") == "Api":
            method = str(event["Properties"]["Method"]).upper()
            path = str(event["Properties"]["Path"])
            found = ANY_METHODS if method == "ANY" else {method}
            methods.setdefault(path, set()).update(found)
            if event["Properties"].get("Auth", {}).get("ApiKeyRequired") is False:
                keyless.setdefault(path, set()).update(found)
    return sorted(
        (Route.of(path, found, keyless.get(path, ())) for path, found in methods.items()),
        key=lambda r: r.rank,
    )


def _match(routes: list[Route], segments: list[str]) -> tuple[Route, dict[str, str]] | None:
    """The resource API Gateway selects for the path (raw segments, each percent-decoded)."""
    decoded = "/" + "/".join(unquote(s, errors="replace") for s in segments)
    for route in routes:  # literal segments first, as API Gateway's resource tree does
        found = route.pattern.fullmatch(decoded)
        if found:
            return route, found.groupdict()
    return None


# ---- the request --------------------------------------------------------------------------------


def _text(value: str) -> str:
    """A header value as http.server decodes it (latin-1), back to the UTF-8 it was sent in."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _grouped(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Values by name, names grouped case-insensitively under the first spelling seen."""
    spelling: dict[str, str] = {}
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        name = spelling.setdefault(name.lower(), name)
        grouped.setdefault(name, []).append(value)
    return grouped


def _declared_length(headers: dict[str, list[str]]) -> int | None:
    """Content-Length as RFC 9110 allows it (digits; repeats must agree), or a 400."""
    values = {
        v.strip() for name, vs in headers.items() if name.lower() == "content-length" for v in vs
    }
    if not values:
        return None
    if len(values) > 1 or not all(v.isdigit() and v.isascii() for v in values):
        raise _Refusal(400, "BadRequest", "the Content-Length header is not a number of bytes")
    return int(values.pop())


def _read_body(stream: IO[bytes], length: int | None, chunked: bool) -> bytes:
    """The body: `length` bytes, or the chunks; 400 when it ends early or stalls, 413 when it
    is over API Gateway's 10 MB (a declared length over it is refused before reading)."""
    if not chunked and (length or 0) > API_GATEWAY_BODY_LIMIT:
        raise _Refusal(413, "RequestTooLarge", TOO_LARGE_MESSAGE)
    wanted = API_GATEWAY_BODY_LIMIT + 1 if chunked else length or 0
    deadline = time.monotonic() + BODY_DEADLINE_S
    parts: list[bytes] = []
    received = 0
    try:
        while received < wanted:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the body took over {BODY_DEADLINE_S:.0f} s")
            part = stream.read(min(64 * 1024, wanted - received))
            if not part:
                break
            parts.append(part)
            received += len(part)
    except OSError as error:  # a timeout, a hang-up, or a malformed chunk
        raise _Refusal(
            400, "BadRequest", f"the body could not be read: {error or type(error).__name__}"
        ) from None
    if chunked and received > API_GATEWAY_BODY_LIMIT:
        raise _Refusal(413, "RequestTooLarge", TOO_LARGE_MESSAGE)
    if not chunked and received < wanted:
        raise _Refusal(
            400, "BadRequest", f"the body ended after {received} of {wanted} declared bytes"
        )
    return b"".join(parts)


# ---- the function's answer --------------------------------------------------------------------

_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}


class _MalformedAnswer(Exception):
    pass


def _reply(answer: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A Lambda proxy response as API Gateway turns it into HTTP (Malformed when it cannot)."""
    if not isinstance(answer, dict):
        raise _MalformedAnswer(f"the function returned a {type(answer).__name__}, not an object")
    status = answer.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise _MalformedAnswer(f"statusCode {status!r} is not an HTTP status")
    body = answer.get("body") or ""
    try:
        data = base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode()
    except (ValueError, TypeError) as error:
        raise _MalformedAnswer(f"the body is not base64: {error}") from None
    # As API Gateway merges them: multiValueHeaders win over headers of the same name.
    headers = [
        (str(name), str(value))
        for name, values in (answer.get("multiValueHeaders") or {}).items()
        for value in (values or [])
    ]
    named = {name.lower() for name, _ in headers}
    headers += [
        (str(name), str(value))
        for name, value in (answer.get("headers") or {}).items()
        if name.lower() not in named and value is not None
    ]
    headers = [(n, v) for n, v in headers if n.lower() not in _HOP_BY_HOP]
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", JSON))  # API Gateway's default for a proxy answer
    return status, headers, data


# ---- the HTTP server ----------------------------------------------------------------------------

_RAW_TARGET, _RAW_HEADERS = "qwen_edit.raw_target", "qwen_edit.raw_headers"
_STATUS_CODES = {404: "NotFound", 413: "RequestTooLarge", 505: "HttpVersionNotSupported"}
_STATUS_MESSAGES = {
    400: "the request is malformed",
    414: "the request line is over 64 KiB",
    431: "a header line is over 64 KiB, or there are over 100 headers",
    505: "only HTTP/1.0 and HTTP/1.1 are served",
}


class _Arrived:
    """A buffered socket file whose read() returns what has arrived (one receive at most)."""

    def __init__(self, rfile: io.BufferedIOBase):
        self._rfile = rfile

    def read(self, size: int = -1) -> bytes:
        return self._rfile.read1(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rfile, name)


class _Handler(WSGIRequestHandler):
    """Werkzeug's handler, with its refusals in the envelope and no request log.

    Werkzeug hands every request whose line and headers parse to the app, whatever its method
    (HEAD, OPTIONS, TRACE, `get`, PROPFIND). What cannot be parsed is refused by http.server's
    BaseHTTPRequestHandler (which Werkzeug's handler extends) through `send_error`: a request
    line over 64 KiB (414), a header line over 64 KiB or over 100 headers (431), a request line
    that is not `METHOD target HTTP/x.y` (400). `send_error` is overridden here, so those are
    answered in the envelope too, with their status."""

    protocol_version = "HTTP/1.1"
    timeout = READ_TIMEOUT_S  # per socket operation; set per gateway

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        # Werkzeug joins repeated headers with "," and drops names with "_"; API Gateway keeps
        # both, so the event is built from the headers as received.
        environ[_RAW_TARGET] = self.path
        environ[_RAW_HEADERS] = list(self.headers.items())
        # After the answer Werkzeug discards what the client still sends with rfile.read(10 MB),
        # which blocks until that much arrives or the read timeout passes: a refused body held
        # the connection open for the whole timeout. The body is read from wsgi.input (the
        # buffered file itself); the discarding reads only what has arrived.
        self.rfile = cast(io.BufferedIOBase, _Arrived(self.rfile))
        return environ

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":  # `GET /path` without a version: not HTTP/1.x
            self.send_error(HTTPStatus.BAD_REQUEST, "the request line has no HTTP version")
            return False
        return True

    def handle_expect_100(self) -> bool:
        return True  # Werkzeug's run_wsgi sends the 100 Continue; twice would be one too many

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.close_connection = True
        if self.request_version in ("", "HTTP/0.9"):
            self.request_version = "HTTP/1.1"  # so the status line and headers are written
        status = int(code)
        text = _STATUS_MESSAGES.get(status) or (message or HTTPStatus(status).phrase)
        if status == 400 and message:
            text = f"{text}: {message}"
        body = _envelope(_STATUS_CODES.get(status, "BadRequest"), text)
        try:
            self.send_response(status)
            self.send_header("Content-Type", JSON)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
            self._drain()
        except OSError:
            pass  # the client is gone

    def _drain(self, idle_s: float = 0.2, budget: int = 1 << 20) -> None:
        """Read what the client still sends of a refused request (briefly, and not all of a
        flood): closing a socket with unread input sends a reset that can destroy the answer."""
        self.connection.shutdown(socket.SHUT_WR)
        while budget > 0:
            readable, _, _ = select.select([self.connection], [], [], idle_s)
            if not readable:
                return
            data = self.connection.recv(65536)
            if not data:
                return
            budget -= len(data)

    def handle(self) -> None:
        try:
            super().handle()
        except Exception as error:  # noqa: BLE001 - one log line, never a traceback on stderr
            _log.error(_log_line("the local API gateway failed on a connection", error))

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # API Gateway logs no access lines here (the access log is CloudWatch's)

    def log_error(self, format: str, *args: Any) -> None:
        pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _log_line(message: str, error: BaseException, **fields: Any) -> str:
    """One structured line: the error, and where it was raised (no multi-line traceback)."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None
    return json.dumps(
        {
            "level": "ERROR",
            "message": message,
            **fields,
            "errorType": type(error).__name__,
            "errorMessage": str(error)[:500],
            "where": where,
        },
        default=str,
    )


class LocalApiGateway:
    def __init__(
        self,
        stack: LocalStack,
        api_keys: list[str],
        host: str,
        port: int,
        *,
        read_timeout: float = READ_TIMEOUT_S,
        usage_plan: UsagePlan | None = None,
    ):
        self.stack, self.keys = stack, {key: key_id(key) for key in api_keys}
        self.usage_plan = usage_plan or UsagePlan.of(stack.usage_plan)
        self.routes = template_routes()
        handler = cast(
            type[WSGIRequestHandler],
            type("LocalApiGatewayHandler", (_Handler,), {"timeout": read_timeout}),
        )
        try:
            self.server: BaseWSGIServer = make_server(
                host, port, self.wsgi, threaded=True, request_handler=handler
            )
        except SystemExit as exit_:  # Werkzeug prints why (the port is in use) and exits
            raise OSError(f"the local API gateway cannot listen on {host}:{port}") from exit_
        self.url = f"http://{host}:{self.server.server_address[1]}{STAGE}"
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- WSGI --

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        request_id = str(uuid.uuid4())
        try:
            status, headers, body = self.handle(request, request_id)
        except _Refusal as refusal:
            status, headers, body = refusal.status, [("Content-Type", JSON)], refusal.body
            headers += refusal.headers
        except Exception as error:  # noqa: BLE001 - API Gateway answers 502 for a failed Lambda
            _log.error(
                _log_line(
                    "the API function failed",
                    error,
                    requestId=request_id,
                    httpMethod=environ.get("REQUEST_METHOD"),
                    path=request.path,
                )
            )
            failed = _GatewayResponse("DEFAULT_5XX", status=502)  # as API Gateway words it
            status, headers, body = failed.status, [("Content-Type", JSON)], failed.body
        response = Response(body, status=status, headers=headers)
        response.headers["x-amzn-RequestId"] = request_id
        return response(environ, start_response)

    def handle(self, request: Request, request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
        environ = request.environ
        raw_headers = [(name, _text(value)) for name, value in environ[_RAW_HEADERS]]
        headers = _grouped(raw_headers)
        lowered = {name.lower(): values for name, values in headers.items()}
        # Framing first, as any HTTP server: a request whose body cannot be delimited is a 400.
        length = _declared_length(headers)
        encodings = [v.strip().lower() for v in lowered.get("transfer-encoding", [])]
        if encodings and encodings != ["chunked"]:
            raise _Refusal(400, "BadRequest", "only Transfer-Encoding: chunked is accepted")
        chunked = bool(encodings)
        if chunked and not environ.get("wsgi.input_terminated"):  # e.g. `Chunked`
            environ["wsgi.input"] = DechunkedInput(environ["wsgi.input"])

        target = environ[_RAW_TARGET].encode("latin-1").decode("utf-8", errors="replace")
        parts = urlsplit(target)
        # As sent (Werkzeug's request.method is upper-cased): API Gateway's methods are
        # case-sensitive, so `get` is no GET.
        method = environ["REQUEST_METHOD"]
        # The route, then the key (as the deployed API): API Gateway answers an unknown resource,
        # or a method not declared on it, with MISSING_AUTHENTICATION_TOKEN before it looks at
        # the API key, and template.yaml's GatewayResponses map that to 404 NotFound. HEAD,
        # OPTIONS and TRACE are declared on no resource, so they are 404 too.
        segments = parts.path.split("/")
        if (
            parts.path == "/"
            and method == "GET"
            and any(r.resource == CONSOLE for r in self.routes)
        ):
            # Only here: the local stack's root opens the console (API Gateway has only /v1).
            return 302, [("Location", STAGE + CONSOLE), ("Content-Length", "0")], b""
        matched = None
        if segments[:2] == ["", STAGE.strip("/")] and len(segments) > 2:
            matched = _match(self.routes, segments[2:])
        if matched is None or method not in matched[0].methods:
            raise _GatewayResponse("MISSING_AUTHENTICATION_TOKEN")
        route, path_parameters = matched
        api_key = (lowered.get("x-api-key") or [""])[-1]
        tenant = self.keys.get(api_key)
        if method in route.keyless:
            # No key checked, and no usage plan: API Gateway applies a plan only to keyed calls.
            tenant = None
        elif tenant is None:
            raise _GatewayResponse("INVALID_API_KEY")
        else:
            self.usage_plan.admit(api_key)

        body = _read_body(environ["wsgi.input"], length, chunked)
        try:
            text, encoded = body.decode("utf-8"), False
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode("ascii"), True
        if len(text) > LAMBDA_PAYLOAD_LIMIT:
            raise _Refusal(413, "RequestTooLarge", TOO_LARGE_MESSAGE)

        query = parse_qsl(parts.query, keep_blank_values=True)
        multi_query = _grouped_exact(query)
        path = "/" + "/".join(unquote(s, errors="replace") for s in segments[2:])
        now = datetime.now(UTC)
        event = {
            "resource": route.resource,
            "path": path,
            "httpMethod": method,
            "headers": {name: values[-1] for name, values in headers.items()} or None,
            "multiValueHeaders": headers or None,
            "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": path_parameters or None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": hashlib.sha256(route.resource.encode()).hexdigest()[:6],
                "resourcePath": route.resource,
                "httpMethod": method,
                "path": STAGE + path,
                "stage": STAGE.strip("/"),
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "requestId": request_id,
                "extendedRequestId": request_id,
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "accountId": "123456789012",
                "apiId": "local",
                "domainName": request.host,
                "identity": {
                    "apiKeyId": tenant,
                    "apiKey": api_key if tenant else None,
                    "sourceIp": request.remote_addr or "127.0.0.1",
                    "userAgent": request.user_agent.string or None,
                },
            },
            "body": text if body else None,
            "isBase64Encoded": encoded,
        }
        function = self.stack.physical["ApiFunction"]
        answer = self.stack.dispatcher.call(function, event, FakeLambdaContext(function, function))
        return _reply(answer)

    # -- lifecycle --

    def start(self) -> LocalApiGateway:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self.server.serve_forever,
                    kwargs={"poll_interval": 0.1},
                    daemon=True,
                    name="local-api-gateway",
                )
                self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting at once (within the 0.1 s poll). Requests in flight run on daemon
        threads, and every connection is closed after its one response, so nothing is joined."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self.server.shutdown()
            thread.join(timeout=2)
        self.server.server_close()


def _grouped_exact(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Query parameters by name (case-sensitive, as API Gateway keeps them), in order."""
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped
