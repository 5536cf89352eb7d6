"""uploads.handle: one upload (one object version under inbox/) → one job, or one .error.json."""

from __future__ import annotations

import json
from typing import Any

import pytest

from qwen_edit.app import uploads
from qwen_edit.app.uploads import Upload
from qwen_edit.context import Context
from qwen_edit.domain.jobs import Job, JobSource, JobStatus

from .fakes import Fakes, a_job, fake_context, in_queue, present, tiny_png

RECIPE = {"model": "qwen-image-edit-plus", "prompt": "Turn the photo into a watercolor", "seed": 3}


@pytest.fixture
def recipe(fakes: Fakes) -> dict[str, Any]:
    fakes.objects.put(
        "in", "recipes/watercolor.json", json.dumps(RECIPE).encode(), "application/json"
    )
    return RECIPE


def uploaded(fakes: Fakes, key: str, body: bytes | None = None, identity: str = "v1") -> Upload:
    body = tiny_png() if body is None else body
    fakes.objects.put("in", key, body, "application/octet-stream")
    return Upload(bucket="in", key=key, size=len(body), identity=identity)


def accepted(ctx: Context, upload: Upload) -> Job:
    return present(uploads.handle(ctx, upload))


def rejection(ctx: Context, fakes: Fakes, upload: Upload) -> dict[str, Any]:
    """Handle a refused upload: exactly one object written, the .error.json; no job."""
    before = len(fakes.objects.writes)
    assert uploads.handle(ctx, upload) is None
    [(bucket, key)] = fakes.objects.writes[before:]
    assert bucket == "out" and key.endswith(".error.json")
    assert fakes.jobs.all() == [] and fakes.executions.start_calls == []
    assert fakes.provider.calls == 0
    record = fakes.objects.json(bucket, key)
    assert record["input"] == f"s3://in/{upload.key}"
    assert fakes.metrics.named("UploadRejections")[-1] == (1, {"Reason": record["error"]["code"]})
    return {"key": key, **record["error"]}


def test_a_recipe_upload_becomes_one_queued_job(
    ctx: Context, fakes: Fakes, recipe: dict[str, Any]
) -> None:
    job = accepted(ctx, uploaded(fakes, "inbox/watercolor/2026/harbor.png"))
    assert job.id.startswith("s3-")
    stored = fakes.jobs.get(job.id)
    assert stored.status is JobStatus.QUEUED and stored.source is JobSource.S3
    assert stored.tenant == uploads.UPLOAD_TENANT
    assert stored.request["prompt"] == RECIPE["prompt"] and stored.request["seed"] == 3
    assert stored.request["images"] == ["s3://in/inbox/watercolor/2026/harbor.png"]
    assert (stored.output.prefix, stored.output.stem) == ("outbox/watercolor/2026/", "harbor")
    assert list(fakes.executions.started) == [job.id]


def test_a_redelivery_of_the_same_upload_makes_no_second_job(
    ctx: Context, fakes: Fakes, recipe: dict[str, Any]
) -> None:
    upload = uploaded(fakes, "inbox/watercolor/harbor.png")
    first = accepted(ctx, upload)
    assert uploads.handle(ctx, upload) is None
    assert [job.id for job in fakes.jobs.all()] == [first.id]
    assert list(fakes.executions.started) == [first.id]


def test_a_new_version_of_the_same_key_is_a_new_job(
    ctx: Context, fakes: Fakes, recipe: dict[str, Any]
) -> None:
    first = accepted(ctx, uploaded(fakes, "inbox/watercolor/harbor.png", identity="v1"))
    second = accepted(ctx, uploaded(fakes, "inbox/watercolor/harbor.png", identity="v2"))
    assert first.id != second.id and len(fakes.jobs.all()) == 2


def test_a_redelivery_restarts_a_job_whose_workflow_never_started(
    ctx: Context, fakes: Fakes, recipe: dict[str, Any]
) -> None:
    upload = uploaded(fakes, "inbox/watercolor/harbor.png")
    job = accepted(ctx, upload)
    fakes.executions.started.clear()  # the first delivery died between create and start
    uploads.handle(ctx, upload)
    assert list(fakes.executions.started) == [job.id]


def test_recipe_reference_images_follow_the_upload(ctx: Context, fakes: Fakes) -> None:
    fakes.objects.put("in", "assets/dress.png", tiny_png(), "image/png")
    outfit = {**RECIPE, "images": ["assets/dress.png"]}
    fakes.objects.put("in", "recipes/outfit.json", json.dumps(outfit).encode(), "application/json")
    job = accepted(ctx, uploaded(fakes, "inbox/outfit/ana.png"))
    assert job.request["images"] == ["s3://in/inbox/outfit/ana.png", "s3://in/assets/dress.png"]


def test_a_folder_marker_is_ignored_silently(ctx: Context, fakes: Fakes) -> None:
    assert (
        uploads.handle(ctx, Upload(bucket="in", key="inbox/watercolor/", size=0, identity="v"))
        is None
    )
    assert fakes.objects.writes == [] and fakes.jobs.all() == []


def test_an_unknown_recipe_is_answered_beside_the_would_be_output(
    ctx: Context, fakes: Fakes
) -> None:
    error = rejection(ctx, fakes, uploaded(fakes, "inbox/nosuchrecipe/a.png"))
    assert error["key"] == "outbox/nosuchrecipe/a.error.json"
    assert error["code"] == "NotFound" and "unknown recipe 'nosuchrecipe'" in error["message"]


def test_a_file_that_is_not_an_image_is_refused_by_its_extension(
    ctx: Context, fakes: Fakes, recipe: dict[str, Any]
) -> None:
    error = rejection(ctx, fakes, uploaded(fakes, "inbox/watercolor/readme.txt", b"hello"))
    assert (error["key"], error["code"]) == ("outbox/watercolor/readme.error.json", "NotAnImage")


def test_bytes_that_are_not_an_image_are_refused(
    ctx: Context, fakes: Fakes, recipe: dict[str, Any]
) -> None:
    error = rejection(ctx, fakes, uploaded(fakes, "inbox/watercolor/notes.png", b"not an image"))
    assert error["code"] == "InvalidRequest" and "not a PNG, JPEG" in error["message"]
    assert error["details"][0]["field"] == "images[0]"


def test_an_unsafe_key_is_answered_under_rejected_by_its_digest(
    ctx: Context, fakes: Fakes, recipe: dict[str, Any]
) -> None:
    error = rejection(ctx, fakes, uploaded(fakes, "inbox/watercolor/../escape.png"))
    assert error["key"].startswith("outbox/_rejected/") and error["code"] == "UnsafeKey"


def test_a_malformed_recipe_is_the_uploaders_mistake(ctx: Context, fakes: Fakes) -> None:
    fakes.objects.put("in", "recipes/broken.json", b'{"prompt": ', "application/json")
    error = rejection(ctx, fakes, uploaded(fakes, "inbox/broken/a.png"))
    assert (error["key"], error["code"]) == ("outbox/broken/a.error.json", "MalformedJson")


def test_an_image_loose_in_the_inbox_is_not_in_a_recipe(ctx: Context, fakes: Fakes) -> None:
    error = rejection(ctx, fakes, uploaded(fakes, "inbox/loose.png"))
    assert (error["key"], error["code"]) == ("outbox/loose.error.json", "NotInARecipe")


def test_a_manifest_may_not_name_images_that_trigger_jobs(ctx: Context, fakes: Fakes) -> None:
    manifest = {"prompt": "x", "images": ["inbox/watercolor/a.png"]}
    error = rejection(ctx, fakes, uploaded(fakes, "inbox/plan.json", json.dumps(manifest).encode()))
    assert error["code"] == "InvalidRequest" and "triggers jobs" in error["message"]


def test_a_manifest_may_not_name_an_api_tenants_upload(ctx: Context, fakes: Fakes) -> None:
    fakes.objects.put("in", "uploads/abc/x.png", tiny_png(), "image/png")
    manifest = {"prompt": "x", "images": ["uploads/abc/x.png"]}
    error = rejection(ctx, fakes, uploaded(fakes, "inbox/plan.json", json.dumps(manifest).encode()))
    assert error["details"][0]["rule"] == "not-available"


def test_a_recipe_may_choose_the_interactive_lane(
    ctx: Context, fakes: Fakes, recipe: dict[str, Any]
) -> None:
    rush = json.dumps({**recipe, "lane": "interactive"}).encode()
    fakes.objects.put("in", "recipes/rush.json", rush, "application/json")
    assert accepted(ctx, uploaded(fakes, "inbox/rush/a.png")).lane == "interactive"
    assert accepted(ctx, uploaded(fakes, "inbox/watercolor/a.png")).lane == "batch"


def test_a_recipe_may_choose_webhook_events_and_its_queued_event_goes_before_the_start(
    ctx: Context, fakes: Fakes, recipe: dict[str, Any]
) -> None:
    hook = {"webhook_url": "https://hooks.example.com/q", "webhook_events": ["queued", "failed"]}
    fakes.objects.put("in", "recipes/hooked.json", json.dumps({**recipe, **hook}).encode(), "")
    fakes.executions.failure = RuntimeError("states is down")
    with pytest.raises(RuntimeError):  # S3 redelivers it; its job is recorded and announced
        uploads.handle(ctx, uploaded(fakes, "inbox/hooked/a.png"))
    [job] = fakes.jobs.all()
    assert job.webhook_events == [JobStatus.QUEUED, JobStatus.FAILED]
    [(delivery, _)] = fakes.outbox.sent
    assert json.loads(delivery.body)["type"] == "job.queued"


def test_a_recipe_with_webhook_events_and_no_webhook_url_is_refused(
    ctx: Context, fakes: Fakes, recipe: dict[str, Any]
) -> None:
    document = json.dumps({**recipe, "webhook_events": ["running"]}).encode()
    fakes.objects.put("in", "recipes/deaf.json", document, "")
    error = rejection(ctx, fakes, uploaded(fakes, "inbox/deaf/a.png"))
    assert [(d["field"], d["rule"]) for d in error["details"]] == [
        ("webhook_events", "requires-webhook_url")
    ]


def test_an_upload_over_the_queue_cap_is_answered_with_queue_full() -> None:
    ctx, fakes = fake_context(max_queued_jobs_per_tenant=1)
    fakes.objects.put("in", "recipes/watercolor.json", json.dumps(RECIPE).encode(), "")
    in_queue(fakes, a_job(uploads.UPLOAD_TENANT))  # an earlier upload's job, waiting
    answer = rejection(ctx, fakes, uploaded(fakes, "inbox/watercolor/b.png"))
    assert answer["code"] == "QueueFull" and answer["details"] == [
        {"limit": "queue", "retry_after_seconds": 1}
    ]


def test_a_redelivery_at_the_queue_cap_is_still_a_redelivery() -> None:
    ctx, fakes = fake_context(max_queued_jobs_per_tenant=1)
    fakes.objects.put("in", "recipes/watercolor.json", json.dumps(RECIPE).encode(), "")
    upload = uploaded(fakes, "inbox/watercolor/c.png")
    job = accepted(ctx, upload)
    in_queue(fakes, job)
    writes = len(fakes.objects.writes)
    assert uploads.handle(ctx, upload) is None  # the cap is full, with this very job
    assert len(fakes.objects.writes) == writes  # no .error.json for an accepted upload
