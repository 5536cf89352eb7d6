"""Pacing and the dispatcher's state: the Schedule keeps every window within the limit, in
fair order; the DynamoDB queue claims an entry once; the lease fences a stale holder; leases
cap async tasks and expire."""

from __future__ import annotations

import pytest

from qwen_edit.adapters.dynamodb import DynamoLimitStore
from qwen_edit.adapters.queue import DynamoDispatchLease, DynamoJobQueue
from qwen_edit.domain import admission
from qwen_edit.domain.catalog import RateLimit
from qwen_edit.domain.dispatch import Answer, QueueEntry, Schedule
from qwen_edit.domain.jobs import Lane

TWO_PER_SECOND = RateLimit(2, 1)
WINDOW = admission.spacing(TWO_PER_SECOND)


def most_in_any_window(times: list[float], seconds: float) -> int:
    times = sorted(times)
    return max(sum(1 for t in times if start <= t < start + seconds) for start in times)


def entry(job_id: str, tenant: str = "t", lane: Lane = Lane.INTERACTIVE, at: float = 0.0):
    return QueueEntry(
        job_id=job_id, tenant=tenant, family="fam", lane=lane, enqueued_at=at, deadline_at=1e12
    )


def test_the_schedule_spaces_a_burst_at_the_limit():
    schedule = Schedule()
    waiting = [entry(f"j{i}", at=i) for i in range(10)]
    booked, now = [], 100.0
    while waiting:
        planned = schedule.plan("fam", TWO_PER_SECOND, waiting, now, lead=0.0)
        booked += [at for _, at in planned]
        waiting = [e for e in waiting if e not in {p for p, _ in planned}]
        now = schedule.next_at("fam", TWO_PER_SECOND, now)
    # Evenly spread: one call every half window, so never more than two in any window.
    assert booked[:3] == pytest.approx([100.0, 100.0 + WINDOW / 2, 100.0 + WINDOW])
    assert booked == sorted(booked) and most_in_any_window(booked, WINDOW) == 2


def test_the_schedule_books_ahead_only_within_the_lead():
    schedule = Schedule(calls={"fam": [100.0, 100.0]})
    waiting = [entry("a"), entry("b")]
    assert schedule.plan("fam", TWO_PER_SECOND, waiting, 100.5, lead=0.3) == []
    planned = schedule.plan("fam", TWO_PER_SECOND, waiting, 100.8, lead=0.3)
    assert [(e.job_id, at) for e, at in planned] == [("a", pytest.approx(100.0 + WINDOW))]


def test_a_new_holder_takes_the_last_ones_calls_as_later_than_its_clock_said():
    schedule = Schedule(calls={"fam": [10.0, 10.0]}, guard=0.5)
    assert schedule.next_at("fam", TWO_PER_SECOND, 10.2) == pytest.approx(10.5 + WINDOW)
    assert schedule.next_at("other", TWO_PER_SECOND, 10.2) == 10.2


def test_an_outage_pauses_the_family_and_chance_failures_do_not():
    schedule = Schedule()
    for _ in range(admission.OUTAGE_AFTER - 1):
        schedule.answered("fam", TWO_PER_SECOND, Answer.SERVER_5XX, 10.0, 10.0)
    assert schedule.next_at("fam", TWO_PER_SECOND, 10.0) == 10.0
    schedule.answered("fam", TWO_PER_SECOND, Answer.OK, 10.0, 10.0)
    for _ in range(admission.OUTAGE_AFTER + 2):
        schedule.answered("fam", TWO_PER_SECOND, Answer.BUSY_429, 10.0, 10.0)
    assert schedule.next_at("fam", TWO_PER_SECOND, 10.0) == 14.0
    assert admission.outage_pause(50) == admission.OUTAGE_PAUSE_CAP_SECONDS


def test_a_rate_quota_429_to_the_schedule_slows_its_family():
    schedule = Schedule()
    schedule.answered("fam", TWO_PER_SECOND, Answer.RATE_QUOTA_429, 10.0, 10.1)
    assert schedule.clock("fam").pace.base == pytest.approx(admission.DECREASE)
    assert schedule.clock("fam").failures_in_a_row == 0


def test_next_call_is_when_the_log_frees_and_books_nothing():
    assert admission.next_call([], TWO_PER_SECOND, 5.0) == 5.0
    assert admission.next_call([5.0], TWO_PER_SECOND, 5.0) == pytest.approx(5.0 + WINDOW / 2)
    calls = [10.0, 10.1]
    assert admission.next_call(calls, TWO_PER_SECOND, 10.2) == pytest.approx(10.0 + WINDOW)
    assert admission.next_call(calls, TWO_PER_SECOND, 20.0) == 20.0


def test_the_margin_is_added_once_per_window_not_as_a_share():
    per_minute = RateLimit(2, 60)
    assert admission.spacing(per_minute) == pytest.approx(60 + admission.DEFAULT_MARGIN_SECONDS)


def test_a_rate_quota_429_slows_the_pace_once_and_it_recovers_with_time():
    limit = RateLimit(2, 60)
    pace = admission.Pace()
    slowed = pace.slowed(limit, sent_at=100.0, now=101.0)
    assert slowed.share(limit, 101.0) == pytest.approx(admission.DECREASE)
    # 429s to calls sent before the slowdown tell nothing new; one sent after does.
    assert slowed.slowed(limit, sent_at=99.0, now=102.0) is slowed
    assert slowed.slowed(limit, sent_at=101.5, now=110.0).base < slowed.base
    # Back to the full rate after (1 - DECREASE) / RECOVERY windows of time, never above it.
    windows = (1 - admission.DECREASE) / admission.RECOVERY
    assert slowed.share(limit, 101.0 + windows * 60) == pytest.approx(1.0)
    assert slowed.share(limit, 101.0 + 10 * windows * 60) == 1.0
    # A slower pace spreads calls wider.
    at = admission.next_call([100.0, 100.0], limit, 101.0, pace=slowed)
    assert at == pytest.approx(100 + 60 / admission.DECREASE + admission.DEFAULT_MARGIN_SECONDS)


def test_the_pace_never_drops_below_its_floor():
    limit, pace = TWO_PER_SECOND, admission.Pace()
    for second in range(1, 60):
        pace = pace.slowed(limit, sent_at=second - 0.5, now=float(second))
    assert pace.share(limit, 59.0) >= admission.MIN_SHARE


@pytest.fixture
def limits(tables):
    return DynamoLimitStore("LimitsTable", tables)


@pytest.fixture
def queue(tables):
    return DynamoJobQueue("QueueTable", tables)


@pytest.fixture
def lease(tables):
    return DynamoDispatchLease("LimitsTable", tables)


def test_the_queue_keeps_a_place_and_claims_it_once(queue):
    first = entry("j1", tenant="a", at=5.0)
    queue.put(first, "token-1")
    queue.put(first.model_copy(update={"enqueued_at": 9.0}), "token-2")  # Admit run again
    [seen] = queue.entries()
    assert seen == first  # its place kept, no token shown
    assert queue.claim(seen, 7, 10.0) == "token-2"
    assert queue.claim(seen, 8, 10.0) is None  # claimed once
    [claimed] = queue.entries()
    assert (claimed.claimed_by, claimed.claimed_at) == (7, 10.0)
    assert queue.claim(claimed, 8, 11.0) == "token-2"  # a stale claim, taken over as seen
    queue.requeue(claimed, calls=1)
    [back] = queue.entries()
    assert (back.calls, back.claimed, back.enqueued_at) == (1, False, 5.0)


def test_the_queue_counts_a_tenants_jobs_and_forgets_removed_ones(queue):
    for job_id, tenant in (("j1", "a"), ("j2", "a"), ("j3", "ab")):
        queue.put(entry(job_id, tenant=tenant), "t")
    assert (queue.count("a"), queue.count("ab"), queue.count("b")) == (2, 1, 0)
    queue.remove("a", "j1")
    queue.remove("a", "j1")  # twice is harmless
    queue.requeue(entry("j1", tenant="a"), calls=3)  # and it does not come back
    assert sorted(e.job_id for e in queue.entries()) == ["j2", "j3"]


def test_a_remove_with_a_token_leaves_a_later_steps_entry(queue):
    queue.put(entry("j1"), "token-step-0")
    queue.put(entry("j1"), "token-step-1")  # the next step's Admit, same key
    queue.remove("t", "j1", "token-step-0")  # a late dispatcher, done with step 0
    assert [e.job_id for e in queue.entries()] == ["j1"]
    queue.remove("t", "j1", "token-step-1")
    queue.remove("t", "j1", "token-step-1")  # gone: harmless
    assert queue.entries() == []


def test_the_lease_has_one_holder_and_fences_the_stale_one(lease):
    first = lease.acquire("one", now=0.0, until=30.0)
    assert first is not None and first.calls == {} and lease.held(1.0)
    assert lease.acquire("two", now=10.0, until=40.0) is None
    assert lease.record(first.token, "fam", [1.0, 2.0], admission.Pace(0.8, 1.5))
    second = lease.acquire("two", now=31.0, until=61.0)  # the first stopped renewing
    assert second is not None and second.token > first.token
    assert second.calls == {"fam": [1.0, 2.0]} and second.paces["fam"].base == 0.8
    assert not lease.renew(first.token, 70.0) and not lease.record(
        first.token, "fam", [], admission.Pace()
    )
    lease.release(first.token)  # a stale release frees nothing
    assert lease.held(32.0)
    lease.release(second.token)
    assert not lease.held(32.0)


def test_leases_cap_holders_and_expire(limits):
    assert limits.acquire_lease("qwen-image", "a", 2, until=100.0, now=0.0)
    assert limits.acquire_lease("qwen-image", "b", 2, until=100.0, now=0.0)
    assert not limits.acquire_lease("qwen-image", "c", 2, until=100.0, now=1.0)
    assert limits.acquire_lease("qwen-image", "a", 2, until=100.0, now=1.0)  # held again
    limits.release_lease("qwen-image", "a")
    assert limits.acquire_lease("qwen-image", "c", 2, until=100.0, now=2.0)
    assert not limits.acquire_lease("qwen-image", "d", 2, until=300.0, now=50.0)
    assert limits.acquire_lease("qwen-image", "d", 2, until=300.0, now=150.0)  # b, c expired


def test_releases_bump_the_version_so_a_stale_acquire_cannot_resurrect_a_lease(limits, tables):
    limits.acquire_lease("fam", "a", 2, until=100.0, now=0.0)

    def version():
        item = tables.get_item(TableName="LimitsTable", Key={"pk": {"S": "LEASES#fam"}})["Item"]
        return int(item["version"]["N"])

    before = version()
    limits.release_lease("fam", "a")
    assert version() == before + 1
    limits.release_lease("fam", "a")  # releasing twice changes nothing
    assert version() == before + 1


def test_a_call_booked_behind_one_that_left_late_waits_to_keep_its_distance():
    schedule = Schedule()
    waiting = [entry("a"), entry("b")]
    planned = schedule.plan("fam", TWO_PER_SECOND, waiting, 100.0, lead=0.6)
    [(_, first), (_, second)] = planned
    assert second == pytest.approx(first + WINDOW / 2)
    assert schedule.clear_to_send("fam", TWO_PER_SECOND, first, first + 0.3) == 0  # late
    wait = schedule.clear_to_send("fam", TWO_PER_SECOND, second, second)
    assert wait == pytest.approx(0.3)  # half a window after the real send, not the booking
    assert schedule.clear_to_send("fam", TWO_PER_SECOND, second, second + wait) == 0
