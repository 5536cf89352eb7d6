"""GET /console: the page is served without a key, with a policy that admits only its own inline
script and style (by hash), and a 404 when the Console parameter turns it off."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import re
from pathlib import Path

import pytest

from qwen_edit import runtime
from qwen_edit.entrypoints.api import console

from .fakes import fake_context

ROOT = Path(__file__).resolve().parents[2]
EVENT = json.loads((ROOT / "events" / "api-console.json").read_text())


def _api_app():
    spec = importlib.util.spec_from_file_location("api_app_console", ROOT / "functions/api/app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Lambda:
    function_name = "api"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:1:function:api"
    aws_request_id = "r-1"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 29_000


def _get(monkeypatch, **settings):
    ctx, _ = fake_context(**settings)
    monkeypatch.setattr(runtime, "context", lambda function=None: ctx)
    console._bucket_origins.cache_clear()
    return _api_app().handler(EVENT, _Lambda())


def _policy(answer) -> dict[str, list[str]]:
    text = answer["multiValueHeaders"]["Content-Security-Policy"][0]
    return {d.split()[0]: d.split()[1:] for d in text.split("; ")}


def test_the_page_is_served_without_an_api_key(monkeypatch):
    assert EVENT["requestContext"]["identity"]["apiKeyId"] is None
    answer = _get(monkeypatch)
    assert answer["statusCode"] == 200
    assert answer["multiValueHeaders"]["Content-Type"] == ["text/html; charset=utf-8"]
    assert answer["body"] == console.PAGE.read_text()
    assert "<title>qwen-edit console</title>" in answer["body"]


def test_headers_forbid_sniffing_framing_and_referrers(monkeypatch):
    headers = _get(monkeypatch)["multiValueHeaders"]
    assert headers["X-Content-Type-Options"] == ["nosniff"]
    assert headers["X-Frame-Options"] == ["DENY"]
    assert headers["Referrer-Policy"] == ["no-referrer"]


def test_the_policy_allows_only_the_pages_own_script_and_style_by_hash(monkeypatch):
    policy = _policy(_get(monkeypatch))
    page = console.PAGE.read_text()
    for tag, directive in (("script", "script-src"), ("style", "style-src")):
        bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
        assert len(bodies) == 1
        digest = base64.b64encode(hashlib.sha256(bodies[0].encode()).digest()).decode()
        assert policy[directive] == [f"'sha256-{digest}'"]  # no 'self', no origin, no unsafe-*
    assert policy["default-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"] and policy["form-action"] == ["'none'"]


def test_images_and_uploads_may_reach_only_the_presigned_urls_origin(monkeypatch):
    policy = _policy(_get(monkeypatch))
    # The fakes presign at https://fake-s3/<bucket>/…: the origin of a presigned URL, no path.
    assert policy["img-src"] == ["'self'", "data:", "blob:", "https://fake-s3"]
    assert policy["connect-src"] == ["'self'", "https://fake-s3"]


def test_the_page_has_no_inline_handlers_styles_or_remote_resources():
    page = console.PAGE.read_text()
    assert not re.search(r"\son[a-z]+\s*=", page)  # onclick= … would need 'unsafe-hashes'
    assert not re.search(r"\sstyle\s*=", page)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page
    assert len(page.encode()) < 50 * 1024


def test_turned_off_it_is_not_found(monkeypatch):
    answer = _get(monkeypatch, console="disabled")
    assert answer["statusCode"] == 404
    assert json.loads(answer["body"])["error"]["code"] == "NotFound"


@pytest.mark.parametrize("value", ["enabled", "disabled"])
def test_the_setting_reads_the_template_parameter(value):
    from qwen_edit.settings import ApiOnly

    assert ApiOnly.from_env({"IDEMPOTENCY_TABLE": "t", "CONSOLE": value}).console == value
