"""service.py: validating, accepting, cancelling, showing and listing jobs, and new uploads."""

from __future__ import annotations

from typing import Any

import pytest

from qwen_edit.app import lifecycle, service
from qwen_edit.context import Context
from qwen_edit.domain import keys
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.errors import InvalidRequest, JobConflict, JobNotFound, QueueFull
from qwen_edit.domain.images import S3Image
from qwen_edit.domain.jobs import (
    Job,
    JobOutput,
    JobSource,
    JobStatus,
    ProviderInfo,
    QueueRoom,
    now_utc,
)

from .fakes import (
    Fakes,
    a_job,
    fake_context,
    http_error,
    png_data_url,
    present,
    queued,
    tiny_png,
)

EDIT = {"model": "qwen-image-edit-plus", "prompt": "add a red scarf"}


def accept(ctx: Context, payload: dict[str, Any], tenant: str = "tenant-a") -> Job:
    capability = Capability.EDIT if "images" in payload else Capability.TEXT_TO_IMAGE
    valid = service.validate(ctx, capability, payload, tenant=tenant)
    job, _room = service.accept(ctx, valid, tenant=tenant, source=JobSource.API)
    return job


def upload(ctx: Context, fakes: Fakes, tenant: str) -> str:
    """An image the tenant put with POST /v1/uploads; its s3:// reference."""
    answer = service.new_upload(ctx, tenant, "image/png", None)
    bucket, key = keys.parse_s3_uri(answer["image"])
    fakes.objects.put(bucket, key, tiny_png(), "image/png")
    image: str = answer["image"]
    return image


def refusal(ctx: Context, image: str, tenant: str = "tenant-a") -> dict[str, str]:
    with pytest.raises(InvalidRequest) as refused:
        service.validate(ctx, Capability.EDIT, {**EDIT, "images": [image]}, tenant=tenant)
    [detail] = refused.value.details
    return detail


# ---- accept ---------------------------------------------------------------------------------


def test_accept_stores_inline_images_and_records_only_s3_references(
    ctx: Context, fakes: Fakes
) -> None:
    job = accept(ctx, {**EDIT, "images": [png_data_url()]})
    assert fakes.objects.get("in", f"inputs/{job.id}/0.png") == tiny_png()
    stored = fakes.jobs.get(job.id)
    assert stored.status is JobStatus.QUEUED
    assert stored.request["images"] == [f"s3://in/inputs/{job.id}/0.png"]
    assert "data:" not in stored.model_dump_json()


def test_accept_starts_one_execution_named_after_the_job(ctx: Context, fakes: Fakes) -> None:
    job = accept(ctx, {**EDIT, "images": [png_data_url()]})
    assert fakes.executions.started == {job.id: {"job_id": job.id}}


def test_accept_keeps_webhook_and_metadata_out_of_the_request(ctx: Context) -> None:
    job = accept(
        ctx,
        {
            **EDIT,
            "images": [png_data_url()],
            "webhook_url": "https://hooks.example.com/q",
            "metadata": {"order": "A-17"},
            "correlation_id": "pipeline-9",
        },
    )
    assert "webhook_url" not in job.request and "metadata" not in job.request
    assert "correlation_id" not in job.request and job.correlation_id == "pipeline-9"
    assert (
        job.webhook_url == "https://hooks.example.com/q"
        and present(job.webhook).id == f"msg_{job.id}"
    )
    assert job.metadata == {"order": "A-17"}


def test_an_api_job_is_started_before_it_is_recorded_so_none_is_left_queued(
    ctx: Context, fakes: Fakes
) -> None:
    fakes.executions.failure = RuntimeError("states is down")
    with pytest.raises(RuntimeError):
        accept(ctx, {**EDIT, "images": [png_data_url()]})
    assert fakes.jobs.all() == []  # the client got a 500, and nothing was accepted
    fakes.executions.failure = None
    job = accept(ctx, {**EDIT, "images": [png_data_url()]})
    assert list(fakes.executions.started) == [job.id]
    assert fakes.jobs.get(job.id).status is JobStatus.QUEUED


# ---- validate: which s3:// inputs a tenant may use -----------------------------------------


def test_a_tenant_may_use_its_own_upload(ctx: Context, fakes: Fakes) -> None:
    image = upload(ctx, fakes, "tenant-a")
    valid = service.validate(ctx, Capability.EDIT, {**EDIT, "images": [image]}, tenant="tenant-a")
    assert valid.images == (S3Image(*keys.parse_s3_uri(image)),)


def test_another_tenants_upload_is_not_available(ctx: Context, fakes: Fakes) -> None:
    image = upload(ctx, fakes, "tenant-b")
    assert refusal(ctx, image)["rule"] == "not-available"


def test_missing_and_not_yours_get_the_same_answer(ctx: Context, fakes: Fakes) -> None:
    theirs = upload(ctx, fakes, "tenant-b")
    missing = theirs.replace(keys.tenant_folder("tenant-b"), keys.tenant_folder("tenant-a"))
    not_yours, absent = refusal(ctx, theirs), refusal(ctx, missing)
    assert not_yours["rule"] == absent["rule"] == "not-available"
    assert not_yours["message"].replace(theirs, "<uri>") == absent["message"].replace(
        missing, "<uri>"
    )


def test_results_of_the_tenants_own_job_are_usable_and_of_another_tenants_not(
    ctx: Context, fakes: Fakes
) -> None:
    mine, theirs = a_job("tenant-a"), a_job("tenant-b")
    for job in (mine, theirs):
        fakes.jobs.create(job)
        fakes.objects.put("out", f"results/{job.id}/0.png", tiny_png(), "image/png")
    service.validate(
        ctx,
        Capability.EDIT,
        {**EDIT, "images": [f"s3://out/results/{mine.id}/0.png"]},
        tenant="tenant-a",
    )
    assert refusal(ctx, f"s3://out/results/{theirs.id}/0.png")["rule"] == "not-available"


def test_other_buckets_and_unshared_prefixes_are_not_available(ctx: Context, fakes: Fakes) -> None:
    fakes.objects.put("in", "assets/a.png", tiny_png(), "image/png")
    assert refusal(ctx, "s3://elsewhere/a.png")["rule"] == "not-available"
    assert refusal(ctx, "s3://in/assets/a.png")["rule"] == "not-available"


def test_shared_input_prefixes_are_open_to_every_tenant() -> None:
    ctx, fakes = fake_context(shared_input_prefixes="assets/")
    fakes.objects.put("in", "assets/a.png", tiny_png(), "image/png")
    service.validate(ctx, Capability.EDIT, {**EDIT, "images": ["s3://in/assets/a.png"]}, tenant="t")


def test_a_stored_input_must_really_be_an_image(ctx: Context, fakes: Fakes) -> None:
    image = upload(ctx, fakes, "tenant-a")
    fakes.objects.put("in", keys.parse_s3_uri(image)[1], b"plain text", "image/png")
    assert refusal(ctx, image)["rule"] == "format"


def test_image_urls_on_private_addresses_are_refused(ctx: Context, fakes: Fakes) -> None:
    fakes.resolve.hosts["internal.example.com"] = ["10.0.0.5"]
    detail = refusal(ctx, "https://internal.example.com/a.png")
    assert detail["rule"] == "public-url" and "10.0.0.5" in detail["message"]


def test_a_webhook_resolving_to_a_private_address_is_refused(ctx: Context, fakes: Fakes) -> None:
    fakes.resolve.hosts["hooks.example.com"] = ["169.254.169.254"]
    with pytest.raises(InvalidRequest) as refused:
        accept(
            ctx, {**EDIT, "images": [png_data_url()], "webhook_url": "https://hooks.example.com/q"}
        )
    assert refused.value.details[-1]["field"] == "webhook_url"
    assert fakes.jobs.all() == [] and fakes.executions.start_calls == []


# ---- cancel ---------------------------------------------------------------------------------


def test_cancel_of_a_queued_job_records_stops_and_announces(ctx: Context, fakes: Fakes) -> None:
    job = accept(ctx, {**EDIT, "images": [png_data_url()]})
    canceled = service.cancel(ctx, job.id, "tenant-a")
    assert canceled.status is JobStatus.CANCELED and present(canceled.error).code == "Canceled"
    assert fakes.executions.stopped == [(job.id, "canceled by the client")]
    assert fakes.objects.json("out", f"results/{job.id}/job.json")["status"] == "canceled"
    assert fakes.events.detail_types == ["Job Canceled"]
    assert fakes.provider.canceled == []  # a sync model has no task to cancel


def test_cancel_of_a_finished_job_is_a_conflict(ctx: Context, fakes: Fakes) -> None:
    job = a_job()
    fakes.jobs.create(job)
    fakes.jobs.transition(job.id, JobStatus.FAILED, now_utc())
    with pytest.raises(JobConflict, match="failed"):
        service.cancel(ctx, job.id, "tenant-a")
    assert fakes.executions.stopped == [] and fakes.events.published == []


def test_cancel_of_another_tenants_job_is_not_found(ctx: Context, fakes: Fakes) -> None:
    job = a_job("tenant-b")
    fakes.jobs.create(job)
    with pytest.raises(JobNotFound):
        service.cancel(ctx, job.id, "tenant-a")
    assert fakes.jobs.get(job.id).status is JobStatus.QUEUED


def test_cancel_of_an_async_task_cancels_it_at_the_provider_and_frees_its_place(
    ctx: Context, fakes: Fakes
) -> None:
    job = a_job(model="qwen-image-plus", capability=Capability.TEXT_TO_IMAGE)
    fakes.jobs.create(job)
    fakes.jobs.transition(job.id, JobStatus.RUNNING, now_utc())
    fakes.jobs.update(job.id, now_utc(), provider=ProviderInfo(name="dashscope", task_id="t-9"))
    fakes.provider.cancel_error = http_error(400, "UnsupportedOperation")  # already running
    assert service.cancel(ctx, job.id, "tenant-a").status is JobStatus.CANCELED
    assert fakes.provider.canceled == ["t-9"]
    assert fakes.limits.released == [("qwen-image-plus", job.id)]


# ---- view, get, list, new_upload ------------------------------------------------------------


def test_view_presigns_outputs_and_hides_the_tenant(ctx: Context, fakes: Fakes) -> None:
    job = a_job().model_copy(update={"outputs": [JobOutput(s3_uri="s3://out/results/j/0.png")]})
    shown = lifecycle.view(ctx, job)
    assert shown["outputs"][0]["url"].startswith("https://fake-s3/out/results/j/0.png?")
    assert "tenant" not in shown and "output" not in shown


def test_a_job_of_another_tenant_does_not_exist_for_it(ctx: Context, fakes: Fakes) -> None:
    job = a_job("tenant-b")
    fakes.jobs.create(job)
    assert service.get_for_tenant(ctx, job.id, "tenant-b").id == job.id
    with pytest.raises(JobNotFound):
        service.get_for_tenant(ctx, job.id, "tenant-a")


def test_list_shows_only_the_tenants_jobs(ctx: Context, fakes: Fakes) -> None:
    mine = [a_job("tenant-a") for _ in range(2)]
    for job in [*mine, a_job("tenant-b")]:
        fakes.jobs.create(job)
    listed, cursor = service.list_jobs(ctx, "tenant-a", limit=10, cursor=None, status=None)
    assert {job.id for job in listed} == {job.id for job in mine} and cursor is None


def test_new_upload_is_a_presigned_put_in_the_tenants_own_folder(ctx: Context) -> None:
    answer = service.new_upload(ctx, "tenant-a", "image/jpeg", 1234)
    bucket, key = keys.parse_s3_uri(answer["image"])
    assert bucket == "in" and keys.is_tenant_upload(key, "tenant-a") and key.endswith(".jpg")
    assert answer["upload_url"].startswith(f"https://fake-s3/in/{key}?")
    assert answer["headers"] == {"Content-Type": "image/jpeg"}


# ---- lanes and the queue cap ----------------------------------------------------------------


def test_an_api_job_is_interactive_unless_it_asks_for_batch(ctx: Context) -> None:
    assert accept(ctx, {**EDIT, "images": [png_data_url()]}).lane == "interactive"
    batch = accept(ctx, {**EDIT, "images": [png_data_url()], "lane": "batch"})
    assert batch.lane == "batch" and batch.public()["lane"] == "batch"


def test_a_tenant_at_its_queue_cap_gets_queue_full_and_no_job() -> None:
    ctx, fakes = fake_context(max_queued_jobs_per_tenant=2)
    for _ in range(2):
        queued(fakes, tenant="tenant-a")
    before = len(fakes.jobs.all())
    with pytest.raises(QueueFull) as full:
        accept(ctx, {**EDIT, "images": [png_data_url()]})
    assert full.value.http_status == 429
    assert full.value.details == [{"limit": "queue", "retry_after_seconds": 1}]
    assert full.value.room == QueueRoom(limit=2, remaining=0, reset_seconds=1)
    assert len(fakes.jobs.all()) == before and fakes.executions.start_calls == []
    accept(ctx, {**EDIT, "images": [png_data_url()]}, tenant="tenant-b")  # others are not held


def test_accept_tells_the_room_left_once_the_job_is_in_line() -> None:
    ctx, fakes = fake_context(max_queued_jobs_per_tenant=3)
    queued(fakes, tenant="tenant-a")
    valid = service.validate(
        ctx, Capability.EDIT, {**EDIT, "images": [png_data_url()]}, tenant="tenant-a"
    )
    _job, room = service.accept(ctx, valid, tenant="tenant-a", source=JobSource.API)
    # 3 places, 1 taken by a waiting job and 1 by this one; a place frees every call interval.
    assert room == QueueRoom(limit=3, remaining=1, reset_seconds=1)
    assert service.queue_room(ctx, "tenant-a", valid.spec).remaining == 2  # not at Admit yet
