"""The emulator validates and answers like the provider (its documentation), over raw HTTP."""

from __future__ import annotations

import base64
import json
import re
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlsplit

import httpx
import pytest

from qwen_edit_cli.emulator.faults import Faults
from qwen_edit_cli.emulator.server import EmulatorServer
from qwen_edit_cli.local.samples import data_url, image_bytes

SYNC = "/services/aigc/multimodal-generation/generation"
ASYNC = "/services/aigc/text2image/image-synthesis"


@pytest.fixture
def api(emulator):
    with httpx.Client(
        base_url=emulator.api_base_url, headers={"Authorization": "Bearer sk-test"}
    ) as http:
        yield http


def edit_body(content=None, model="qwen-image-edit-plus", **parameters):
    content = content if content is not None else [{"image": data_url()}, {"text": "edit"}]
    return {
        "model": model,
        "input": {"messages": [{"role": "user", "content": content}]},
        "parameters": parameters,
    }


def refused(response, status, code, text=None):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["request_id"] and body["message"]
    if text:
        assert text in body["message"]


def test_bearer_key_is_required(emulator):
    response = httpx.post(emulator.api_base_url + SYNC, json=edit_body())
    refused(response, 401, "InvalidApiKey", "No API-key provided.")
    response = httpx.post(
        emulator.api_base_url + SYNC, json=edit_body(), headers={"Authorization": "Basic abc"}
    )
    refused(response, 401, "InvalidApiKey")


def test_api_key_option_accepts_only_that_key():
    with EmulatorServer(api_key="sk-only") as server:
        url = server.api_base_url + SYNC
        ok = httpx.post(url, json=edit_body(), headers={"Authorization": "Bearer sk-only"})
        assert ok.status_code == 200
        refused(
            httpx.post(url, json=edit_body(), headers={"Authorization": "Bearer sk-no"}),
            401,
            "InvalidApiKey",
            "Invalid API-key provided.",
        )


def test_body_must_be_json(api):
    refused(api.post(SYNC, content=b"{not json"), 400, "InvalidParameter")


def test_async_header_is_required_on_image_synthesis(api):
    body = {"model": "qwen-image-plus", "input": {"prompt": "a cat"}}
    refused(
        api.post(ASYNC, json=body),
        403,
        "AccessDenied",
        "current user api does not support synchronous calls",
    )
    ok = api.post(ASYNC, json=body, headers={"X-DashScope-Async": "enable"})
    assert ok.json()["output"]["task_status"] == "PENDING"


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "user", "content": [{"text": "a"}]}] * 2,
    ],
)
def test_exactly_one_message(api, messages):
    body = edit_body()
    body["input"]["messages"] = messages
    refused(api.post(SYNC, json=body), 400, "InvalidParameter", "exactly one message")


def test_message_role_is_user(api):
    body = edit_body()
    body["input"]["messages"][0]["role"] = "assistant"
    refused(api.post(SYNC, json=body), 400, "InvalidParameter")


@pytest.mark.parametrize(
    "content, text",
    [
        ([{"image": data_url()}], "exactly one text"),
        ([{"image": data_url()}, {"text": "a"}, {"text": "b"}], "exactly one text"),
        ([{"image": data_url()}] * 4 + [{"text": "a"}], "1 to 3 input images"),
        ([{"video": "x"}, {"text": "a"}], "Each content item"),
    ],
)
def test_edit_content_rules(api, content, text):
    refused(api.post(SYNC, json=edit_body(content)), 400, "InvalidParameter", text)


def test_up_to_three_images_at_the_limit(api):
    content = [{"image": data_url(color=(i * 60, 0, 0))} for i in range(3)] + [{"text": "mix"}]
    assert api.post(SYNC, json=edit_body(content)).status_code == 200


def test_text_to_image_models_take_no_images(api):
    refused(
        api.post(SYNC, json=edit_body(model="qwen-image-max")),
        400,
        "InvalidParameter",
        "not a model that edits images",
    )


def test_edit_only_models_need_an_image(api):
    refused(api.post(SYNC, json=edit_body([{"text": "a cat"}])), 400, "InvalidParameter")


def test_image_bytes_rules(api):
    png = base64.b64encode(image_bytes("png")).decode()
    refused(
        api.post(SYNC, json=edit_body([{"image": f"data:image/gif;base64,{png}"}, {"text": "a"}])),
        400,
        "InvalidParameter",
        "declared as image/gif",
    )
    junk = base64.b64encode(b"plain text").decode()
    refused(
        api.post(SYNC, json=edit_body([{"image": f"data:image/png;base64,{junk}"}, {"text": "a"}])),
        400,
        "InvalidParameter",
    )
    big = base64.b64encode(image_bytes("png") + b"\0" * (10 * 1024 * 1024)).decode()
    refused(
        api.post(SYNC, json=edit_body([{"image": f"data:image/png;base64,{big}"}, {"text": "a"}])),
        400,
        "InvalidParameter",
        "10 MB",
    )


def test_image_urls(api, emulator):
    made = api.post(SYNC, json=edit_body()).json()
    loopback_url = made["output"]["choices"][0]["message"]["content"][0]["image"]
    assert (
        api.post(SYNC, json=edit_body([{"image": loopback_url}, {"text": "again"}])).status_code
        == 200
    )
    refused(
        api.post(
            SYNC, json=edit_body([{"image": emulator.url + "/files/nope.png"}, {"text": "a"}])
        ),
        400,
        "InvalidURL",
        "HTTP 403",
    )
    refused(
        api.post(SYNC, json=edit_body([{"image": "ftp://example.com/a.png"}, {"text": "a"}])),
        400,
        "InvalidURL",
    )
    remote = api.post(SYNC, json=edit_body([{"image": "https://example.com/a.png"}, {"text": "a"}]))
    assert remote.status_code == 200  # never fetched: a stand-in (the emulator stays offline)


@pytest.mark.parametrize(
    "parameters, text",
    [
        ({"seed": -1}, "seed"),
        ({"seed": 2_147_483_648}, "seed"),
        ({"n": "2"}, "parameters.n"),
        ({"n": 7}, "1 to 6"),
        ({"size": "2049*1024"}, "between 512 and 2048"),
        ({"watermark": "yes"}, "watermark"),
    ],
)
def test_parameter_rules(api, parameters, text):
    refused(api.post(SYNC, json=edit_body(**parameters)), 400, "InvalidParameter", text)


def test_qwen_image_edit_takes_no_size(api):
    refused(
        api.post(SYNC, json=edit_body(model="qwen-image-edit", size="1024*1024")),
        400,
        "InvalidParameter",
        "does not take a size",
    )


def test_over_long_prompts_are_truncated_like_the_provider(api, emulator):
    body = {"model": "qwen-image-plus", "input": {"prompt": "p" * 900}}
    task = api.post(ASYNC, json=body, headers={"X-DashScope-Async": "enable"}).json()
    emulator.fake.faults.pending_s = 0
    import time

    time.sleep(0.7)
    done = api.get(f"/tasks/{task['output']['task_id']}").json()
    assert done["output"]["task_status"] == "SUCCEEDED"
    assert len(done["output"]["results"][0]["orig_prompt"]) == 800


def test_sync_answer_has_the_documented_shape(api):
    body = api.post(SYNC, json=edit_body(n=2)).json()
    choice = body["output"]["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    assert len(choice["message"]["content"]) == 2
    assert set(body["usage"]) == {"width", "height", "image_count"} and body["request_id"]
    t2i = api.post(SYNC, json=edit_body([{"text": "a"}], model="qwen-image-2.0")).json()
    assert t2i["usage"] == {
        "input_tokens": 0,
        "output_tokens": 0,
        "width": 2048,
        "height": 2048,
        "image_count": 1,
    }


def test_result_urls_expire_with_the_ttl(api, emulator):
    emulator.fake.faults.result_ttl_s = 0
    url = api.post(SYNC, json=edit_body()).json()["output"]["choices"][0]["message"]["content"][0][
        "image"
    ]
    expired = httpx.get(url)
    assert expired.status_code == 403 and b"Request has expired" in expired.content


def test_control_endpoints(emulator):
    with httpx.Client(base_url=emulator.url + "/_emulator") as control:
        assert control.put("/faults", json={"throttle_rate": 0.5}).json()["throttle_rate"] == 0.5
        assert control.get("/faults").json()["throttle_rate"] == 0.5
        assert control.put("/faults", json={"throttle_rate": 2}).status_code == 400
        assert control.put("/faults", json={"bogus": 1}).status_code == 400
        httpx.post(emulator.api_base_url + SYNC, json=edit_body())
        stats = control.get("/stats").json()
        assert stats["calls"][0]["route"] == "multimodal-generation"
        assert stats["calls"][0]["status"] == 401
        assert control.post("/reset").json() == {"reset": True}
        assert control.get("/stats").json()["calls"] == []


def test_fault_settings_are_per_instance():
    with EmulatorServer(faults=Faults(throttle_rate=1.0)) as noisy, EmulatorServer() as quiet:
        headers = {"Authorization": "Bearer k"}
        assert (
            httpx.post(noisy.api_base_url + SYNC, json=edit_body(), headers=headers).status_code
            == 429
        )
        assert (
            httpx.post(quiet.api_base_url + SYNC, json=edit_body(), headers=headers).status_code
            == 200
        )


def test_unknown_paths_are_404(api):
    assert api.get("/services/nothing").status_code == 404


# ---- undecodable images, emulator bugs and malformed requests still get an answer -------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int, pixels: bytes = zlib.compress(b"\0" * 16)) -> bytes:
    """A PNG with well-formed chunks whose header declares width×height, and the IDAT given."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", pixels)
        + png_chunk(b"IEND", b"")
    )


@contextmanager
def loopback_file(data: bytes) -> Iterator[str]:
    """`data` at a loopback URL of its own, as an image host the emulator downloads from."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    with HTTPServer(("127.0.0.1", 0), Handler) as server:
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/image"
        finally:
            server.shutdown()


# The reason after the colon depends on which check refuses the image first: the structural
# one of qwen_edit.domain.images (when present) or the emulator's Pillow decode. A PNG whose IDAT
# is not
# zlib data passes the structure check and only the decode refuses it.
@pytest.mark.parametrize(
    "mime, data",
    [
        ("image/gif", b"GIF89a<script>alert(1)</script>"),
        ("image/png", image_bytes("png")[:60]),
        ("image/png", png_declaring(30000, 30000)),
        ("image/png", png_declaring(16, 16, pixels=b"not zlib data")),
    ],
    ids=["gif-script", "truncated-png", "png-bomb", "png-broken-pixels"],
)
@pytest.mark.parametrize("source", ["data-url", "loopback-url"])
def test_undecodable_images_are_invalid_parameter(api, mime, data, source):
    with loopback_file(data) as url:
        ref = (
            url
            if source == "loopback-url"
            else f"data:{mime};base64,{base64.b64encode(data).decode()}"
        )
        response = api.post(
            SYNC, json=edit_body([{"image": data_url()}, {"image": ref}, {"text": "a"}])
        )
    refused(response, 400, "InvalidParameter")
    assert re.fullmatch(
        r"The image at images\[1\] cannot be decoded: [^\n]{3,200}[^.]\.",
        response.json()["message"],
    ), response.json()["message"]


def broken(*args: object, **kwargs: object) -> None:
    raise RuntimeError("injected")


@pytest.mark.parametrize("method", ["_render", "handle"])  # inside a route; the whole dispatch
def test_an_emulator_bug_is_a_500_answer_and_serving_goes_on(api, emulator, monkeypatch, method):
    monkeypatch.setattr(emulator.fake, method, broken)
    refused(api.post(SYNC, json=edit_body()), 500, "InternalError", "emulator error: RuntimeError")
    monkeypatch.undo()
    assert api.post(SYNC, json=edit_body()).status_code == 200


def test_an_emulator_bug_on_the_task_api_has_its_error_shape(emulator, monkeypatch):
    monkeypatch.setattr(emulator.fake, "_render", broken)
    response = httpx.post(
        emulator.task_api_base_url + "/tasks",
        json=edit_body(model="qwen_image_edit_plus"),
        headers={"Authorization": "Bearer sk-test"},
    )
    assert response.status_code == 500 and response.json()["error"] == {
        "code": 500,
        "error_message": "emulator error: RuntimeError",
    }


def test_emulator_bugs_log_a_traceback_only_when_verbose(monkeypatch, capsys, caplog):
    for verbose in (False, True):
        with EmulatorServer(verbose=verbose) as server:
            monkeypatch.setattr(server.fake, "_render", broken)
            assert (
                httpx.post(
                    server.api_base_url + SYNC,
                    json=edit_body(),
                    headers={"Authorization": "Bearer k"},
                ).status_code
                == 500
            )
    logged = [r.getMessage() for r in caplog.records if "emulator error" in r.getMessage()]
    assert len(logged) == 1 and "RuntimeError 'injected'" in logged[0]
    assert capsys.readouterr().err.count("Traceback") == 1


@pytest.mark.parametrize("declared", ["abc", "-1"])
def test_malformed_content_length_is_400(emulator, declared):
    address = urlsplit(emulator.url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
        sock.sendall(
            f"POST /api/v1{SYNC} HTTP/1.1\r\nHost: {address.netloc}\r\n"
            f"Authorization: Bearer k\r\nContent-Length: {declared}\r\n\r\n{{}}".encode()
        )
        answer = sock.makefile("rb").read()  # to EOF: the emulator closes this connection
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 400 "), answer
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["code"] == "InvalidParameter" and body["request_id"]
