"""docs/openapi.json states the rules the validator keeps: for every model, the request schema
accepts what parse_request accepts, and refuses what it refuses, except the rules the document
names as beyond a schema (a width*height product)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from qwen_edit.domain.catalog import MODELS, Capability, SizeRule
from qwen_edit.domain.errors import InvalidRequest
from qwen_edit.domain.requests import WEBHOOK_URL_PATTERN, parse_request
from qwen_edit.domain.urls import parse_web_url, url_pattern

DOCUMENT = json.loads((Path(__file__).parents[2] / "docs" / "openapi.json").read_text())
DEFAULTS = {Capability.EDIT: "qwen-image-edit-plus", Capability.TEXT_TO_IMAGE: "qwen-image-plus"}
SCHEMAS = {
    capability: Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": DOCUMENT["components"]}
    )
    for capability, name in [
        (Capability.EDIT, "EditRequest"),
        (Capability.TEXT_TO_IMAGE, "GenerationRequest"),
    ]
}
IMAGE = "s3://inputs-bucket/uploads/a.png"  # its shape only: parse_request does not read it
SIZES = ["512*512", "0512*2048", "00512*512", "000512*512", "511*1024", "2048*2048", "2049*512",
         "1024*0", "0*0", "64*4096", "3*99999", "16384*16384", "1*1"]  # fmt: skip
MODEL_CHOICES = [None, *MODELS]


def _accepted(capability: Capability, body: dict[str, object]) -> bool:
    try:
        parse_request(capability, body, default_model=DEFAULTS[capability])
    except InvalidRequest:
        return False
    return True


@pytest.mark.parametrize("capability", list(Capability))
@pytest.mark.parametrize("model", MODEL_CHOICES)
def test_the_schema_and_the_validator_agree_on_models_n_and_sizes(capability, model):
    effective = MODELS[model or DEFAULTS[capability]]
    product_rule = effective.size_rule in (SizeRule.TOTAL_PIXELS, SizeRule.PROVIDER_TABLE)
    for extra in [{"n": n} for n in range(0, 8)] + [{"size": size} for size in SIZES]:
        body = {"prompt": "a cat", **({"model": model} if model else {}), **extra}
        if capability is Capability.EDIT:
            body["images"] = [IMAGE]
        by_schema = SCHEMAS[capability].is_valid(body)
        by_code = _accepted(capability, body)
        if product_rule and "size" in extra and by_schema and not by_code:
            continue  # the pixel bounds of width*height: stated in words, not in the schema
        assert by_schema == by_code, (body, by_schema, by_code)


URLS = [
    "https://hooks.example.com/qwen?x=1#y",
    "https://hooks.example.com:8443/a",
    "https://xn--bcher-kva.example/",
    "https://203.0.113.9/hook",
    "https://[2001:db8::1]/hook",
    "https://example.com./",
    "https://bücher.example/",
    "https://user:secret@example.com/",
    "https://example.com:0/",
    "https://example.com:65536/",
    "https://example.com:080/",
    "https://exa mple.com/",
    "https://example.com/a\\b",
    "https://-bad.example/",
    "https://a*b.example/",
    "https://my_host.example.com/",
    "HTTPS://example.com/",
    "https:///path",
]


@pytest.mark.parametrize("url", URLS)
def test_the_url_pattern_is_the_shape_the_code_accepts(url):
    try:
        parse_web_url(url)
        by_code = True
    except ValueError:
        by_code = False
    assert bool(re.fullmatch(url_pattern("https?"), url)) == by_code
    assert url_pattern("https") == WEBHOOK_URL_PATTERN


WEBHOOK_EVENT_CHOICES = [
    {},
    {"webhook_events": None},
    {"webhook_events": []},
    {"webhook_events": ["queued"]},
    {"webhook_events": ["queued", "running", "succeeded", "failed", "canceled"]},
    {"webhook_events": ["running", "running"]},
    {"webhook_events": ["started"]},
    {"webhook_events": "queued"},
]


@pytest.mark.parametrize("capability", list(Capability))
@pytest.mark.parametrize("events", WEBHOOK_EVENT_CHOICES)
@pytest.mark.parametrize("url", [{}, {"webhook_url": None}, {"webhook_url": URLS[0]}])
def test_the_schema_and_the_validator_agree_on_webhook_events(capability, events, url):
    body = {"prompt": "a cat", **events, **url}
    if capability is Capability.EDIT:
        body["images"] = [IMAGE]
    assert SCHEMAS[capability].is_valid(body) == _accepted(capability, body), body
