"""Key pool simulator: the real Schedule booking one family's calls on 1, 2 or 4 provider keys
(each key its own bucket, each call on the key whose next slot is earliest), with the timing of
benchmarks/scheduling.py (queueing, preparation, arrival jitter, hand-overs, 3% 5xx and 3% busy
429s). Each key's provider keeps its own limit by its own clock. And the dead-key drill: one of
2 keys starts answering 401 mid-burst.

    .venv/bin/python benchmarks/key_pool.py         # prints the tables, writes the report
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field

from scheduling import LIFETIME, NETWORK, PREPARE, SKEW, Job, Provider, Simulation

from qwen_edit.app.dispatcher import LEAD_SECONDS, LOOK_SECONDS
from qwen_edit.domain import admission
from qwen_edit.domain.catalog import RateLimit, get_model
from qwen_edit.domain.dispatch import Answer, QueueEntry, Schedule
from qwen_edit.domain.provider_keys import bucket

from report import write_section

FAMILY = "qwen-image-2.0-pro"  # 2 per minute


@dataclass
class PoolSimulation(Simulation):
    """The dispatcher loop of Simulation over several keys, each with its own provider."""

    keys: dict[str, Provider] = field(default_factory=dict)
    dead: set[str] = field(default_factory=set)
    revoked_at: dict[str, float] = field(default_factory=dict)  # key → answers 401 from then on
    key_calls: dict[str, list[float]] = field(default_factory=dict)
    alarm_points: int = 0  # ProviderKeyDead data points (one per key taken out)
    refused_calls: int = 0
    first_refused_at: float | None = None

    def look(self) -> None:
        if self.now - self.born > LIFETIME:  # hand-over: every bucket's state, and a new clock
            old = self.schedule
            self.skew, self.born = self.rng.uniform(-SKEW, SKEW), self.now
            self.schedule = Schedule(
                self.margin,
                {bucket(k, self.family): old.clock(self.family, k).calls for k in self.keys},
                {bucket(k, self.family): old.clock(self.family, k).pace for k in self.keys},
                guard=admission.HANDOVER_GUARD_SECONDS,
            )
        waiting = [e for e in self.queue.values() if not e.claimed]
        live = sorted(k for k in self.keys if k not in self.dead)
        if not waiting:
            if any(e.claimed for e in self.queue.values()):
                self.at(self.now + LOOK_SECONDS, self.look)
            else:
                self.looking = False
            return
        now = self.clock()
        for booking in self.schedule.book(
            self.family, self.limit, waiting, now, LEAD_SECONDS, live
        ):
            entry = booking.entry
            self.queue[entry.job_id] = entry.model_copy(update={"claimed_by": 1})
            sent = max(self.now + self.rng.uniform(*PREPARE), booking.at - self.skew)
            self.at(sent, functools.partial(self.send_on, entry, booking.at, booking.key))
        next_slot = self.schedule.earliest(self.family, self.limit, now, live)[0]
        wake = min(now + LOOK_SECONDS, next_slot - LEAD_SECONDS)
        self.at(self.now + max(0.0, wake - now), self.look)

    def send_on(self, entry: QueueEntry, booked: float, key: str) -> None:
        if key in self.dead:  # died since it was booked: never sent to it
            self.schedule.unbook(self.family, booked, key)
            self.queue[entry.job_id] = entry
            return
        sent_at = self.clock()
        wait = self.schedule.clear_to_send(self.family, self.limit, booked, sent_at, key)
        if wait > 0:
            self.at(self.now + wait, functools.partial(self.send_on, entry, booked, key))
            return
        job = self.jobs[entry.job_id]
        job.started = job.started if job.started is not None else self.now
        self.call_times.append(self.now)
        self.key_calls.setdefault(key, []).append(self.now)
        arrived = self.now + self.rng.uniform(*NETWORK)
        if key in self.revoked_at and arrived >= self.revoked_at[key]:
            answer = Answer.KEY_REFUSED
            self.refused_calls += 1
            if self.first_refused_at is None:
                self.first_refused_at = self.now
        else:
            answer = self.keys[key].answer(arrived)
        job.tasks += answer in (Answer.OK, Answer.NO_ANSWER)
        self.at(
            self.now + self.rng.uniform(0.1, 0.4),
            lambda: self.answered_on(entry, answer, sent_at, key),
        )

    def answered_on(self, entry: QueueEntry, answer: Answer, sent_at: float, key: str) -> None:
        self.schedule.answered(self.family, self.limit, answer, sent_at, self.clock(), key)
        if answer is Answer.KEY_REFUSED and key not in self.dead:
            self.dead.add(key)
            self.alarm_points += 1
        self.next_for(entry, answer)


@dataclass(frozen=True)
class PoolReport:
    keys: int
    jobs: int
    drain_seconds: float
    utilisation: dict[str, float]  # per key: calls ÷ its slots while work waited
    lost: int
    duplicate_tasks: int
    rate_429: int


def run_pool(key_count: int, jobs: int, seed: int, revoke: str | None = None) -> PoolSimulation:
    limit = get_model(FAMILY).rate_limit
    rng = random.Random(seed)
    keys = {f"k{i}": Provider(limit, random.Random(seed * 10 + i)) for i in range(1, key_count + 1)}
    sim = PoolSimulation(limit, Provider(limit, rng), rng, family=FAMILY, keys=keys)
    if revoke is not None:  # mid-burst: half the single-key drain time
        sim.revoked_at[revoke] = jobs / 2 * limit.per_seconds / limit.requests / key_count
    for index in range(jobs):
        sim.start(Job(f"j{index}", f"t{index % 3}", arrived=0.0))
    sim.run()
    return sim


def utilisation(sim: PoolSimulation, limit: RateLimit, key: str, until: float) -> float:
    calls = len(sim.key_calls.get(key, []))
    slots = limit.requests / limit.per_seconds * until + limit.requests
    return min(1.0, calls / slots)


def scale(key_count: int, jobs: int, seed: int) -> PoolReport:
    sim = run_pool(key_count, jobs, seed)
    limit = get_model(FAMILY).rate_limit
    end = max(sim.call_times)
    return PoolReport(
        keys=key_count,
        jobs=jobs,
        drain_seconds=end,
        utilisation={k: utilisation(sim, limit, k, end) for k in sim.keys},
        lost=sum(1 for j in sim.jobs.values() if j.done is None or j.failed),
        duplicate_tasks=sum(max(0, j.tasks - 1) for j in sim.jobs.values()),
        rate_429=sum(p.rate_429 for p in sim.keys.values()),
    )


PREAMBLE = """### Provider key pool, simulated (`benchmarks/key_pool.py`)

The real Schedule books one 2-per-minute family (`qwen-image-2.0-pro`) on 1, 2 or 4 keys, each
key its own bucket, each call on the key whose next slot is earliest; the timing is
`benchmarks/scheduling.py`'s (queueing, preparation and arrival jitter, a hand-over every
730 s, 3% 5xx and 3% busy 429s), and each key's provider keeps its own limit by its own clock.
Utilisation is each key's calls ÷ its slots from the first job to the last call."""


def main() -> None:
    rows = [
        "| keys | jobs | drain (s) | drain × keys ÷ 1-key drain | call utilisation per key "
        "| jobs lost | duplicate tasks | rate-quota 429s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    reports = [scale(n, 120, seed=11) for n in (1, 2, 4)]
    single = reports[0].drain_seconds
    for report in reports:
        shares = ", ".join(f"{u:.3f}" for u in report.utilisation.values())
        rows.append(
            f"| {report.keys} | {report.jobs} | {report.drain_seconds:.0f} "
            f"| {report.drain_seconds * report.keys / single:.2f} | {shares} | {report.lost} "
            f"| {report.duplicate_tasks} | {report.rate_429} |"
        )
    drill = run_pool(2, 120, seed=12, revoke="k2")
    limit = get_model(FAMILY).rate_limit
    revoked = drill.revoked_at["k2"]
    refused_at = drill.first_refused_at or revoked
    k1_after = [t for t in drill.key_calls["k1"] if t > refused_at]
    k2_after = [t for t in drill.key_calls["k2"] if t > refused_at]
    lost = sum(1 for j in drill.jobs.values() if j.done is None or j.failed)
    rows += [
        "",
        "| dead-key drill: 2 keys, 120 jobs, k2 answers 401 from "
        f"{revoked:.0f} s | jobs lost | calls refused by k2 | calls on k1 after the 401 "
        "| calls on k2 after the 401 "
        "| ProviderKeyDead data points | drain (s) |",
        "|---|---|---|---|---|---|---|",
        f"| | {lost} | {drill.refused_calls} | {len(k1_after)} "
        f"| {len(k2_after)} | {drill.alarm_points} | {max(drill.call_times):.0f} |",
    ]
    k1_end = max(drill.key_calls["k1"])
    note = (
        f"After the 401, k1 carried every call at {utilisation(drill, limit, 'k1', k1_end):.3f} "
        "of its own rate; the job whose call got the 401 went back in line and was served by "
        "k1, and nothing more went to k2."
    )
    table = "\n".join(rows)
    print(table)
    print(note)
    write_section("Key pool simulator", f"{PREAMBLE}\n\n{table}\n\n{note}")


if __name__ == "__main__":
    main()
