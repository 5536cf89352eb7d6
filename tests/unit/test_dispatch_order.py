"""Whose call goes next: tenants take turns, interactive before batch, batch never starves."""

from __future__ import annotations

from qwen_edit.domain.dispatch import BATCH_EVERY, QueueEntry, Turns, line, pick
from qwen_edit.domain.jobs import Lane


def jobs(
    tenant: str, count: int, lane: Lane = Lane.INTERACTIVE, at: float = 0.0
) -> list[QueueEntry]:
    return [
        QueueEntry(
            job_id=f"{tenant}-{i:03}",
            tenant=tenant,
            family="fam",
            lane=lane,
            enqueued_at=at + i,
            deadline_at=1e12,
        )
        for i in range(count)
    ]


def order(entries: list[QueueEntry], turns: Turns | None = None) -> list[str]:
    return [e.job_id for e in line(entries, turns or Turns())]


def test_one_tenant_goes_first_in_first_out() -> None:
    assert order(list(reversed(jobs("a", 3)))) == ["a-000", "a-001", "a-002"]


def test_a_tenant_with_one_job_is_not_behind_another_tenants_two_hundred() -> None:
    waiting = jobs("a", 200) + jobs("b", 1, at=500.0)
    assert order(waiting).index("b-000") <= 1


def test_tenants_take_turns_in_a_fixed_cycle_from_the_last_served() -> None:
    waiting = jobs("a", 3) + jobs("b", 3) + jobs("c", 1)
    assert order(waiting) == ["a-000", "b-000", "c-000", "a-001", "b-001", "a-002", "b-002"]
    after_a = Turns(last_tenant={Lane.INTERACTIVE: "a"})
    assert order(waiting, after_a)[:3] == ["b-000", "c-000", "a-000"]


def test_interactive_goes_before_batch_yet_batch_keeps_its_share() -> None:
    waiting = jobs("up", 50, Lane.BATCH) + jobs("api", 50)
    first = order(waiting)[: 10 * BATCH_EVERY]
    batch = [job for job in first if job.startswith("up")]
    assert len(batch) == 10  # one call in BATCH_EVERY while both lanes wait
    assert first[: BATCH_EVERY - 1] == [f"api-{i:03}" for i in range(BATCH_EVERY - 1)]


def test_batch_has_every_call_when_no_one_is_interactive() -> None:
    assert order(jobs("up", 3, Lane.BATCH)) == ["up-000", "up-001", "up-002"]


def test_claimed_jobs_are_not_in_line() -> None:
    [first, second] = jobs("a", 2)
    claimed = first.model_copy(update={"claimed_by": 3, "claimed_at": 1.0})
    assert pick([claimed, second], Turns()) == second
    assert pick([claimed], Turns()) is None


def test_a_job_back_from_try_later_is_first_in_its_tenants_line() -> None:
    waiting = jobs("a", 3)
    retried = waiting[0].model_copy(update={"calls": 1})  # same enqueued_at: same place
    assert order([*waiting[1:], retried])[0] == "a-000"
