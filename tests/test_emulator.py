"""The emulator validates and answers like the provider (seeds 000–004), over raw HTTP."""

from __future__ import annotations

import base64

import httpx
import pytest

from conftest import data_url, image_bytes
from qwen_edit_cli.emulator.faults import Faults
from qwen_edit_cli.emulator.server import EmulatorServer

SYNC = "/services/aigc/multimodal-generation/generation"
ASYNC = "/services/aigc/text2image/image-synthesis"


@pytest.fixture
def api(emulator):
    with httpx.Client(base_url=emulator.api_base_url,
                      headers={"Authorization": "Bearer sk-test"}) as http:
        yield http


def edit_body(content=None, model="qwen-image-edit-plus", **parameters):
    content = content if content is not None else [{"image": data_url()}, {"text": "edit"}]
    return {"model": model, "input": {"messages": [{"role": "user", "content": content}]},
            "parameters": parameters}


def refused(response, status, code, text=None):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["request_id"] and body["message"]
    if text:
        assert text in body["message"]


def test_bearer_key_is_required(emulator):
    response = httpx.post(emulator.api_base_url + SYNC, json=edit_body())
    refused(response, 401, "InvalidApiKey", "No API-key provided.")
    response = httpx.post(emulator.api_base_url + SYNC, json=edit_body(),
                          headers={"Authorization": "Basic abc"})
    refused(response, 401, "InvalidApiKey")


def test_api_key_option_accepts_only_that_key():
    with EmulatorServer(api_key="sk-only") as server:
        url = server.api_base_url + SYNC
        ok = httpx.post(url, json=edit_body(), headers={"Authorization": "Bearer sk-only"})
        assert ok.status_code == 200
        refused(httpx.post(url, json=edit_body(), headers={"Authorization": "Bearer sk-no"}),
                401, "InvalidApiKey", "Invalid API-key provided.")


def test_body_must_be_json(api):
    refused(api.post(SYNC, content=b"{not json"), 400, "InvalidParameter")


def test_async_header_is_required_on_image_synthesis(api):
    body = {"model": "qwen-image-plus", "input": {"prompt": "a cat"}}
    refused(api.post(ASYNC, json=body), 403, "AccessDenied",
            "current user api does not support synchronous calls")
    ok = api.post(ASYNC, json=body, headers={"X-DashScope-Async": "enable"})
    assert ok.json()["output"]["task_status"] == "PENDING"


@pytest.mark.parametrize("messages", [
    [], [{"role": "user", "content": [{"text": "a"}]}] * 2,
])
def test_exactly_one_message(api, messages):
    body = edit_body()
    body["input"]["messages"] = messages
    refused(api.post(SYNC, json=body), 400, "InvalidParameter", "exactly one message")


def test_message_role_is_user(api):
    body = edit_body()
    body["input"]["messages"][0]["role"] = "assistant"
    refused(api.post(SYNC, json=body), 400, "InvalidParameter")


@pytest.mark.parametrize("content, text", [
    ([{"image": data_url()}], "exactly one text"),
    ([{"image": data_url()}, {"text": "a"}, {"text": "b"}], "exactly one text"),
    ([{"image": data_url()}] * 4 + [{"text": "a"}], "1 to 3 input images"),
    ([{"video": "x"}, {"text": "a"}], "Each content item"),
])
def test_edit_content_rules(api, content, text):
    refused(api.post(SYNC, json=edit_body(content)), 400, "InvalidParameter", text)


def test_up_to_three_images_at_the_limit(api):
    content = [{"image": data_url(color=(i * 60, 0, 0))} for i in range(3)] + [{"text": "mix"}]
    assert api.post(SYNC, json=edit_body(content)).status_code == 200


def test_text_to_image_models_take_no_images(api):
    refused(api.post(SYNC, json=edit_body(model="qwen-image-max")), 400, "InvalidParameter",
            "not a model that edits images")


def test_edit_only_models_need_an_image(api):
    refused(api.post(SYNC, json=edit_body([{"text": "a cat"}])), 400, "InvalidParameter")


def test_image_bytes_rules(api):
    png = base64.b64encode(image_bytes("png")).decode()
    refused(api.post(SYNC, json=edit_body([{"image": f"data:image/gif;base64,{png}"},
                                           {"text": "a"}])), 400, "InvalidParameter",
            "declared as image/gif")
    junk = base64.b64encode(b"plain text").decode()
    refused(api.post(SYNC, json=edit_body([{"image": f"data:image/png;base64,{junk}"},
                                           {"text": "a"}])), 400, "InvalidParameter")
    big = base64.b64encode(image_bytes("png") + b"\0" * (10 * 1024 * 1024)).decode()
    refused(api.post(SYNC, json=edit_body([{"image": f"data:image/png;base64,{big}"},
                                           {"text": "a"}])), 400, "InvalidParameter", "10 MB")


def test_image_urls(api, emulator):
    made = api.post(SYNC, json=edit_body()).json()
    loopback_url = made["output"]["choices"][0]["message"]["content"][0]["image"]
    assert api.post(SYNC, json=edit_body([{"image": loopback_url}, {"text": "again"}])
                    ).status_code == 200
    refused(api.post(SYNC, json=edit_body([{"image": emulator.url + "/files/nope.png"},
                                           {"text": "a"}])), 400, "InvalidURL", "HTTP 403")
    refused(api.post(SYNC, json=edit_body([{"image": "ftp://example.com/a.png"},
                                           {"text": "a"}])), 400, "InvalidURL")
    remote = api.post(SYNC, json=edit_body([{"image": "https://example.com/a.png"},
                                            {"text": "a"}]))
    assert remote.status_code == 200  # never fetched: a stand-in (the emulator stays offline)


@pytest.mark.parametrize("parameters, text", [
    ({"seed": -1}, "seed"), ({"seed": 2_147_483_648}, "seed"), ({"n": "2"}, "parameters.n"),
    ({"n": 7}, "1 to 6"), ({"size": "2049*1024"}, "between 512 and 2048"),
    ({"watermark": "yes"}, "watermark"),
])
def test_parameter_rules(api, parameters, text):
    refused(api.post(SYNC, json=edit_body(**parameters)), 400, "InvalidParameter", text)


def test_qwen_image_edit_takes_no_size(api):
    refused(api.post(SYNC, json=edit_body(model="qwen-image-edit", size="1024*1024")), 400,
            "InvalidParameter", "does not take a size")


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
    assert t2i["usage"] == {"input_tokens": 0, "output_tokens": 0, "width": 2048,
                            "height": 2048, "image_count": 1}


def test_result_urls_expire_with_the_ttl(api, emulator):
    emulator.fake.faults.result_ttl_s = 0
    url = api.post(SYNC, json=edit_body()).json()["output"]["choices"][0]["message"][
        "content"][0]["image"]
    expired = httpx.get(url)
    assert expired.status_code == 403 and b"Request has expired" in expired.content


def test_control_endpoints(emulator):
    control = httpx.Client(base_url=emulator.url + "/_emulator")
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
        assert httpx.post(noisy.api_base_url + SYNC, json=edit_body(),
                          headers=headers).status_code == 429
        assert httpx.post(quiet.api_base_url + SYNC, json=edit_body(),
                          headers=headers).status_code == 200


def test_unknown_paths_are_404(api):
    assert api.get("/services/nothing").status_code == 404
