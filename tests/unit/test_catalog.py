"""The model catalog holds every model of the image-editing guide and the text-to-image
reference, with the rules of SPEC §2."""

from __future__ import annotations

import pytest

from qwen_edit.domain.catalog import (
    MODELS,
    Capability,
    Endpoint,
    Provider,
    RateLimit,
    SizeRule,
    get_model,
    models_for,
)

import yaml_loader

# Every id named in the image-editing guide and the text-to-image reference, snapshots included.
SEED_EDIT_MODELS = [
    "qwen-image-2.0-pro",
    "qwen-image-2.0-pro-2026-03-03",
    "qwen-image-2.0",
    "qwen-image-2.0-2026-03-03",
    "qwen-image-edit-max",
    "qwen-image-edit-max-2026-01-16",
    "qwen-image-edit-plus",
    "qwen-image-edit-plus-2025-12-15",
    "qwen-image-edit-plus-2025-10-30",
    "qwen-image-edit",
]
SEED_T2I_MODELS = [
    "qwen-image-2.0-pro",
    "qwen-image-2.0-pro-2026-03-03",
    "qwen-image-2.0",
    "qwen-image-2.0-2026-03-03",
    "qwen-image-max",
    "qwen-image-max-2025-12-30",
    "qwen-image-plus",
    "qwen-image-plus-2026-01-09",
    "qwen-image",
]


def test_every_seed_model_is_in_the_catalog_with_its_capability():
    assert [m.id for m in models_for(Capability.EDIT, Provider.DASHSCOPE)] == SEED_EDIT_MODELS
    assert [m.id for m in models_for(Capability.TEXT_TO_IMAGE)] == SEED_T2I_MODELS


def test_only_qwen_image_and_plus_take_async_calls_and_prefer_them():
    async_models = [m.id for m in MODELS.values() if Endpoint.IMAGE_SYNTHESIS_ASYNC in m.endpoints]
    assert async_models == ["qwen-image-plus", "qwen-image"]
    assert all(
        get_model(m).is_async and get_model(m).max_concurrent_tasks == 2 for m in async_models
    )
    assert not get_model("qwen-image-plus-2026-01-09").is_async


@pytest.mark.parametrize(
    "model_id, expected",
    [
        ("qwen-image-2.0-pro", RateLimit(2, 60)),
        ("qwen-image-2.0-pro-2026-03-03", RateLimit(2, 60)),
        ("qwen-image-edit-max", RateLimit(2, 60)),
        ("qwen-image-max", RateLimit(2, 60)),
        ("qwen-image-max-2025-12-30", RateLimit(2, 60)),
        ("qwen-image-2.0", RateLimit(2, 1)),
        ("qwen-image-edit-plus", RateLimit(2, 1)),
        ("qwen-image-edit", RateLimit(2, 1)),
        ("qwen-image-plus", RateLimit(2, 1)),
        ("qwen-image", RateLimit(2, 1)),
    ],
)
def test_rate_limits_follow_spec(model_id, expected):
    assert get_model(model_id).rate_limit == expected


def test_snapshots_share_their_alias_family_so_limits_are_counted_together():
    assert get_model("qwen-image-edit-plus-2025-10-30").family == "qwen-image-edit-plus"
    assert get_model("qwen-image-2.0-pro-2026-03-03").family == "qwen-image-2.0-pro"


def test_single_output_models():
    singles = sorted(m.id for m in MODELS.values() if m.max_outputs == 1)
    assert singles == ["qwen-image-edit", "qwen-image-max", "qwen-image-max-2025-12-30"]
    assert all(m.max_outputs == 6 for m in MODELS.values() if m.id not in singles)


def test_size_rules_per_series():
    assert get_model("qwen-image-2.0").size_rule is SizeRule.TOTAL_PIXELS
    assert get_model("qwen-image-edit-max-2026-01-16").size_rule is SizeRule.EACH_SIDE
    assert get_model("qwen-image-edit").size_rule is SizeRule.NOT_SETTABLE
    assert get_model("qwen-image-2.0-pro").text_to_image_default_size == "2048*2048"


def test_describe_is_the_public_view():
    view = get_model("qwen-image-edit-plus").describe()
    assert view["input_images"] == {"min": 1, "max": 3}
    assert view["n"] == {"min": 1, "max": 6}
    assert view["size"] == {"rule": "each-side", "min_side": 512, "max_side": 2048}
    assert view["rate_limit"] == "2/second"
    assert get_model("qwen-image").describe()["input_images"] == {"min": 0, "max": 0}


def test_template_default_models_are_exactly_the_catalogs():
    params = yaml_loader.template()["Parameters"]
    assert params["DefaultModel"]["AllowedValues"] == [m.id for m in models_for(Capability.EDIT)]
    assert params["DefaultGenerationModel"]["AllowedValues"] == SEED_T2I_MODELS
