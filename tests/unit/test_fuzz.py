"""A fuzzing pass of our own over what reads untrusted input: the request parser, the body
reader, image references and S3 keys. Whatever comes in, the only outcomes are a valid value
or our own refusal (a 4xx, an .error.json), never another exception, and no key built from an
upload's key ever leaves outbox/."""

from __future__ import annotations

import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwen_edit.app import uploads
from qwen_edit.context import Context
from qwen_edit.domain import keys
from qwen_edit.domain.catalog import MODELS, Capability
from qwen_edit.domain.errors import BadRequest, InvalidRequest
from qwen_edit.domain.images import ImageRejected, parse_image_ref
from qwen_edit.domain.requests import parse_request
from qwen_edit.entrypoints import request_body
from qwen_edit.settings import Buckets

FUZZ = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
FIELDS = [
    "model",
    "prompt",
    "negative_prompt",
    "n",
    "size",
    "seed",
    "prompt_extend",
    "watermark",
    "webhook_url",
    "metadata",
    "images",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
plausible = {
    "model": st.sampled_from([*MODELS, "", "nope"]) | st.text(max_size=10),
    "prompt": st.text(max_size=60),
    "size": st.from_regex(r"[0-9²١]{0,6}\*[0-9１]{0,6}", fullmatch=True) | st.text(max_size=12),
    "images": st.lists(
        st.sampled_from(
            [
                "https://h.example/a.png",
                "s3://b/k.png",
                "data:",
                "data:image/png;base64,AAAA",
                "http://[::1/x",
            ]
        )
        | st.text(max_size=30),
        max_size=5,
    ),
}


@st.composite
def payloads(draw):
    chosen = draw(st.lists(st.sampled_from([*FIELDS, "extra"]), unique=True, max_size=8))
    return {name: draw(plausible.get(name, json_values)) for name in chosen}


@FUZZ
@given(payload=payloads(), capability=st.sampled_from(list(Capability)))
def test_the_request_parser_only_accepts_or_refuses(payload, capability):
    try:
        valid = parse_request(capability, payload, default_model="qwen-image-edit-plus")
    except InvalidRequest as refused:
        assert refused.details and all(d["field"] and d["rule"] for d in refused.details)
    else:
        assert valid.spec.id in MODELS


@FUZZ
@given(text=st.text(max_size=200) | json_values.map(json.dumps))
def test_the_body_reader_only_reads_or_refuses(text):
    with contextlib.suppress(BadRequest):
        request_body.parse(text)


@FUZZ
@given(value=st.text(max_size=80) | st.from_regex(r"(s3|https?|data|ftp)://?[^ ]{0,30}"))
def test_image_references_only_parse_or_refuse(value):
    with contextlib.suppress(ImageRejected):
        parse_image_ref(value)


segment = st.sampled_from(["", ".", "..", "a", "b c", "..a", "x.png", "r", "%2e%2e", "\x00"])
upload_keys = st.lists(segment | st.text(max_size=6), min_size=1, max_size=6).map(
    lambda parts: "inbox/" + "/".join(parts)
) | st.text(max_size=60)


def safe_output(key: str) -> bool:
    return key.startswith(keys.OUTBOX) and all(p not in ("", ".", "..") for p in key.split("/"))


@FUZZ
@given(key=upload_keys)
def test_keys_from_uploads_never_leave_the_outbox(key):
    assert safe_output(keys.rejection_key(key))
    try:
        inbox = keys.parse_inbox_key(key)
    except keys.UnsafeKey:
        return
    assert safe_output(f"{inbox.outbox_prefix}{inbox.stem}.png")


class Objects:
    def __init__(self, documents: dict[str, bytes]):
        self.documents = documents

    def get(self, _bucket: str, key: str) -> bytes | None:
        return self.documents.get(key)


@settings(max_examples=200, deadline=None, database=None)
@given(key=upload_keys, recipe=json_values)
def test_planning_an_upload_only_plans_or_rejects(key, recipe):
    """Any key, any recipe document: a plan that writes under outbox/, or a Rejected."""
    documents = {"recipes/r.json": json.dumps(recipe).encode(), key: json.dumps(recipe).encode()}
    ctx = Context(
        Buckets(input_bucket="in", output_bucket="out"), {"objects": lambda: Objects(documents)}
    )
    upload = uploads.Upload(bucket="in", key=key, size=1, identity="v1")
    try:
        plan = uploads._plan(ctx, upload, uploads._inbox_key(upload))
    except uploads.Rejected:
        return
    assert safe_output(plan.output.image_key(0, 2)) and safe_output(plan.output.record_key)
