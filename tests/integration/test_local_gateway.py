"""The local API gateway as an attacker meets it: raw bytes over a socket, and the answers are
all in the error envelope; plus the REST proxy events it builds for the real ApiFunction."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from qwen_edit_cli.local.apigateway import LocalApiGateway, key_id
from qwen_edit_cli.local.serve import Ready, announce_ready

KEY = "key-a"
GENERATION = b'{"model": "qwen-image-plus", "prompt": "x"}'


@pytest.fixture
def gateway(stack) -> Iterator[LocalApiGateway]:
    # A short read timeout, so a body that never arrives is refused within the test's patience.
    server = LocalApiGateway(stack, [KEY], "127.0.0.1", 0, read_timeout=1.0).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def events(stack, monkeypatch) -> list[dict[str, Any]]:
    """The proxy events the gateway hands the ApiFunction."""
    seen: list[dict[str, Any]] = []
    call = stack.dispatcher.call

    def recording(function: str, event: dict[str, Any], context: Any) -> Any:
        if function == stack.physical["ApiFunction"]:  # not the workflow's functions
            seen.append(event)
        return call(function, event, context)

    monkeypatch.setattr(stack.dispatcher, "call", recording)
    return seen


def raw(gateway: LocalApiGateway, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; the status, headers and body of the one answer (the gateway closes
    every connection after its answer)."""
    port = int(gateway.url.split(":")[2].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(data)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers and not data.startswith(b"HEAD "):
        assert len(body) == int(headers["content-length"]), "one answer, nothing after it"
    return int(status_line.split()[1]), headers, body


def request(method: str, target: str, *headers: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def envelope(status: int, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    assert headers["content-type"] == "application/json", (status, body)
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message", "details"} and isinstance(error["details"], list)
    return status, error["code"]


def test_a_body_that_is_not_utf8_is_the_functions_400(gateway, events):
    answer = raw(
        gateway,
        request(
            "POST",
            "/v1/generations",
            f"x-api-key: {KEY}",
            "Content-Type: application/json",
            "Content-Length: 14",
            body=b'{"prompt":"\xff"}',
        ),
    )
    assert envelope(*answer) == (400, "BadRequest")
    assert b"UTF-8" in answer[2]
    (event,) = events  # the function answered, base64 was what it got
    assert event["isBase64Encoded"] is True and event["body"] == "eyJwcm9tcHQiOiL/In0="


@pytest.mark.parametrize(
    ("length", "body"),
    [("abc", b"{}"), ("-1", b"{}"), ("+2", b"{}"), ("2, 3", b"{}"), ("100", b"{}")],
    ids=["not-a-number", "negative", "signed", "two-values", "longer-than-the-body"],
)
def test_a_body_that_cannot_be_delimited_is_400(gateway, events, length, body):
    began = time.monotonic()
    answer = raw(
        gateway,
        request(
            "POST", "/v1/generations", f"x-api-key: {KEY}", f"Content-Length: {length}", body=body
        ),
    )
    assert envelope(*answer) == (400, "BadRequest")
    assert time.monotonic() - began < 5  # the read timeout (1 s here), not the client's patience
    assert events == []


def test_a_body_over_api_gateways_limit_is_413_before_it_is_read(gateway):
    answer = raw(
        gateway,
        request("POST", "/v1/edits", f"x-api-key: {KEY}", f"Content-Length: {11 * 1024 * 1024}"),
    )
    assert envelope(*answer) == (413, "RequestTooLarge")


@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "PROPFIND", "get", "DELETE", "PUT"])
def test_methods_not_declared_are_404(gateway, method):
    answer = raw(gateway, request(method, "/v1/models", f"x-api-key: {KEY}"))
    assert envelope(*answer) == (404, "NotFound")


def test_head_is_404_without_a_body(gateway):
    status, headers, body = raw(gateway, request("HEAD", "/v1/models", f"x-api-key: {KEY}"))
    assert status == 404 and headers["content-type"] == "application/json"
    assert body == b"" and int(headers["content-length"]) > 0  # HTTP: a HEAD answer has no body


def test_routes_then_keys(gateway):
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        keyed = {"x-api-key": KEY}
        for path in ("/nothing", "/jobs/a/b", "/", "/models/"):
            assert envelope(*_parts(client.get(path, headers=keyed))) == (404, "NotFound")
        outside = httpx.get(gateway.url.removesuffix("/v1") + "/models", headers=keyed)
        assert envelope(*_parts(outside)) == (404, "NotFound")
        assert envelope(*_parts(client.post("/jobs", headers=keyed))) == (404, "NotFound")
        # The route is resolved first: an unknown route without a key is still a 404.
        assert envelope(*_parts(client.get("/nothing"))) == (404, "NotFound")
        for headers in ({}, {"x-api-key": "key-b"}, {"x-api-key": ""}):
            answer = client.get("/models", headers=headers)
            assert envelope(*_parts(answer)) == (401, "InvalidApiKey")
        assert client.get("/models", headers=keyed).status_code == 200


def _parts(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    return response.status_code, dict(response.headers), response.content


def test_a_chunked_body_is_read(gateway, events):
    def chunks() -> Iterator[bytes]:
        yield GENERATION[:10]
        yield GENERATION[10:]

    created = httpx.post(
        f"{gateway.url}/generations",
        content=chunks(),
        headers={"x-api-key": KEY, "content-type": "application/json"},
        timeout=30,
    )
    assert created.status_code == 202, created.text
    assert created.json()["status"] == "queued"
    assert events[0]["body"] == GENERATION.decode()
    headers = {name.lower(): value for name, value in events[0]["headers"].items()}
    assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers


def test_chunk_bytes_are_not_a_second_request(gateway, events):
    """A chunked body followed by a request smuggled after it: one answer, one event."""
    smuggled = request("GET", "/v1/models", f"x-api-key: {KEY}")
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(GENERATION), GENERATION)
    status, _, body = raw(
        gateway,
        request(
            "POST",
            "/v1/generations",
            f"x-api-key: {KEY}",
            "Transfer-Encoding: chunked",
            "Content-Length: 4",
            body=chunked + smuggled,
        ),
    )
    assert status == 202, body
    assert len(events) == 1
    bad_chunk = request(
        "POST", "/v1/generations", f"x-api-key: {KEY}", "Transfer-Encoding: chunked", body=b"zz\r\n"
    )
    assert envelope(*raw(gateway, bad_chunk)) == (400, "BadRequest")
    gzip = request("POST", "/v1/generations", f"x-api-key: {KEY}", "Transfer-Encoding: gzip")
    assert envelope(*raw(gateway, gzip)) == (400, "BadRequest")


def test_the_proxy_event(gateway, events):
    with httpx.Client(base_url=gateway.url, headers={"x-api-key": KEY}, timeout=10) as client:
        listed = client.get("/jobs?limit=2&tag=a&tag=b&empty=")
        assert listed.status_code == 200, listed.text
        # Both values reach the function, which validates the list against `limit: int` (the
        # deployed API answers the same: Powertools reads multiValueQueryStringParameters).
        twice = client.get("/jobs?limit=1&limit=2")
        assert envelope(*_parts(twice)) == (422, "InvalidRequest")
        assert twice.json()["error"]["details"][0]["field"] == "limit"
        missing = client.get("/jobs/job-that-is-not-there")
        assert envelope(*_parts(missing)) == (404, "JobNotFound")
    listing, repeated, lookup = events
    assert listing["resource"] == "/jobs" and listing["path"] == "/jobs"
    assert listing["httpMethod"] == "GET"
    assert listing["queryStringParameters"] == {"limit": "2", "tag": "b", "empty": ""}
    assert listing["multiValueQueryStringParameters"] == {
        "limit": ["2"],
        "tag": ["a", "b"],
        "empty": [""],
    }
    assert repeated["queryStringParameters"] == {"limit": "2"}
    assert repeated["multiValueQueryStringParameters"] == {"limit": ["1", "2"]}
    assert listing["pathParameters"] is None
    assert listing["headers"]["x-api-key"] == KEY
    assert listing["multiValueHeaders"]["x-api-key"] == [KEY]
    assert listing["body"] is None and listing["isBase64Encoded"] is False
    context = listing["requestContext"]
    assert context["stage"] == "v1" and context["path"] == "/v1/jobs"
    assert context["resourcePath"] == "/jobs" and context["httpMethod"] == "GET"
    assert context["identity"]["apiKeyId"] == key_id(KEY) and context["requestId"]
    assert lookup["resource"] == "/jobs/{job_id}"
    assert lookup["path"] == "/jobs/job-that-is-not-there"
    assert lookup["pathParameters"] == {"job_id": "job-that-is-not-there"}
    assert lookup["requestContext"]["resourcePath"] == "/jobs/{job_id}"


def test_repeated_headers_reach_the_function_all(gateway, events):
    raw(
        gateway,
        request(
            "GET", "/v1/models", f"x-api-key: {KEY}", "X-Twice: a", "x-twice: b", "Under_Score: u"
        ),
    )
    (event,) = events
    assert event["multiValueHeaders"]["X-Twice"] == ["a", "b"]
    assert event["headers"]["X-Twice"] == "b"
    assert event["headers"]["Under_Score"] == "u"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (request("GET", "/v1/models", "X-Big: " + "a" * 70_000), 431),
        (request("GET", "/v1/models", *(f"X-H{i}: v" for i in range(150))), 431),
        (request("GET", "/v1/models?q=" + "a" * 70_000), 414),
        (request("GET", "/v1/jobs x"), 400),
        (b"GET /v1/models\r\n\r\n", 400),
        (b"GET /v1/models HTTP/x\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    ],
    ids=[
        "long-header",
        "many-headers",
        "long-line",
        "space-in-path",
        "no-version",
        "bad-version",
        "tls",
    ],
)
def test_requests_http_cannot_parse_are_answered_in_the_envelope(gateway, data, status):
    answer = raw(gateway, data)
    assert envelope(*answer) == (status, "BadRequest")


def test_a_failing_function_is_502_logged_on_one_line(gateway, stack, monkeypatch, caplog, capfd):
    def fails(*_: Any) -> Any:
        raise RuntimeError("the handler blew up\nover two lines")

    monkeypatch.setattr(stack.dispatcher, "call", fails)
    with caplog.at_level(logging.ERROR, logger="qwen_edit_cli.local.apigateway"):
        answer = httpx.get(f"{gateway.url}/models", headers={"x-api-key": KEY}, timeout=10)
    assert envelope(*_parts(answer)) == (502, "InternalError")
    (record,) = caplog.records
    line = record.getMessage()
    assert "\n" not in line
    logged = json.loads(line)
    assert logged["errorType"] == "RuntimeError" and logged["requestId"]
    assert logged["requestId"] == answer.headers["x-amzn-RequestId"]
    assert "Traceback" not in capfd.readouterr().err


def test_a_malformed_function_answer_is_502(gateway, stack, monkeypatch, caplog):
    monkeypatch.setattr(stack.dispatcher, "call", lambda *_: {"statusCode": "two hundred"})
    with caplog.at_level(logging.CRITICAL):
        answer = httpx.get(f"{gateway.url}/models", headers={"x-api-key": KEY}, timeout=10)
    assert envelope(*_parts(answer)) == (502, "InternalError")


def test_stop_returns_at_once_with_a_request_in_flight(stack, monkeypatch):
    entered = threading.Event()

    def slow(*_: Any) -> Any:
        entered.set()
        time.sleep(5)
        return {"statusCode": 200, "body": "{}"}

    monkeypatch.setattr(stack.dispatcher, "call", slow)
    server = LocalApiGateway(stack, [KEY], "127.0.0.1", 0).start()

    def in_flight() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the answer may come after the test
            httpx.get(f"{server.url}/models", headers={"x-api-key": KEY}, timeout=10)

    threading.Thread(target=in_flight, daemon=True).start()
    assert entered.wait(10)
    began = time.monotonic()
    server.stop()
    assert time.monotonic() - began < 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/models", timeout=2)


READY = Ready(
    api_url="http://127.0.0.1:3000/v1",
    api_key="qe-local-k",
    s3_endpoint_url="http://127.0.0.1:5000",
    region="us-east-1",
    input_bucket="in",
    output_bucket="out",
    dashscope_url="http://127.0.0.1:6000",
    webhook_secret="whsec_s3cr3t",
)


def test_the_ready_line_keeps_the_secret_in_the_ready_file(tmp_path, capsys):
    ready_file = tmp_path / "ready.json"
    announce_ready(READY, ready_file)
    printed = capsys.readouterr().out
    assert "whsec_s3cr3t" not in printed
    line = json.loads(printed)
    assert line["webhook_secret"] == "(in the ready file)" and line["api_key"] == "qe-local-k"
    assert json.loads(ready_file.read_text())["webhook_secret"] == "whsec_s3cr3t"

    announce_ready(READY, None)  # no ready file: stdout is the only place the user can read it
    assert json.loads(capsys.readouterr().out)["webhook_secret"] == "whsec_s3cr3t"
