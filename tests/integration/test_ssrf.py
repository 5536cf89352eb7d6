"""SSRF: webhook targets and image URLs that name private, loopback, link-local or metadata
addresses, in every spelling, are refused before anything is sent (and before any paid call).

These tests feed such addresses on purpose, so they run only inside a loopback-only network
namespace (`unshare -n`), where no packet could leave even if a check failed: the one test
that runs outside starts pytest on this file in such a namespace.
"""

from __future__ import annotations

import pytest
from loopback_only import inside, outside, rerun_in_namespace

from qwen_edit_cli.local.drive import call
from qwen_edit_cli.local.samples import data_url

EDIT = {"model": "qwen-image-edit-plus", "prompt": "add a red scarf"}
METADATA_FORMS = [
    "169.254.169.254",
    "2852039166",
    "0251.0376.0251.0376",
    "0xa9fea9fe",
    "[::ffff:169.254.169.254]",
    "[64:ff9b::a9fe:a9fe]",
    "[2002:a9fe:a9fe::1]",
    "[::a9fe:a9fe]",
    "[2001:0:4136:e378:8000:63bf:5601:5601]",  # Teredo → .254
    "10.0.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "[fd00::1]",
    "[fe80::1]",
    "good.example@169.254.169.254",
]


@outside
def test_ssrf_cases_pass_in_a_loopback_only_namespace():
    rerun_in_namespace(__file__)


@inside
def test_nothing_but_loopback_is_reachable_here():
    import socket

    with socket.socket() as probe:
        probe.settimeout(1)
        assert probe.connect_ex(("10.0.0.1", 80)) != 0


@inside
@pytest.mark.parametrize("host", METADATA_FORMS)
def test_webhook_targets_of_every_spelling_are_refused(stack, host):
    answer = call(
        stack,
        "api-create-edit",
        body={**EDIT, "images": [data_url()], "webhook_url": f"https://{host}/hook"},
    )
    assert answer.status == 422, answer
    assert "webhook_url" in [d["field"] for d in answer.body["error"]["details"]]
    assert stack.emulator.fake.counters.total() == 0


@inside
@pytest.mark.parametrize("host", METADATA_FORMS)
def test_image_urls_to_private_addresses_cost_no_provider_call(stack, host):
    answer = call(
        stack, "api-create-edit", body={**EDIT, "images": [f"http://{host}/latest/meta-data/x.png"]}
    )
    assert answer.status == 422, answer
    # A user name in a URL is refused for its shape, before any address is looked at.
    expected = "url" if "@" in host else "public-url"
    assert answer.body["error"]["details"][0]["rule"] == expected
    assert stack.emulator.fake.counters.total() == 0


@inside
def test_public_image_urls_still_pass(stack):
    answer = call(stack, "api-create-edit", body={**EDIT, "images": ["https://8.8.8.8/a.png"]})
    assert answer.status == 202, answer
