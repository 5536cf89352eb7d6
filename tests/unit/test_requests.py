"""Every rule of SPEC §2 on our side: accepted at the limit, rejected past it, field named."""

from __future__ import annotations

import base64

import pytest

from qwen_edit.domain.catalog import MAX_IMAGE_BYTES, Capability
from qwen_edit.domain.errors import InvalidRequest
from qwen_edit.domain.image_headers import ImageRejected
from qwen_edit.domain.images import InlineImage, S3Image, UrlImage, check_image_bytes, direct_url
from qwen_edit.domain.requests import parse_request
from qwen_edit_cli.local.samples import data_url, image_bytes

IMAGE = "https://images.example.com/photo.png"


def edit(**fields):
    payload = {
        "model": "qwen-image-edit-plus",
        "images": [IMAGE],
        "prompt": "make it blue",
        **fields,
    }
    return parse_request(Capability.EDIT, payload, default_model="qwen-image-edit-plus")


def generation(**fields):
    payload = {"prompt": "a lighthouse at dawn", **fields}
    return parse_request(Capability.TEXT_TO_IMAGE, payload, default_model="qwen-image-plus")


def rejected(build, **fields) -> list[dict]:
    with pytest.raises(InvalidRequest) as caught:
        build(**fields)
    assert caught.value.details, "an InvalidRequest always lists what broke"
    return caught.value.details


def broken(build, **fields) -> set[tuple[str, str]]:
    return {(d["field"], d["rule"]) for d in rejected(build, **fields)}


def test_default_models_fill_in():
    assert edit(model=None).spec.id == "qwen-image-edit-plus"
    job = generation()
    assert job.spec.id == "qwen-image-plus" and job.body.model == "qwen-image-plus"


@pytest.mark.parametrize(
    "field, limit, rule",
    [("prompt", 800, "string_too_long"), ("negative_prompt", 500, "string_too_long")],
)
def test_prompt_lengths(field, limit, rule):
    assert edit(**{field: "字" * limit})  # one character each, whatever the script
    assert broken(edit, **{field: "字" * (limit + 1)}) == {(field, rule)}


def test_blank_or_missing_prompt():
    assert broken(edit, prompt="   ") == {("prompt", "value_error")}
    assert broken(generation, prompt=None) == {("prompt", "string_type")}
    with pytest.raises(InvalidRequest) as caught:
        parse_request(Capability.TEXT_TO_IMAGE, {}, default_model="qwen-image")
    assert caught.value.details[0] == {
        "field": "prompt",
        "rule": "required",
        "message": "prompt: Field required",
    }


@pytest.mark.parametrize(
    "seed, ok", [(0, True), (2_147_483_647, True), (-1, False), (2_147_483_648, False)]
)
def test_seed_range(seed, ok):
    if ok:
        assert edit(seed=seed).body.seed == seed
    else:
        assert {f for f, _ in broken(edit, seed=seed)} == {"seed"}


@pytest.mark.parametrize(
    "model, most", [("qwen-image-edit-plus", 6), ("qwen-image-2.0-pro", 6), ("qwen-image-edit", 1)]
)
def test_n_per_model_for_edits(model, most):
    assert edit(model=model, n=most).body.n == most
    assert broken(edit, model=model, n=most + 1) == {("n", "range")}
    assert broken(edit, model=model, n=0) == {("n", "greater_than_equal")}


def test_n_per_model_for_generations():
    assert generation(model="qwen-image-max", n=1)
    assert broken(generation, model="qwen-image-max-2025-12-30", n=2) == {("n", "range")}
    assert generation(model="qwen-image", n=6)


@pytest.mark.parametrize("count, ok", [(1, True), (3, True), (4, False)])
def test_image_count(count, ok):
    images = [IMAGE] * count
    if ok:
        assert len(edit(images=images).images) == count
    else:
        assert broken(edit, images=images) == {("images", "too_long")}


def test_edit_needs_images():
    assert broken(edit, images=[]) == {("images", "too_short")}
    assert ("images", "required") in broken(
        lambda **f: parse_request(Capability.EDIT, {"prompt": "x"}, default_model="qwen-image-edit")
    )


@pytest.mark.parametrize(
    "model, size, ok, rule",
    [
        ("qwen-image-2.0", "512*512", True, None),
        ("qwen-image-2.0", "2048*2048", True, None),
        ("qwen-image-2.0", "4096*256", True, None),  # the 2.0 rule is on total pixels only
        ("qwen-image-2.0", "511*512", False, "total-pixels"),
        ("qwen-image-2.0-pro", "2048*2049", False, "total-pixels"),
        ("qwen-image-edit-plus", "512*2048", True, None),
        ("qwen-image-edit-max", "511*1024", False, "each-side"),
        ("qwen-image-edit-plus-2025-10-30", "1024*2049", False, "each-side"),
        ("qwen-image-edit", "1024*1024", False, "not-settable"),
        ("qwen-image-edit-plus", "1024x1024", False, "format"),
        ("qwen-image-edit-plus", "0*1024", False, "format"),
    ],
)
def test_size_rules(model, size, ok, rule):
    if ok:
        assert edit(model=model, size=size).body.size == size
    else:
        assert broken(edit, model=model, size=size) == {("size", rule)}


def test_provider_table_sizes_are_checked_for_form_and_pixel_bounds():
    assert generation(model="qwen-image-plus", size="1664*928")
    assert broken(generation, model="qwen-image-plus", size="big") == {("size", "format")}
    assert broken(generation, model="qwen-image-max", size="99999*99999") == {
        ("size", "total-pixels")
    }


def test_unknown_model_and_wrong_capability():
    assert broken(edit, model="qwen-image-ultra") == {("model", "known-model")}
    assert broken(edit, model="qwen-image-max") == {("model", "capability")}
    assert broken(generation, model="qwen-image-edit-plus") == {("model", "capability")}


def test_unknown_fields_are_refused():
    assert broken(edit, strength=0.5) == {("strength", "unknown-field")}


def test_webhook_url_must_be_a_url():
    # Where it may point (https, public addresses) is webhooks.check_target's:
    # tests/test_webhooks.py
    assert edit(webhook_url="https://hooks.example.com/qwen")
    assert broken(edit, webhook_url="ftp://hooks.example.com/qwen") == {
        ("webhook_url", "value_error")
    }
    assert broken(edit, webhook_url="not a url") == {("webhook_url", "value_error")}


def test_metadata_limits():
    assert edit(metadata={"order": "A-17"}).body.metadata == {"order": "A-17"}
    assert {f for f, _ in broken(edit, metadata={"k": "v" * 513})} == {"metadata.k"}
    assert broken(edit, metadata={f"k{i}": "v" for i in range(21)}) == {("metadata", "too_long")}


def test_correlation_id_is_printable_ascii_without_spaces():
    assert edit(correlation_id="order-17/step:2").body.correlation_id == "order-17/step:2"
    assert broken(edit, correlation_id="two words") == {("correlation_id", "pattern")}
    assert broken(edit, correlation_id="x" * 129) == {("correlation_id", "string_too_long")}
    assert broken(edit, correlation_id="") == {("correlation_id", "string_too_short")}


@pytest.mark.parametrize("fmt", ["jpeg", "png", "bmp", "tiff", "webp", "gif"])
def test_every_input_format_is_accepted_inline(fmt):
    job = edit(images=[data_url(fmt)])
    assert isinstance(job.images[0], InlineImage) and job.images[0].format == fmt


def test_jpg_mime_alias_is_accepted():
    assert edit(images=[data_url("jpeg", mime="image/jpg")])


def test_inline_image_rules():
    png = base64.b64encode(image_bytes("png")).decode()
    assert broken(edit, images=[f"data:image/jpeg;base64,{png}"]) == {
        ("images[0]", "mime-mismatch")
    }
    text = base64.b64encode(b"hello, not an image").decode()
    assert broken(edit, images=[f"data:image/png;base64,{text}"]) == {("images[0]", "format")}
    assert broken(edit, images=["data:image/png;base64,%%%"]) == {("images[0]", "data-url")}
    assert broken(edit, images=[f"data:image/svg+xml;base64,{png}"]) == {("images[0]", "format")}
    assert broken(edit, images=[f"data:text/plain;base64,{png}"]) == {("images[0]", "data-url")}


def test_inline_image_size_limit_at_and_past_10_mb():
    head = image_bytes("png", (64, 64))
    exactly = head + b"\0" * (MAX_IMAGE_BYTES - len(head))
    at_limit = "data:image/png;base64," + base64.b64encode(exactly).decode()
    assert len(edit(images=[at_limit]).images[0].data) == MAX_IMAGE_BYTES
    over = "data:image/png;base64," + base64.b64encode(exactly + b"\0" * 3).decode()
    assert broken(edit, images=[over]) == {("images[0]", "max-bytes")}


def test_image_reference_kinds():
    job = edit(images=[IMAGE, "s3://qe-input/uploads/a b.png", data_url("png")])
    assert isinstance(job.images[0], UrlImage)
    assert job.images[1] == S3Image("qe-input", "uploads/a b.png")
    assert broken(edit, images=["ftp://example.com/x.png"]) == {("images[0]", "scheme")}
    assert broken(edit, images=["s3://qe-input"]) == {("images[0]", "s3-reference")}


def test_every_broken_rule_is_reported_at_once():
    details = rejected(
        edit, model="qwen-image-edit", n=2, size="1024*1024", images=[IMAGE, "ftp://x"]
    )
    assert [d["field"] for d in details] == ["n", "size", "images[1]"]
    assert all(d["message"] for d in details)


def test_formats_need_real_signatures():
    assert check_image_bytes(image_bytes("webp")).format == "webp"
    with pytest.raises(ImageRejected):
        check_image_bytes(b"RIFF\0\0\0\0WAVEfmt ")


def test_to_provider_carries_only_set_parameters():
    job = edit(images=[IMAGE, data_url("png")], n=2, seed=5, negative_prompt="blur")
    call = job.to_provider(direct_url)
    assert call.images[0] == IMAGE and call.images[1].startswith("data:image/png;base64,")
    assert call.parameters == {"n": 2, "seed": 5}
    assert call.negative_prompt == "blur"
    with pytest.raises(ValueError, match="presigned"):
        edit(images=["s3://qe-input/a.png"]).to_provider(direct_url)
