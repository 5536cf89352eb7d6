"""Whose provider call goes next (the dispatcher's choice among one model family's queued jobs).

Lanes first: interactive (API requests, by default) before batch (uploads, by default), except
that batch gets one call in every BATCH_EVERY while both lanes wait, so it always advances with
a guaranteed share (1 ÷ BATCH_EVERY: 25 %) of the family's calls. Within a lane, tenants take turns
(deficit round robin with a quantum of one call: a call, not an image, is what the provider's
limit counts, so every job costs the same), and a tenant's own jobs go first in, first out. A
job back from a "try later" keeps its `enqueued_at`, so it is at the head of its tenant's line.

When: `Schedule` books each family's calls on one clock per provider key (domain/admission.py's
pacing: each key is its own bucket), a little ahead (`lead`), so that the dispatcher can prepare
a call and send it on time. The line is one per family, across keys: each call goes to the key
whose next slot is earliest, and only the slot, never the order, depends on the keys.

Pure code: the dispatcher (app/dispatcher.py) drives a Schedule, the simulator
(benchmarks/scheduling.py) drives the same one on a simulated clock, and the API uses `line` to
show a queued job its place.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

from qwen_edit.domain import admission
from qwen_edit.domain.admission import Pace
from qwen_edit.domain.catalog import RateLimit
from qwen_edit.domain.jobs import Lane
from qwen_edit.domain.provider import RATE_QUOTA_CODE, ProviderError
from qwen_edit.domain.provider_keys import DEFAULT_KEY_ID, bucket, rejects_the_key

BATCH_EVERY = 4


class Answer(StrEnum):
    """A provider call's outcome in a few words: what pacing reacts to, and operators graph."""

    OK = "ok"
    REFUSED = "refused"  # a final error: the request itself was refused
    RATE_QUOTA_429 = "rate-quota-429"  # the key's rate limit: pacing slows down
    BUSY_429 = "busy-429"
    SERVER_5XX = "5xx"
    NOT_SENT = "not-sent"  # no connection: the request never left
    NO_ANSWER = "no-answer"  # sent, answer lost: the outcome is unknown
    KEY_REFUSED = "key-refused"  # 401/403: the key is dead, the job moves to another key

    @classmethod
    def of(cls, error: ProviderError) -> Answer:
        if error.outcome_unknown:
            return cls.NO_ANSWER
        if rejects_the_key(error):
            return cls.KEY_REFUSED
        if error.code == RATE_QUOTA_CODE:
            return cls.RATE_QUOTA_429
        if error.http_status == 429:
            return cls.BUSY_429
        if error.http_status is not None and error.http_status >= 500:
            return cls.SERVER_5XX
        return cls.NOT_SENT if error.retryable else cls.REFUSED

    @property
    def provider_failed(self) -> bool:
        """The provider's fault, or the way to it (the error rate's); a refusal is the
        request's."""
        return self not in (Answer.OK, Answer.REFUSED)

    @property
    def sent(self) -> bool:
        """Whether the call may have reached the provider (it counts as a provider call)."""
        return self is not Answer.NOT_SENT

    @property
    def try_later(self) -> bool:
        return self in (Answer.RATE_QUOTA_429, Answer.BUSY_429, Answer.SERVER_5XX, Answer.NOT_SENT)


class Next(StrEnum):
    """What becomes of a job after its call was answered (one policy, no Retry blocks)."""

    RESUME = "resume"  # its workflow goes on with the answer
    REQUEUE = "requeue"  # "try later", or its key died: back at its old place, next free slot
    FAIL = "fail"  # refused; out of attempts; or the outcome is unknown (never resent)


def next_step(answer: Answer, calls_made: int, max_attempts: int) -> Next:
    """`calls_made` counts this call. A call whose answer was lost is never sent again: it may
    have created a task, and a second one would be paid twice."""
    if answer is Answer.OK:
        return Next.RESUME
    if answer is Answer.KEY_REFUSED:  # not the job's fault; bounded: a key dies once
        return Next.REQUEUE
    if answer.try_later and calls_made < max_attempts:
        return Next.REQUEUE
    return Next.FAIL


class QueueEntry(BaseModel):
    """A job waiting for its provider call (one item of the queue table)."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    job_id: str
    tenant: str
    family: str
    lane: Lane
    enqueued_at: float  # kept when the job comes back: its place in its tenant's line
    deadline_at: float
    start_by: float | None = None  # not called by then: the job is canceled (its own deadline)
    calls: int = 0  # provider calls made for it so far (each answered "try later")
    claimed_by: int | None = None  # the fencing token of the dispatcher calling for it
    claimed_at: float | None = None

    @property
    def claimed(self) -> bool:
        return self.claimed_by is not None


@dataclass(frozen=True)
class Turns:
    """Where one family's rotation stands: the tenant served last in each lane, and how many
    interactive calls went since the last batch call."""

    last_tenant: dict[Lane, str] = field(default_factory=dict)
    since_batch: int = 0

    def after(self, entry: QueueEntry) -> Turns:
        since = 0 if entry.lane is Lane.BATCH else self.since_batch + 1
        return replace(
            self, last_tenant={**self.last_tenant, entry.lane: entry.tenant}, since_batch=since
        )


def line(entries: Iterable[QueueEntry], turns: Turns = Turns()) -> Iterator[QueueEntry]:
    """The waiting (unclaimed) entries in the order they would be called, if nothing changed."""
    lanes: dict[Lane, dict[str, deque[QueueEntry]]] = {lane: {} for lane in Lane}
    for entry in sorted(entries, key=lambda e: (e.enqueued_at, e.job_id)):
        if not entry.claimed:
            lanes[entry.lane].setdefault(entry.tenant, deque()).append(entry)
    while lanes[Lane.INTERACTIVE] or lanes[Lane.BATCH]:
        lane = _next_lane(lanes, turns)
        tenants = lanes[lane]
        tenant = _next_tenant(sorted(tenants), turns.last_tenant.get(lane))
        entry = tenants[tenant].popleft()
        if not tenants[tenant]:
            del tenants[tenant]
        turns = turns.after(entry)
        yield entry


def pick(entries: Iterable[QueueEntry], turns: Turns) -> QueueEntry | None:
    return next(line(entries, turns), None)


def _next_lane(lanes: dict[Lane, dict[str, deque[QueueEntry]]], turns: Turns) -> Lane:
    if not lanes[Lane.INTERACTIVE]:
        return Lane.BATCH
    if lanes[Lane.BATCH] and turns.since_batch >= BATCH_EVERY - 1:
        return Lane.BATCH
    return Lane.INTERACTIVE


def _next_tenant(tenants: list[str], last: str | None) -> str:
    """The first tenant after the one served last, in a fixed (sorted) cycle."""
    if last is not None:
        for tenant in tenants:
            if tenant > last:
                return tenant
    return tenants[0]


@dataclass(frozen=True)
class HeldLease:
    """The dispatcher's lease: its fencing token (larger with every new holder), and the clock
    state the previous holder left (each bucket's booked calls and pace; a bucket is one key's
    clock for one family, named by provider_keys.bucket)."""

    token: int
    calls: dict[str, list[float]] = field(default_factory=dict)
    paces: dict[str, Pace] = field(default_factory=dict)


@dataclass
class FamilyClock:
    """One key's clock for one family (a bucket)."""

    calls: list[float] = field(default_factory=list)  # the last `requests` booked calls
    sent: list[float] = field(default_factory=list)  # the last `requests` calls really sent
    pace: Pace = field(default_factory=Pace)
    failures_in_a_row: int = 0
    paused_until: float = 0.0


class Booking(NamedTuple):
    entry: QueueEntry
    at: float  # when to send it
    key: str  # the key whose slot it took


SHARED = ""  # the shared line's group; a tenant with its own key has its own group


class Schedule:
    """Each bucket's clock (a key and a family): when its next call may go; and each line's
    turns (a family, in the shared group or one tenant's own key). Calls inherited from the
    previous dispatcher are taken as `guard` seconds later than its clock said, since that
    clock was another Lambda's."""

    def __init__(
        self,
        margin: float = admission.DEFAULT_MARGIN_SECONDS,
        calls: Mapping[str, list[float]] | None = None,
        paces: Mapping[str, Pace] | None = None,
        guard: float = 0.0,
    ):
        self.margin = margin
        self.buckets: dict[str, FamilyClock] = {}
        self.turns: dict[tuple[str, str], Turns] = {}
        for name in {*(calls or {}), *(paces or {})}:
            inherited = [at + guard for at in (calls or {}).get(name, [])]
            self.buckets[name] = FamilyClock(
                calls=inherited, sent=list(inherited), pace=(paces or {}).get(name, Pace())
            )

    def clock(self, family: str, key: str = DEFAULT_KEY_ID) -> FamilyClock:
        return self.buckets.setdefault(bucket(key, family), FamilyClock())

    def next_at(
        self, family: str, limit: RateLimit, now: float, key: str = DEFAULT_KEY_ID
    ) -> float:
        state = self.clock(family, key)
        ready = admission.next_call(state.calls, limit, now, self.margin, state.pace)
        return max(ready, state.paused_until)

    def earliest(
        self, family: str, limit: RateLimit, now: float, keys: Sequence[str]
    ) -> tuple[float, str]:
        """The key whose next slot comes first (the first in `keys` on a tie), and that slot."""
        return min((self.next_at(family, limit, now, key), key) for key in keys)

    def book(
        self,
        family: str,
        limit: RateLimit,
        entries: Iterable[QueueEntry],
        now: float,
        lead: float,
        keys: Sequence[str] = (DEFAULT_KEY_ID,),
        group: str = SHARED,
    ) -> list[Booking]:
        """The calls of one line due within `lead` seconds, each booked on the key whose next
        slot is earliest. The order is the line's (`pick`), whatever the keys."""
        turns = self.turns.get((family, group), Turns())
        waiting = [e for e in entries if e.family == family and not e.claimed]
        booked: list[Booking] = []
        # (a microsecond of slack: a loop that wakes at `next_at - lead` must find it due)
        while waiting and keys:
            at, key = self.earliest(family, limit, now, keys)
            if at > now + lead + 1e-6:
                break
            entry = pick(waiting, turns)
            assert entry is not None  # waiting is not empty
            waiting.remove(entry)
            state = self.clock(family, key)
            state.calls = [*sorted(state.calls), at][-limit.requests :]
            turns = turns.after(entry)
            booked.append(Booking(entry, at, key))
        self.turns[(family, group)] = turns
        return booked

    def plan(
        self, family: str, limit: RateLimit, entries: Iterable[QueueEntry], now: float, lead: float
    ) -> list[tuple[QueueEntry, float]]:
        """`book` on the default key alone: (entry, when to send)."""
        return [(b.entry, b.at) for b in self.book(family, limit, entries, now, lead)]

    def clear_to_send(
        self, family: str, limit: RateLimit, booked: float, now: float, key: str = DEFAULT_KEY_ID
    ) -> float:
        """Just before a call leaves: 0 if the calls really sent on its key allow it now (it is
        then recorded as sent), else the seconds to wait. A call booked after another that then
        left late would otherwise go too close behind it."""
        state = self.clock(family, key)
        ready = admission.next_call(state.sent, limit, now, self.margin, state.pace)
        if ready > now:
            return ready - now
        state.sent = [*state.sent, now][-limit.requests :]
        if now > booked and booked in state.calls:  # later than booked: book after the real one
            state.calls[state.calls.index(booked)] = now
        return 0.0

    def unbook(self, family: str, at: float, key: str = DEFAULT_KEY_ID) -> None:
        """A booked call that will not be made (its job left the queue, or its key died)."""
        state = self.clock(family, key)
        if at in state.calls:
            state.calls.remove(at)

    def answered(
        self,
        family: str,
        limit: RateLimit,
        answer: Answer,
        sent_at: float,
        now: float,
        key: str = DEFAULT_KEY_ID,
    ) -> None:
        """Pacing reacts on the key that got the answer only: a rate-quota 429 slows that key's
        bucket, and an outage pauses that key's."""
        state = self.clock(family, key)
        if answer is Answer.RATE_QUOTA_429:
            state.pace = state.pace.slowed(limit, sent_at, now)
        elif answer.try_later:
            state.failures_in_a_row += 1
            pause = admission.outage_pause(state.failures_in_a_row)
            state.paused_until = max(state.paused_until, now + pause)
        else:
            state.failures_in_a_row = 0
