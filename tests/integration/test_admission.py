"""Admission control: reservations and call claims keep every window within the limit;
leases cap async tasks and expire; the DynamoDB state survives concurrent writers."""

from __future__ import annotations

import random
import threading

import pytest
from botocore.exceptions import ClientError

from qwen_edit.adapters.dynamodb import DynamoLimitStore
from qwen_edit.domain import admission
from qwen_edit.domain.catalog import RateLimit

TWO_PER_SECOND = RateLimit(2, 1)
WINDOW = admission.spacing(TWO_PER_SECOND)


def most_in_any_window(times: list[float], seconds: float) -> int:
    times = sorted(times)
    return max(sum(1 for t in times if start <= t < start + seconds) for start in times)


def test_reservations_space_a_burst_at_the_limit():
    recent: list[float] = []
    slots = []
    for _ in range(10):
        slot, recent = admission.reserve(recent, TWO_PER_SECOND, now=100.0)
        slots.append(slot)
    assert slots[:2] == [100.0, 100.0]
    assert slots[2] == pytest.approx(100.0 + WINDOW)
    assert slots == sorted(slots)
    assert most_in_any_window(slots, WINDOW) == 2


def test_reservations_at_random_times_never_overfill_a_window():
    rng = random.Random(4)
    recent: list[float] = []
    slots, now = [], 0.0
    for _ in range(300):
        now += rng.expovariate(5)
        slot, recent = admission.reserve(recent, RateLimit(2, 60), now)
        assert slot >= now
        slots.append(slot)
    assert most_in_any_window(slots, 60.0) == 2


def test_claims_refuse_the_third_call_in_a_window():
    wait, calls = admission.claim([], TWO_PER_SECOND, 10.0)
    assert wait == 0 and calls == [10.0]
    wait, calls = admission.claim(calls, TWO_PER_SECOND, 10.1)
    assert wait == 0 and calls == [10.0, 10.1]
    wait, unchanged = admission.claim(calls, TWO_PER_SECOND, 10.5)
    assert wait == pytest.approx(10.0 + WINDOW - 10.5) and unchanged == calls
    wait, calls = admission.claim(calls, TWO_PER_SECOND, 10.0 + WINDOW)
    assert wait == 0 and calls == [10.1, 10.0 + WINDOW]


def test_next_call_is_when_the_log_frees_and_books_nothing():
    assert admission.next_call([], TWO_PER_SECOND, 5.0) == 5.0
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
    # A slower pace spreads reservations wider.
    slot, _ = admission.reserve([100.0, 100.0], limit, 101.0, pace=slowed)
    assert slot == pytest.approx(100 + 60 / admission.DECREASE + admission.DEFAULT_MARGIN_SECONDS)


def test_the_pace_never_drops_below_its_floor():
    limit, pace = TWO_PER_SECOND, admission.Pace()
    for second in range(1, 60):
        pace = pace.slowed(limit, sent_at=second - 0.5, now=float(second))
    assert pace.share(limit, 59.0) >= admission.MIN_SHARE


def test_backoff_is_bounded_full_jitter():
    rng = random.Random(1)
    assert admission.backoff_seconds(0) == 0
    for attempt in range(1, 12):
        ceiling = min(
            admission.BACKOFF_CAP_SECONDS, admission.BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)
        )
        assert 0 <= admission.backoff_seconds(attempt, rng) <= ceiling


@pytest.fixture
def limits(tables):
    return DynamoLimitStore("LimitsTable", tables)


def test_store_reserves_and_claims(limits):
    slots = [limits.reserve("fam", TWO_PER_SECOND, now=50.0) for _ in range(5)]
    assert most_in_any_window(slots, WINDOW) == 2
    assert limits.claim_call("fam", TWO_PER_SECOND, 50.0) == 0
    assert limits.claim_call("fam", TWO_PER_SECOND, 50.0) == 0
    assert limits.claim_call("fam", TWO_PER_SECOND, 50.2) == pytest.approx(WINDOW - 0.2)
    assert limits.claim_call("other", TWO_PER_SECOND, 50.2) == 0  # families are separate


def test_store_slows_the_pace_and_tells_when_the_next_call_may_go(limits):
    assert limits.next_call_at("fam", TWO_PER_SECOND, 50.0) == 50.0
    limits.claim_call("fam", TWO_PER_SECOND, 50.0)
    limits.claim_call("fam", TWO_PER_SECOND, 50.1)
    assert limits.next_call_at("fam", TWO_PER_SECOND, 50.2) == pytest.approx(50.0 + WINDOW)
    limits.throttled("fam", TWO_PER_SECOND, sent_at=50.1, now=50.2)
    limits.throttled("fam", TWO_PER_SECOND, sent_at=50.0, now=50.3)  # from before: no news
    slower = 50.0 + admission.spacing(TWO_PER_SECOND, share=admission.DECREASE)
    assert limits.next_call_at("fam", TWO_PER_SECOND, 50.3) == pytest.approx(slower, abs=0.01)
    assert limits.next_call_at("other", TWO_PER_SECOND, 50.3) == 50.3


def test_concurrent_reservations_stay_within_the_limit(limits):
    slots, lock = [], threading.Lock()

    def book():
        slot = limits.reserve("burst", TWO_PER_SECOND, now=1000.0)
        with lock:
            slots.append(slot)

    threads = [threading.Thread(target=book) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(slots) == 16 and most_in_any_window(slots, WINDOW) == 2


def test_a_lost_race_is_retried(limits, monkeypatch):
    real_put = limits.client.put_item
    conflicts = iter([True])

    def put_item(**kwargs):
        if next(conflicts, False):
            raise ClientError({"Error": {"Code": "ConditionalCheckFailedException"}}, "PutItem")
        return real_put(**kwargs)

    monkeypatch.setattr(limits.client, "put_item", put_item)
    assert limits.reserve("fam", TWO_PER_SECOND, now=5.0) == 5.0


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
