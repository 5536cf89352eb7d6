"""The job record in DynamoDB: it never moves backwards, never completes twice, and concurrent
updates of different fields do not lose each other (conditional, field-level writes)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from qwen_edit.adapters.dynamodb import RECORD_RETENTION, DynamoJobStore
from qwen_edit.domain.catalog import Capability
from qwen_edit.domain.errors import JobConflict, JobNotFound
from qwen_edit.domain.jobs import (
    JobError,
    JobOutput,
    JobSource,
    JobStatus,
    OutputTarget,
    ProviderInfo,
    new_job,
    now_utc,
)
from qwen_edit.domain.provider import Usage

from unit.test_job_store_contract import T0, JobStoreContract, created


@pytest.fixture
def store(tables):
    return DynamoJobStore("JobsTable", tables)


class TestDynamoJobStore(JobStoreContract):
    """The unit layer's JobStore contract, kept by the real adapter."""

    @pytest.fixture
    def store(self, tables):
        return DynamoJobStore("JobsTable", tables)


def test_created_in_reads_page_after_page_as_its_jobs_are_taken(store, monkeypatch):
    monkeypatch.setattr(store, "PAGE_SIZE", 2)
    jobs = [created(store, "tenant-a", minute) for minute in range(5)]
    queries = []
    monkeypatch.setattr(store.client, "query", _counting(store.client.query, queries))
    found = store.created_in("tenant-a", T0, T0 + timedelta(hours=1))
    assert [next(found).id for _ in range(3)] == [job.id for job in jobs[:3]]
    assert len(queries) == 2  # a third page only when the fourth job is taken
    assert [job.id for job in found] == [job.id for job in jobs[3:]]
    assert len(queries) == 3


def _counting(query, queries):
    def counted(**kwargs):
        queries.append(kwargs)
        return query(**kwargs)

    return counted


def a_job(**overrides):
    fields = dict(
        tenant="tenant-a",
        capability=Capability.EDIT,
        model="qwen-image-edit-plus",
        source=JobSource.API,
        deadline_seconds=600,
        request={"prompt": "x", "n": 2, "seed": 7, "images": ["s3://in/a.png"]},
        metadata={"order": "A-17"},
    )
    return new_job(**{**fields, **overrides})


def test_round_trip_keeps_every_field(store, tables):
    job = a_job()
    store.create(job)
    assert store.get(job.id) == job
    item = tables.get_item(TableName="JobsTable", Key={"id": {"S": job.id}})["Item"]
    expected_ttl = int((job.created_at + RECORD_RETENTION).timestamp())
    assert item["expires_at"] == {"N": str(expected_ttl)}


def test_ids_sort_by_creation_and_are_valid_execution_names():
    first, second = a_job(), a_job()
    assert first.id < second.id or first.id[:12] == second.id[:12]
    assert len(first.id) <= 80 and first.id.replace("-", "").isalnum()


def test_create_twice_is_a_conflict(store):
    job = a_job()
    store.create(job)
    with pytest.raises(JobConflict):
        store.create(job)


def test_unknown_jobs(store):
    with pytest.raises(JobNotFound):
        store.get("nope")
    with pytest.raises(JobNotFound):
        store.transition("nope", JobStatus.RUNNING, now_utc())


def test_forward_moves_only(store):
    job = a_job()
    store.create(job)
    running = store.transition(job.id, JobStatus.RUNNING, now_utc())
    assert running.status is JobStatus.RUNNING
    with pytest.raises(JobConflict, match="running and cannot become running"):
        store.transition(job.id, JobStatus.RUNNING, now_utc())
    done = store.transition(
        job.id,
        JobStatus.SUCCEEDED,
        now_utc(),
        usage=Usage(image_count=2),
        outputs=[JobOutput(s3_uri="s3://out/0.png", width=1, height=1)],
        completed_at=now_utc(),
    )
    assert done.outputs[0].s3_uri == "s3://out/0.png" and done.usage.image_count == 2
    for status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.RUNNING):
        with pytest.raises(JobConflict, match="succeeded"):
            store.transition(job.id, status, now_utc())
    assert store.get(job.id) == done


def test_a_queued_job_may_fail_or_be_canceled_but_not_succeed(store):
    job = a_job()
    store.create(job)
    with pytest.raises(JobConflict):
        store.transition(job.id, JobStatus.SUCCEEDED, now_utc())
    canceled = store.transition(
        job.id,
        JobStatus.CANCELED,
        now_utc(),
        error=JobError(code="Canceled", message="by the client"),
    )
    assert canceled.error.code == "Canceled"


def test_final_jobs_take_no_updates(store):
    job = a_job()
    store.create(job)
    store.transition(job.id, JobStatus.FAILED, now_utc())
    with pytest.raises(JobConflict, match="is final"):
        store.update(job.id, now_utc(), provider=ProviderInfo(name="dashscope"))


def test_concurrent_updates_of_different_fields_both_land(store):
    job = a_job()
    store.create(job)
    barrier = threading.Barrier(2)

    def set_provider():
        barrier.wait()
        store.update(job.id, now_utc(), provider=ProviderInfo(name="dashscope", task_id="t-1"))

    def start_running():
        barrier.wait()
        store.transition(job.id, JobStatus.RUNNING, now_utc())

    threads = [threading.Thread(target=set_provider), threading.Thread(target=start_running)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = store.get(job.id)
    assert stored.status is JobStatus.RUNNING and stored.provider.task_id == "t-1"


def test_output_targets():
    api = OutputTarget(prefix="results/j1/")
    assert [api.image_key(i, 2) for i in range(2)] == ["results/j1/0.png", "results/j1/1.png"]
    assert api.record_key == "results/j1/job.json"
    upload = OutputTarget(prefix="outbox/portrait/2026/", stem="ana")
    assert upload.image_key(0, 1) == "outbox/portrait/2026/ana.png"
    assert [upload.image_key(i, 2) for i in range(2)] == [
        "outbox/portrait/2026/ana-1.png",
        "outbox/portrait/2026/ana-2.png",
    ]
    assert upload.record_key == "outbox/portrait/2026/ana.json"


def test_public_view_hides_internal_fields():
    view = a_job().public()
    assert {"tenant", "output", "deadline_at"}.isdisjoint(view)
    assert view["status"] == "queued" and view["metadata"] == {"order": "A-17"}
