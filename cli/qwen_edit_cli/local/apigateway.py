"""API Gateway for the local stack: `/v1` over HTTP, the API-key check (each key is a tenant),
the body limits, and REST proxy events into the real ApiFunction handler. Refusals use the
same envelope as template.yaml's GatewayResponses."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from qwen_edit_cli.local.lambdas import FakeLambdaContext
from qwen_edit_cli.local.stack import LocalStack

API_GATEWAY_BODY_LIMIT = 10 * 1024 * 1024
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024
STAGE = "/v1"


def key_id(api_key: str) -> str:
    """What API Gateway passes as requestContext.identity.apiKeyId: the tenant."""
    return "key-" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


def _envelope(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "details": []}}).encode()


class LocalApiGateway:
    def __init__(self, stack: LocalStack, api_keys: list[str], host: str, port: int):
        self.stack, self.keys = stack, {key: key_id(key) for key in api_keys}
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                status, headers, body = gateway.handle(
                    self.command, self.path, dict(self.headers), self._body()
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes | None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > API_GATEWAY_BODY_LIMIT:
                    self.close_connection = True
                    return None
                return self.rfile.read(length)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}{STAGE}"

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        json_type = {"Content-Type": "application/json"}
        parts = urlsplit(raw_path)
        if not parts.path.startswith(STAGE + "/"):
            return 404, json_type, _envelope("NotFound", "no such route")
        lowered = {k.lower(): v for k, v in headers.items()}
        tenant = self.keys.get(lowered.get("x-api-key", ""))
        if tenant is None:
            return (
                401,
                json_type,
                _envelope("InvalidApiKey", "send a valid API key in the x-api-key header"),
            )
        if body is None or len(body) > LAMBDA_PAYLOAD_LIMIT:
            return (
                413,
                json_type,
                _envelope(
                    "RequestTooLarge",
                    "the body is over the limit "
                    "(10 MB at API Gateway, 6 MB into Lambda); upload "
                    "images with POST /v1/uploads",
                ),
            )
        query = dict(parse_qsl(parts.query)) or None
        event = {
            "resource": parts.path.removeprefix(STAGE),
            "path": parts.path.removeprefix(STAGE),
            "httpMethod": method,
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": query,
            "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
            "pathParameters": None,
            "stageVariables": None,
            "isBase64Encoded": False,
            "body": body.decode() if body else None,
            "requestContext": {
                "stage": STAGE.strip("/"),
                "path": parts.path,
                "httpMethod": method,
                "requestId": str(uuid.uuid4()),
                "identity": {
                    "apiKeyId": tenant,
                    "apiKey": lowered["x-api-key"],
                    "sourceIp": "127.0.0.1",
                },
            },
        }
        function = self.stack.physical["ApiFunction"]
        answer = self.stack.dispatcher.call(function, event, FakeLambdaContext(function, function))
        out_headers = {k: v[0] for k, v in (answer.get("multiValueHeaders") or {}).items()}
        out_headers.update(answer.get("headers") or {})
        return answer["statusCode"], out_headers, (answer.get("body") or "").encode()

    def start(self) -> LocalApiGateway:
        threading.Thread(
            target=self.server.serve_forever, args=(0.1,), daemon=True, name="local-api-gateway"
        ).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
