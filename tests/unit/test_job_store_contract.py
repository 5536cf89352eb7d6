"""The JobStore contract (ports.JobStore), as the DynamoDB adapter keeps it.

The assertions live in JobStoreContract and take the store from its `store` fixture, so the
moto-backed suite can run the very same ones against DynamoJobStore by subclassing it with a
fixture of its own. Here they run against FakeJobStore: the unit layer's fake must not promise
more, or less, than the real store.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import product
from typing import Any

import pytest

from qwen_edit.domain.errors import InvalidRequest, JobConflict, JobNotFound
from qwen_edit.domain.jobs import (
    ALLOWED_FROM,
    MAX_EVENTS,
    DeliveryStatus,
    Job,
    JobError,
    JobStatus,
    ProviderInfo,
    Step,
    WebhookAttempt,
    event,
    now_utc,
)
from qwen_edit.ports import JobStore

from .fakes import FakeJobStore, a_job, present

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# The shortest path from queued to each status (queued → running → succeeded, …).
PATH = {
    JobStatus.QUEUED: [],
    JobStatus.RUNNING: [JobStatus.RUNNING],
    JobStatus.SUCCEEDED: [JobStatus.RUNNING, JobStatus.SUCCEEDED],
    JobStatus.FAILED: [JobStatus.FAILED],
    JobStatus.CANCELED: [JobStatus.CANCELED],
}


def created(store: JobStore, tenant: str = "tenant-a", minute: int = 0, **fields: Any) -> Job:
    job = a_job(tenant, created_at=T0 + timedelta(minutes=minute), **fields)
    store.create(job)
    return job


def in_status(store: JobStore, status: JobStatus) -> Job:
    job = created(store)
    for step in PATH[status]:
        job = store.transition(job.id, step, now_utc())
    return job


def every_page(
    store: JobStore, tenant: str, limit: int, status: JobStatus | None = None
) -> tuple[list[Job], int]:
    jobs: list[Job] = []
    cursor: str | None = None
    pages = 0
    while True:
        page, cursor = store.list_for_tenant(tenant, limit, cursor, status)
        jobs += page
        pages += 1
        if cursor is None:
            return jobs, pages


class JobStoreContract:
    @pytest.fixture
    def store(self) -> JobStore:
        raise NotImplementedError

    def test_a_created_job_reads_back_equal(self, store: JobStore) -> None:
        job = created(store)
        assert store.get(job.id) == job

    def test_a_second_create_of_the_same_id_is_a_conflict(self, store: JobStore) -> None:
        job = created(store)
        with pytest.raises(JobConflict):
            store.create(job)

    def test_unknown_jobs_are_not_found(self, store: JobStore) -> None:
        with pytest.raises(JobNotFound):
            store.get("nope")
        with pytest.raises(JobNotFound):
            store.transition("nope", JobStatus.RUNNING, now_utc())
        with pytest.raises(JobNotFound):
            store.update("nope", now_utc(), provider=ProviderInfo(name="dashscope"))

    def test_statuses_move_only_along_allowed_from(self, store: JobStore) -> None:
        for start, to in product(PATH, ALLOWED_FROM):
            job = in_status(store, start)
            if start in ALLOWED_FROM[to]:
                error = JobError(code="C", message="m")
                assert store.transition(job.id, to, now_utc(), error=error).status is to
                assert store.get(job.id).error == error
            else:
                refusal = f"{start.value} and cannot become {to.value}"
                with pytest.raises(JobConflict, match=refusal):
                    store.transition(job.id, to, now_utc())
                assert store.get(job.id) == job

    def test_updates_set_fields_until_the_job_is_final(self, store: JobStore) -> None:
        job = in_status(store, JobStatus.RUNNING)
        info = ProviderInfo(name="dashscope", task_id="t-1")
        assert store.update(job.id, now_utc(), provider=info).provider == info
        store.transition(job.id, JobStatus.SUCCEEDED, now_utc())
        with pytest.raises(JobConflict, match="is final"):
            store.update(job.id, now_utc(), provider=ProviderInfo(name="other"))
        assert store.get(job.id).provider == info

    def test_webhook_attempts_append_and_leave_the_job_status(self, store: JobStore) -> None:
        job = created(store, webhook_url="https://hooks.example.com/q")
        store.transition(job.id, JobStatus.FAILED, now_utc())
        store.record_webhook(
            job.id, WebhookAttempt(at=now_utc(), status=500), DeliveryStatus.PENDING
        )
        store.record_webhook(
            job.id, WebhookAttempt(at=now_utc(), status=200), DeliveryStatus.DELIVERED
        )
        after = store.get(job.id)
        assert after.status is JobStatus.FAILED
        webhook = present(after.webhook)
        assert webhook.status is DeliveryStatus.DELIVERED
        assert [a.status for a in webhook.attempts] == [500, 200]

    def test_a_delivery_status_may_be_set_without_an_attempt(self, store: JobStore) -> None:
        job = created(store, webhook_url="https://hooks.example.com/q")
        store.record_webhook(job.id, None, DeliveryStatus.SKIPPED)
        webhook = present(store.get(job.id).webhook)
        assert webhook.status is DeliveryStatus.SKIPPED and webhook.attempts == []

    def test_webhook_event_claims_only_go_forward_and_stop_at_the_final_delivery(
        self, store: JobStore
    ) -> None:
        job = created(store, webhook_url="https://hooks.example.com/q")
        assert store.claim_webhook_event(job.id, 1)
        assert store.claim_webhook_event(job.id, 1)  # its own retry
        assert store.claim_webhook_event(job.id, 2)
        assert not store.claim_webhook_event(job.id, 1)  # older than one sent: dropped
        assert store.get(job.id).webhook_sequence == 2
        store.transition(job.id, JobStatus.CANCELED, now_utc())
        store.record_webhook(
            job.id, WebhookAttempt(at=now_utc(), status=200), DeliveryStatus.DELIVERED
        )
        assert not store.claim_webhook_event(job.id, 2)  # the final event had an attempt
        assert not store.claim_webhook_event(created(store).id, 1)  # no webhook at all

    def test_notes_append_to_the_timeline_up_to_its_bound_then_count(self, store: JobStore) -> None:
        job = created(store)
        store.transition(job.id, JobStatus.CANCELED, now_utc())  # final jobs take notes too
        store.note(job.id, event(Step.ADMITTED), provider_calls=1, polls=1)
        store.note(job.id, provider_calls=2)
        for _ in range(MAX_EVENTS + 3):
            store.note(job.id, event(Step.RETRIED, "ProviderBusy"))
        after = store.get(job.id)
        assert [e.step for e in after.events[:3]] == [Step.QUEUED, Step.ADMITTED, Step.RETRIED]
        assert len(after.events) == MAX_EVENTS
        assert after.events_dropped == 5  # 1 queued + 1 admitted + 27 retries, 24 kept
        assert (after.provider_calls, after.polls) == (3, 1)
        assert after.status is JobStatus.CANCELED
        store.note(job.id, event(Step.NOTIFIED), "SUCCEEDED")  # how it ended always has room
        ended = store.get(job.id)
        assert ended.events[-1].step is Step.NOTIFIED and ended.events_dropped == 5
        assert ended.provider_status == "SUCCEEDED"
        with pytest.raises(JobNotFound):
            store.note("no-such-job", event(Step.ADMITTED))
        with pytest.raises(JobNotFound):
            store.note("no-such-job", polls=1)

    def test_unfinished_jobs_come_oldest_first_by_status_until_final(self, store: JobStore) -> None:
        jobs = [created(store, f"tenant-{m % 2}", minute=m) for m in range(5)]
        store.transition(jobs[1].id, JobStatus.RUNNING, now_utc())
        store.transition(jobs[3].id, JobStatus.CANCELED, now_utc())

        def ids(status: JobStatus) -> list[str]:
            return [job.job_id for job in store.unfinished(status)]

        assert ids(JobStatus.QUEUED) == [jobs[0].id, jobs[2].id, jobs[4].id]  # not 3: final
        assert next(store.unfinished(JobStatus.QUEUED)).created_at == jobs[0].created_at
        assert ids(JobStatus.RUNNING) == [jobs[1].id]
        store.transition(jobs[1].id, JobStatus.SUCCEEDED, now_utc())
        assert ids(JobStatus.RUNNING) == []

    def test_a_tenant_lists_its_own_jobs_newest_first_across_pages(self, store: JobStore) -> None:
        mine = [created(store, "tenant-a", minute) for minute in range(5)]
        created(store, "tenant-b", 10)
        listed, pages = every_page(store, "tenant-a", limit=2)
        assert [job.id for job in listed] == [job.id for job in reversed(mine)]
        assert pages >= 3

    def test_another_tenant_sees_none_of_them(self, store: JobStore) -> None:
        created(store, "tenant-a")
        assert store.list_for_tenant("tenant-b", 10, None, None) == ([], None)

    def test_the_status_filter_keeps_paging(self, store: JobStore) -> None:
        jobs = [created(store, "tenant-a", minute) for minute in range(4)]
        for job in jobs[::2]:
            store.transition(job.id, JobStatus.CANCELED, now_utc())
        listed, _ = every_page(store, "tenant-a", limit=1, status=JobStatus.CANCELED)
        assert [job.id for job in listed] == [jobs[2].id, jobs[0].id]

    def test_a_cursor_this_store_did_not_give_out_is_invalid(self, store: JobStore) -> None:
        created(store, "tenant-a")
        for cursor in ("garbage", "e30=", "bm90IGpzb24=", "eyJpZCI6IHsiUyI6ICJ4In19"):
            with pytest.raises(InvalidRequest):
                store.list_for_tenant("tenant-a", 10, cursor, None)

    def test_another_tenants_cursor_is_invalid(self, store: JobStore) -> None:
        for minute in range(3):
            created(store, "tenant-a", minute)
        _, cursor = store.list_for_tenant("tenant-a", 1, None, None)
        assert cursor is not None
        with pytest.raises(InvalidRequest):
            store.list_for_tenant("tenant-b", 1, cursor, None)

    def test_created_in_yields_the_tenants_jobs_of_the_range_oldest_first(
        self, store: JobStore
    ) -> None:
        jobs = [created(store, "tenant-a", minute) for minute in range(6)]
        created(store, "tenant-b", 2)
        start, end = T0 + timedelta(minutes=1), T0 + timedelta(minutes=4)
        found = store.created_in("tenant-a", start, end)
        assert [job.id for job in found] == [job.id for job in jobs[1:4]]  # [start, end)
        one_later = start + timedelta(microseconds=1)
        assert [job.id for job in store.created_in("tenant-a", one_later, end)] == [
            job.id for job in jobs[2:4]
        ]
        assert list(store.created_in("tenant-c", T0, end)) == []


class TestFakeJobStore(JobStoreContract):
    @pytest.fixture
    def store(self) -> JobStore:
        return FakeJobStore()

    def test_reads_are_copies(self, store: JobStore) -> None:
        job = created(store)
        store.get(job.id).request["images"].append("s3://in/more.png")
        assert store.get(job.id) == job
