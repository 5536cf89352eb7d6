"""The pool of provider keys: each key paced as its own bucket, calls on the earliest slot, a
rate-quota 429 slowing only its key, dead keys out of the pool (the dead-key drill), a tenant's
own key, and a single-key deployment as before."""

from __future__ import annotations

import pytest

from qwen_edit.app import workflow
from qwen_edit.app.workflow import WorkflowState
from qwen_edit.domain import admission
from qwen_edit.domain.catalog import Capability, Provider, RateLimit
from qwen_edit.domain.dispatch import Answer, QueueEntry, Schedule, line
from qwen_edit.domain.errors import JobFailed, failure_of
from qwen_edit.domain.jobs import Job, JobStatus, Lane, ProviderInfo, now_utc
from qwen_edit.domain.provider import Region
from qwen_edit.domain.provider_keys import DEFAULT_KEY_ID, PoolKey, bucket, rejects_the_key

from .fakes import Fakes, ScriptedProvider, fake_context, http_error, present, queued, run

TWO_PER_MINUTE = RateLimit(2, 60)


def entry(job_id: str, tenant: str = "t", at: float = 0.0, lane: Lane = Lane.INTERACTIVE):
    return QueueEntry(
        job_id=job_id, tenant=tenant, family="fam", lane=lane, enqueued_at=at, deadline_at=1e12
    )


def pool(*ids: str) -> list[PoolKey]:
    every = frozenset(Provider)
    return [PoolKey(id=i, providers=every, region=Region.SINGAPORE) for i in ids]


def two_keys(**overrides: object) -> tuple[object, Fakes]:
    ctx, fakes = fake_context(pool=pool(DEFAULT_KEY_ID, "k2"), **overrides)
    fakes.providers["k2"] = ScriptedProvider()
    return ctx, fakes


def failure(fakes: Fakes, job: Job) -> tuple[str, str, str]:
    error, cause = fakes.callbacks.failed[f"token-{job.id}"]
    return (error, *failure_of(error, cause))


# ---- the schedule ---------------------------------------------------------------------------


def test_each_call_goes_to_the_key_whose_next_slot_is_earliest() -> None:
    schedule = Schedule()
    waiting = [entry(f"j{i}", at=i) for i in range(6)]
    first = schedule.book("fam", TWO_PER_MINUTE, waiting, 100.0, 0.0, ["a", "b"])
    # Each key's first slot is free now: one call each (then each key's next is 30 s on).
    assert [(b.entry.job_id, b.key, b.at) for b in first] == [
        ("j0", "a", 100.0),
        ("j1", "b", 100.0),
    ]
    schedule.clock("fam", "b").calls.append(110.0)  # b booked later elsewhere: a is earlier
    rest = [e for e in waiting if e.job_id not in {"j0", "j1"}]
    later = schedule.book("fam", TWO_PER_MINUTE, rest, 130.1, 0.0, ["a", "b"])
    assert [(b.entry.job_id, b.key) for b in later] == [("j2", "a")]


def test_two_keys_double_the_rate_and_keep_each_key_within_its_limit() -> None:
    schedule, now, booked = Schedule(), 0.0, []
    waiting = [entry(f"j{i}", at=i) for i in range(20)]
    while waiting:
        planned = schedule.book("fam", TWO_PER_MINUTE, waiting, now, 0.0, ["a", "b"])
        booked += planned
        waiting = [e for e in waiting if e not in {b.entry for b in planned}]
        now = schedule.earliest("fam", TWO_PER_MINUTE, now, ["a", "b"])[0]
    window = admission.spacing(TWO_PER_MINUTE)
    for key in ("a", "b"):
        times = sorted(b.at for b in booked if b.key == key)
        assert len(times) == 10
        assert all(
            later - earlier >= window - 1e-9
            for earlier, later in zip(times, times[2:], strict=False)
        )
    assert max(b.at for b in booked) < 5 * window  # one key alone needs 9.5 windows


def test_the_line_is_the_same_whatever_the_keys() -> None:
    waiting = [entry(f"{t}{i}", tenant=t, at=i) for i in range(4) for t in "xyz"]
    waiting.append(entry("batch", tenant="w", lane=Lane.BATCH, at=0))
    schedule = Schedule()
    booked = schedule.book("fam", RateLimit(2, 1), waiting, 0.0, 600.0, ["a", "b", "c"])
    assert [b.entry.job_id for b in booked] == [e.job_id for e in line(waiting)]
    assert {b.key for b in booked} == {"a", "b", "c"}


def test_a_rate_quota_429_slows_only_the_key_that_got_it() -> None:
    schedule = Schedule()
    schedule.answered("fam", TWO_PER_MINUTE, Answer.RATE_QUOTA_429, 10.0, 11.0, key="b")
    assert schedule.clock("fam", "b").pace.base == pytest.approx(admission.DECREASE)
    assert schedule.clock("fam", "a").pace.base == 1.0
    assert schedule.clock("fam").pace.base == 1.0  # the default key's bucket too
    a, b = (schedule.next_at("fam", TWO_PER_MINUTE, 12.0, k) for k in "ab")
    assert a == b == 12.0  # nothing booked yet: the pace shows at the next call's distance
    schedule.clock("fam", "a").calls.append(12.0)
    schedule.clock("fam", "b").calls.append(12.0)
    assert schedule.next_at("fam", TWO_PER_MINUTE, 12.0, "b") > schedule.next_at(
        "fam", TWO_PER_MINUTE, 12.0, "a"
    )


def test_the_default_keys_bucket_keeps_the_family_name_so_old_lease_state_carries_over() -> None:
    assert bucket(DEFAULT_KEY_ID, "fam") == "fam" and bucket("k2", "fam") == "k2/fam"
    schedule = Schedule(calls={"fam": [1.0], "k2/fam": [2.0]})
    assert schedule.clock("fam").calls == [1.0] and schedule.clock("fam", "k2").calls == [2.0]


@pytest.mark.parametrize(
    ("status", "code", "dead"),
    [
        (401, "InvalidApiKey", True),
        (403, "AccessDenied", True),
        (403, "AccessDenied.Unpurchased", True),
        (400, "InvalidParameter", False),
        (429, "Throttling.RateQuota", False),
    ],
)
def test_which_answers_kill_a_key(status: int, code: str, dead: bool) -> None:
    error = http_error(status, code)
    assert rejects_the_key(error) is dead
    assert (Answer.of(error) is Answer.KEY_REFUSED) is dead


# ---- the dispatcher -------------------------------------------------------------------------


def test_a_single_key_deployment_calls_as_before_and_records_the_default_key() -> None:
    ctx, fakes = fake_context()
    job = queued(fakes)
    run(ctx)
    info = present(fakes.jobs.get(job.id).provider)
    assert (info.key_id, info.region) == (DEFAULT_KEY_ID, "singapore")
    assert set(fakes.dispatch_lease.calls) == {"qwen-image-edit-plus"}  # the old state's shape
    assert fakes.provider_keys_used == [DEFAULT_KEY_ID]


def test_jobs_spread_over_the_keys_and_each_records_its_key() -> None:
    ctx, fakes = two_keys()
    jobs = [queued(fakes, tenant=f"t{i}") for i in range(4)]
    run(ctx)
    keys = [present(fakes.jobs.get(job.id).provider).key_id for job in jobs]
    assert sorted(keys) == ["default", "default", "k2", "k2"]
    assert (fakes.provider.calls, fakes.providers["k2"].calls) == (2, 2)
    assert set(fakes.dispatch_lease.calls) == {"qwen-image-edit-plus", "k2/qwen-image-edit-plus"}


def test_dead_key_drill_the_job_that_got_the_401_moves_to_the_other_key() -> None:
    ctx, fakes = two_keys()
    fakes.providers["k2"].submits.append(http_error(401, "InvalidApiKey", "Invalid API-key"))
    jobs = [queued(fakes, tenant=f"t{i}") for i in range(6)]
    run(ctx)
    assert all(f"token-{job.id}" in fakes.callbacks.succeeded for job in jobs)  # 0 lost
    assert fakes.providers["k2"].calls == 1  # nothing more went to the dead key
    assert fakes.provider.calls == 6  # the other key carried every job
    assert fakes.key_health.out == {"k2": "InvalidApiKey"}
    assert fakes.metrics.named("ProviderKeyDead") == [(1, {})]  # one alarm data point
    assert {present(fakes.jobs.get(j.id).provider).key_id for j in jobs} == {DEFAULT_KEY_ID}
    assert ("key-refused", "InvalidApiKey") in {
        tuple(str(e.detail).split(": ")) for j in jobs for e in fakes.jobs.get(j.id).events
    }


def test_a_key_another_function_took_out_is_never_called() -> None:
    ctx, fakes = two_keys()
    fakes.key_health.mark_dead("k2", "InvalidApiKey", 0.0)
    jobs = [queued(fakes, tenant=f"t{i}") for i in range(3)]
    run(ctx)
    assert fakes.providers["k2"].calls == 0 and fakes.provider.calls == 3
    assert all(f"token-{job.id}" in fakes.callbacks.succeeded for job in jobs)


def test_with_no_live_key_left_jobs_fail_saying_so() -> None:
    ctx, fakes = fake_context()
    fakes.provider.submits.append(http_error(403, "AccessDenied", "denied"))
    jobs = [queued(fakes, tenant=f"t{i}") for i in range(3)]
    run(ctx)
    assert fakes.provider.calls == 1
    for job in jobs:
        error, code, message = failure(fakes, job)
        assert (error, code) == ("JobFailed", "NoProviderKey") and "401/403" in message
    assert fakes.queue.items == {}


def test_a_tenants_own_key_serves_its_jobs_only_and_only_it_does() -> None:
    ctx, fakes = fake_context(pool=pool(DEFAULT_KEY_ID, "mine"))
    fakes.providers["mine"] = ScriptedProvider()
    fakes.tenant_keys.by_tenant["owner"] = "mine"
    own = [queued(fakes, tenant="owner") for _ in range(3)]
    others = [queued(fakes, tenant=f"t{i}") for i in range(3)]
    run(ctx)
    assert {present(fakes.jobs.get(j.id).provider).key_id for j in own} == {"mine"}
    assert {present(fakes.jobs.get(j.id).provider).key_id for j in others} == {DEFAULT_KEY_ID}
    assert (fakes.providers["mine"].calls, fakes.provider.calls) == (3, 3)


def test_a_tenant_whose_own_key_is_dead_fails_and_never_borrows_a_shared_key() -> None:
    ctx, fakes = fake_context(pool=pool(DEFAULT_KEY_ID, "mine"))
    fakes.providers["mine"] = ScriptedProvider()
    fakes.tenant_keys.by_tenant["owner"] = "mine"
    fakes.key_health.mark_dead("mine", "InvalidApiKey", 0.0)
    job, other = queued(fakes, tenant="owner"), queued(fakes, tenant="t")
    run(ctx)
    assert failure(fakes, job)[1] == "NoProviderKey"
    assert fakes.providers["mine"].calls == 0 and fakes.provider.calls == 1
    assert f"token-{other.id}" in fakes.callbacks.succeeded


def test_a_reserved_key_is_not_shared_even_while_its_tenant_has_nothing_queued() -> None:
    ctx, fakes = fake_context(pool=pool(DEFAULT_KEY_ID, "mine"))
    fakes.providers["mine"] = ScriptedProvider()
    fakes.tenant_keys.by_tenant["owner"] = "mine"
    for i in range(4):
        queued(fakes, tenant=f"t{i}")
    run(ctx)
    assert fakes.providers["mine"].calls == 0 and fakes.provider.calls == 4


# ---- poll, store and cancel: the key that made the task -------------------------------------


def async_job_on(ctx: object, fakes: Fakes, key: str) -> Job:
    job = queued(fakes, model="qwen-image-plus", capability=Capability.TEXT_TO_IMAGE)
    info = ProviderInfo(name="dashscope", task_id="task-9", key_id=key)
    fakes.jobs.transition(job.id, JobStatus.RUNNING, now_utc(), provider=info)
    return job


def test_a_task_is_polled_with_the_key_that_created_it() -> None:
    ctx, fakes = two_keys()
    job = async_job_on(ctx, fakes, "k2")
    workflow.poll(ctx, WorkflowState(job_id=job.id, submission={"task_id": "task-9"}))
    assert fakes.providers["k2"].fetched == ["task-9"] and fakes.provider.fetched == []


def test_a_task_of_a_dead_key_fails_without_a_call_and_a_401_on_a_poll_kills_the_key() -> None:
    ctx, fakes = two_keys()
    job = async_job_on(ctx, fakes, "k2")
    state = WorkflowState(job_id=job.id, submission={"task_id": "task-9"})
    fakes.providers["k2"].fetches.append(http_error(401, "InvalidApiKey"))
    with pytest.raises(JobFailed):
        workflow.poll(ctx, state)
    assert fakes.key_health.out == {"k2": "InvalidApiKey"}
    with pytest.raises(JobFailed) as failed:
        workflow.poll(ctx, state)
    assert failed.value.code == "ProviderKeyDead" and len(fakes.providers["k2"].fetched) == 1
    assert len(fakes.metrics.named("ProviderKeyDead")) == 1
