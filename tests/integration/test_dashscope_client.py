"""The real DashScope client against the emulator over loopback HTTP (and a mock transport for
what a loopback server cannot show: which host a region selects, timeouts, gateway pages)."""

from __future__ import annotations

import time

import httpx
import pytest

from qwen_edit.adapters.dashscope import BASE_URLS, DashScopeClient, base_url_for
from qwen_edit.domain.catalog import Capability, Provider, get_model, models_for
from qwen_edit.domain.provider import ProviderError, ProviderRequest, Region, TaskStatus
from qwen_edit_cli.emulator.faults import LimitOverride
from qwen_edit_cli.local.samples import data_url, png_size


def edit_call(model="qwen-image-edit-plus", images=None, **parameters) -> ProviderRequest:
    return ProviderRequest(
        model=model,
        capability=Capability.EDIT,
        prompt="make it dusk",
        images=tuple(images or [data_url("png", (800, 600))]),
        parameters=parameters,
    )


def t2i_call(model="qwen-image-plus", **parameters) -> ProviderRequest:
    return ProviderRequest(
        model=model,
        capability=Capability.TEXT_TO_IMAGE,
        prompt="a lighthouse at dawn",
        negative_prompt="blur",
        parameters=parameters,
    )


def wait_final(client, task, timeout=10.0):
    deadline = time.monotonic() + timeout
    seen = [task.status]
    while not task.status.is_final:
        assert time.monotonic() < deadline, f"task stuck in {task.status}"
        time.sleep(0.1)
        task = client.fetch(task.task_id)
        seen.append(task.status)
    return task, seen


# ---- regions and wire format ----------------------------------------------------------------


def test_region_base_urls():
    assert base_url_for("singapore") == "https://dashscope-intl.aliyuncs.com/api/v1"
    assert base_url_for(Region.BEIJING) == "https://dashscope.aliyuncs.com/api/v1"
    assert base_url_for("beijing", "http://127.0.0.1:9/api/v1/") == "http://127.0.0.1:9/api/v1"
    with pytest.raises(ValueError):
        base_url_for("frankfurt")


@pytest.mark.parametrize("region", list(Region))
def test_each_region_calls_its_own_host_with_the_documented_request(region):
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"request_id": "r1", "output": {"task_id": "t1", "task_status": "PENDING"}}
        )

    client = DashScopeClient("sk-region", region=region, transport=httpx.MockTransport(answer))
    client.submit(t2i_call(size="1664*928", n=1), asynchronous=True)
    request = seen[0]
    assert str(request.url) == BASE_URLS[region] + "/services/aigc/text2image/image-synthesis"
    assert request.headers["Authorization"] == "Bearer sk-region"
    assert request.headers["X-DashScope-Async"] == "enable"
    assert request.read() == (
        b'{"model":"qwen-image-plus","input":{"prompt":"a lighthouse at '
        b'dawn","negative_prompt":"blur"},"parameters":{"size":"1664*928",'
        b'"n":1}}'
    )


def test_sync_body_is_one_user_message_with_images_then_text():
    seen = []

    def answer(request):
        seen.append(request)
        return httpx.Response(
            200,
            json={
                "output": {"choices": [{"message": {"content": [{"image": "https://x/1.png"}]}}]},
                "usage": {"image_count": 1, "width": 1, "height": 1},
            },
        )

    client = DashScopeClient("k", transport=httpx.MockTransport(answer))
    client.submit(edit_call(images=["https://a/1.png", "https://a/2.png"], n=1), asynchronous=False)
    import json

    body = json.loads(seen[0].read())
    assert body["input"]["messages"] == [
        {
            "role": "user",
            "content": [
                {"image": "https://a/1.png"},
                {"image": "https://a/2.png"},
                {"text": "make it dusk"},
            ],
        }
    ]
    assert body["parameters"] == {"n": 1}
    assert "X-DashScope-Async" not in seen[0].headers


def test_result_downloads_never_carry_the_api_key():
    seen = []

    def answer(request):
        seen.append(request)
        return httpx.Response(200, content=b"\x89PNG\r\n\x1a\n")

    DashScopeClient("sk-secret", transport=httpx.MockTransport(answer)).download(
        "https://oss.example.com/x.png?Expires=1"
    )
    assert "authorization" not in {k.lower() for k in seen[0].headers}


# ---- every model family and endpoint --------------------------------------------------------


@pytest.mark.parametrize("model", [m.id for m in models_for(Capability.EDIT, Provider.DASHSCOPE)])
def test_sync_edit_on_every_edit_model(client, model):
    n = 1 if get_model(model).max_outputs == 1 else 2
    result = client.submit(edit_call(model, n=n), asynchronous=False)
    assert result.status is TaskStatus.SUCCEEDED and result.request_id
    assert len(result.image_urls) == n and result.usage.image_count == n
    assert png_size(client.download(result.image_urls[0])) == (
        result.usage.width,
        result.usage.height,
    )


@pytest.mark.parametrize("model", [m.id for m in models_for(Capability.TEXT_TO_IMAGE)])
def test_sync_text_to_image_on_every_model(client, model):
    result = client.submit(t2i_call(model), asynchronous=False)
    assert result.status is TaskStatus.SUCCEEDED and len(result.image_urls) == 1
    default = get_model(model).text_to_image_default_size or "1024*1024"
    assert f"{result.usage.width}*{result.usage.height}" == default


def test_sync_sizes_follow_the_provider(client):
    plus = client.submit(edit_call(size="1033*1032"), asynchronous=False)
    assert (plus.usage.width, plus.usage.height) == (
        1040,
        1024,
    )  # multiples of 16 (task API reference)
    follows_input = client.submit(
        edit_call("qwen-image-2.0", images=[data_url("jpeg", (900, 700))]), asynchronous=False
    )
    assert (follows_input.usage.width, follows_input.usage.height) == (900, 700)
    near_megapixel = client.submit(
        edit_call("qwen-image-edit", images=[data_url("png", (600, 300))]), asynchronous=False
    )
    w, h = near_megapixel.usage.width, near_megapixel.usage.height
    assert abs(w / h - 2) < 0.05 and abs(w * h - 1024 * 1024) < 0.05 * 1024 * 1024


def test_outputs_differ_by_input_seed_and_index_and_repeat_for_the_same_call(client):
    def pixels(call):
        result = client.submit(call, asynchronous=False)
        return [client.download(url) for url in result.image_urls]

    first, second = pixels(edit_call(n=2, seed=1))
    assert first != second
    assert pixels(edit_call(n=1, seed=1)) == [first]
    assert pixels(edit_call(n=1, seed=2)) != [first]
    other_input = [data_url("png", (800, 600), color=(0, 0, 255))]
    assert pixels(edit_call(images=other_input, n=1, seed=1)) != [first]


# ---- async lifecycle and cancel -------------------------------------------------------------


@pytest.mark.parametrize("model", ["qwen-image-plus", "qwen-image"])
def test_async_task_goes_pending_running_succeeded(client, model):
    created = client.submit(t2i_call(model, n=2), asynchronous=True)
    assert created.status is TaskStatus.PENDING and created.task_id and not created.image_urls
    final, seen = wait_final(client, created)
    assert seen[0] is TaskStatus.PENDING and TaskStatus.RUNNING in seen
    assert final.status is TaskStatus.SUCCEEDED and len(final.image_urls) == 2
    assert final.usage.image_count == 2
    assert final.submit_time <= final.scheduled_time <= final.end_time
    assert png_size(client.download(final.image_urls[1])) == (1024, 1024)


def test_cancel_while_pending(client, emulator):
    emulator.fake.faults.pending_s = 30
    task = client.submit(t2i_call(), asynchronous=True)
    client.cancel(task.task_id)
    assert client.fetch(task.task_id).status is TaskStatus.CANCELED


def test_cancel_after_pending_is_refused_for_good(client, emulator):
    emulator.fake.faults.pending_s = 0
    emulator.fake.faults.running_s = 30
    task = client.submit(t2i_call(), asynchronous=True)
    with pytest.raises(ProviderError) as caught:
        client.cancel(task.task_id)
    assert caught.value.code == "UnsupportedOperation" and not caught.value.retryable
    assert client.fetch(task.task_id).status is TaskStatus.RUNNING


def test_failed_task_keeps_the_provider_code(client, emulator):
    emulator.fake.faults.task_failure_rate = 1.0
    final, _ = wait_final(client, client.submit(t2i_call(), asynchronous=True))
    assert final.status is TaskStatus.FAILED
    assert (final.error_code, final.error_message) == (
        "InternalError.Algo",
        "Algorithm process error.",
    )
    assert not final.image_urls


def test_unknown_task_is_unknown_and_final(client):
    task = client.fetch("00000000-0000-0000-0000-000000000000")
    assert task.status is TaskStatus.UNKNOWN and task.status.is_final


def test_tasks_of_another_key_are_unknown(client, emulator):
    task = client.submit(t2i_call(), asynchronous=True)
    other = DashScopeClient("sk-other", base_url=emulator.api_base_url)
    assert other.fetch(task.task_id).status is TaskStatus.UNKNOWN


def test_third_concurrent_async_task_is_throttled_and_retryable(client, emulator):
    emulator.fake.faults.enforce_rate_limits = True
    emulator.fake.faults.running_s = 30
    client.submit(t2i_call(), asynchronous=True)
    time.sleep(0.5)  # stay under the 2/second request limit: this is about concurrency
    client.submit(t2i_call(), asynchronous=True)
    time.sleep(1.0)
    with pytest.raises(ProviderError) as caught:
        client.submit(t2i_call(), asynchronous=True)
    assert caught.value.http_status == 429 and caught.value.retryable
    assert caught.value.code == "Throttling.AllocationQuota"


# ---- errors and their retryable flag --------------------------------------------------------


def provider_error(call) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        call()
    return caught.value


def test_invalid_api_key_is_final(emulator):
    emulator.fake.api_key = "sk-right"
    error = provider_error(
        lambda: DashScopeClient("sk-wrong", base_url=emulator.api_base_url).submit(
            edit_call(), asynchronous=False
        )
    )
    assert (error.http_status, error.code, error.retryable) == (401, "InvalidApiKey", False)
    assert error.request_id


def test_unknown_model_is_final(client):
    error = provider_error(lambda: client.submit(edit_call("qwen-image-ultra"), asynchronous=False))
    assert (error.http_status, error.code, error.retryable) == (404, "ModelNotFound", False)


def test_provider_side_validation_is_final(client):
    error = provider_error(
        lambda: client.submit(edit_call("qwen-image-edit", n=2), asynchronous=False)
    )
    assert (error.http_status, error.code, error.retryable) == (400, "InvalidParameter", False)
    assert "qwen-image-edit" in error.message


def test_async_call_of_a_sync_only_model_is_final(client):
    error = provider_error(lambda: client.submit(t2i_call("qwen-image-2.0"), asynchronous=True))
    assert (error.code, error.retryable) == ("InvalidParameter", False)


@pytest.mark.parametrize(
    "fault, status, code, retryable",
    [
        ("throttle_rate", 429, "Throttling", True),
        ("final_error_rate", 400, "DataInspectionFailed", False),
    ],
)
def test_injected_faults(client, emulator, fault, status, code, retryable):
    setattr(emulator.fake.faults, fault, 1.0)
    error = provider_error(lambda: client.submit(edit_call(), asynchronous=False))
    assert (error.http_status, error.code, error.retryable) == (status, code, retryable)


def test_injected_server_errors_are_retryable(client, emulator):
    emulator.fake.faults.server_error_rate = 1.0
    seen = set()
    for _ in range(12):
        error = provider_error(lambda: client.submit(edit_call(), asynchronous=False))
        assert error.retryable
        seen.add((error.http_status, error.code))
    assert seen == {(500, "InternalError"), (503, "ModelUnavailable")}


def test_rate_limit_is_enforced_per_family_like_the_provider(client, emulator):
    emulator.fake.faults.enforce_rate_limits = True
    emulator.fake.faults.rate_limits = {
        "qwen-image-edit-plus": LimitOverride(requests=1, per_seconds=30)
    }
    client.submit(edit_call("qwen-image-edit-plus"), asynchronous=False)
    error = provider_error(
        lambda: client.submit(edit_call("qwen-image-edit-plus-2025-12-15"), asynchronous=False)
    )
    assert (error.http_status, error.code, error.retryable) == (429, "Throttling.RateQuota", True)
    assert client.submit(edit_call("qwen-image-edit"), asynchronous=False)  # another family
    assert emulator.fake.counters["rate_limited"] == 1


def test_catalog_rate_limit_two_per_minute(client, emulator):
    emulator.fake.faults.enforce_rate_limits = True
    client.submit(edit_call("qwen-image-edit-max"), asynchronous=False)
    client.submit(edit_call("qwen-image-edit-max"), asynchronous=False)
    error = provider_error(
        lambda: client.submit(edit_call("qwen-image-edit-max"), asynchronous=False)
    )
    assert error.code == "Throttling.RateQuota"


@pytest.mark.parametrize(
    "failure, code, outcome_unknown",
    [
        (httpx.ReadTimeout, "RequestTimeout", True),  # sent: the provider may have it
        (httpx.WriteTimeout, "RequestTimeout", True),
        (httpx.RemoteProtocolError, "ConnectionError", True),
        (httpx.ConnectTimeout, "ConnectionError", False),  # nothing left this machine
        (httpx.ConnectError, "ConnectionError", False),
        (httpx.PoolTimeout, "ConnectionError", False),
    ],
)
def test_failures_without_an_answer_are_retryable_and_say_whether_the_call_left(
    failure, code, outcome_unknown
):
    def fail(request):
        raise failure("no answer", request=request)

    error = provider_error(
        lambda: DashScopeClient("k", transport=httpx.MockTransport(fail)).submit(
            edit_call(), asynchronous=False
        )
    )
    assert (error.code, error.retryable, error.http_status) == (code, True, None)
    assert error.outcome_unknown is outcome_unknown


def test_an_unreachable_host_is_retryable_and_was_never_reached():
    closed = DashScopeClient("k", base_url="http://127.0.0.1:9/api/v1")
    error = provider_error(lambda: closed.fetch("t"))
    assert (error.code, error.retryable, error.outcome_unknown) == ("ConnectionError", True, False)


def test_gateway_pages_without_json_are_classed_by_status():
    client = DashScopeClient(
        "k",
        transport=httpx.MockTransport(
            lambda r: httpx.Response(502, text="<html>Bad Gateway</html>")
        ),
    )
    error = provider_error(lambda: client.fetch("t"))
    assert (error.code, error.http_status, error.retryable) == ("HTTP502", 502, True)


def test_a_200_without_images_is_an_error():
    client = DashScopeClient(
        "k",
        transport=httpx.MockTransport(
            lambda r: httpx.Response(
                200, json={"request_id": "r", "code": "DataInspectionFailed", "message": "no"}
            )
        ),
    )
    error = provider_error(lambda: client.submit(edit_call(), asynchronous=False))
    assert (error.code, error.retryable, error.request_id) == ("DataInspectionFailed", False, "r")


# ---- result URLs expire ---------------------------------------------------------------------


def test_expired_result_urls(client, emulator):
    result = client.submit(edit_call(), asynchronous=False)
    assert client.download(result.image_urls[0])
    emulator.fake.expire_results()
    error = provider_error(lambda: client.download(result.image_urls[0]))
    assert (error.code, error.http_status, error.retryable) == ("ResultExpired", 403, False)


def test_result_ttl_fault(client, emulator):
    emulator.fake.faults.result_ttl_s = 0
    result = client.submit(edit_call(), asynchronous=False)
    assert provider_error(lambda: client.download(result.image_urls[0])).code == "ResultExpired"
