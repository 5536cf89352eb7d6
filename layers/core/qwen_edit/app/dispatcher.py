"""The dispatcher: the one sender of the deployment's provider calls.

Each job's workflow queues it and waits on a task token (workflow.admit), which costs no state
transitions however long it waits. One dispatcher at a time holds the lease; its fencing token
guards every booking, so a holder whose lease was taken over cannot book another call. It reads
the queue every LOOK_SECONDS, books each family's next calls on its clocks, one per provider key
(domain.dispatch.Schedule: pacing per key, lanes, tenants' turns across keys; a tenant with its
own key has a line of its own on that key), claims the chosen job, prepares its
call in a worker thread and sends it at the booked moment (checked, just before, against the
calls really sent), then resumes the job's workflow with the provider's answer. A job answered
"try later" goes back to its old place in line; so does one whose key answered 401/403, and
that key is taken out of the pool (app/key_pool.py) for every function.

At most one provider task per job attempt: the call is recorded on the job before it is sent,
and a claim left behind (a dead dispatcher, a crashed worker) is settled from that record: not
sent → back in line; answered with a task → that task is polled; sent with no recorded answer
→ ProviderOutcomeUnknown. Nothing is ever sent again silently.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aws_lambda_powertools import Logger

from qwen_edit.app import webhooks
from qwen_edit.app.key_pool import key_died
from qwen_edit.app.lifecycle import expire, load_job, note
from qwen_edit.app.workflow import (
    OUTCOME_UNKNOWN,
    Submission,
    count_provider_answer,
    final_result,
    readable_url,
)
from qwen_edit.context import Context
from qwen_edit.domain import chains
from qwen_edit.domain.admission import HANDOVER_GUARD_SECONDS
from qwen_edit.domain.catalog import ModelSpec, Provider, get_model
from qwen_edit.domain.dispatch import (
    SHARED,
    Answer,
    Booking,
    HeldLease,
    Next,
    QueueEntry,
    Schedule,
    next_step,
)
from qwen_edit.domain.errors import (
    DeadlineExceeded,
    JobConflict,
    JobFailed,
    ProviderOutcomeUnknown,
    QwenEditError,
)
from qwen_edit.domain.jobs import (
    Job,
    JobStatus,
    ProviderCall,
    ProviderInfo,
    Step,
    event,
    now_utc,
)
from qwen_edit.domain.provider import ProviderError, ProviderTask
from qwen_edit.domain.provider_keys import NO_KEY_CODE, PoolKey, bucket, own_key, shared_keys
from qwen_edit.domain.requests import parse_request
from qwen_edit.settings import Limits

logger = Logger(child=True)
LEASE_SECONDS = 30.0  # a dead holder's lease frees this long after its last renewal
RENEW_SECONDS = 10.0
LOOK_SECONDS = 0.25  # how often the queue is read: the delay before a new job is seen
LEAD_SECONDS = 0.3  # a call is booked this long before it goes, to prepare it in time
HAND_OVER_SECONDS = 170.0  # stop booking this long before the Lambda ends (sync calls ≤ 150 s)
STALE_CLAIM_SECONDS = 200.0  # longer than any call: another holder's claim this old is dead
WORKERS = 64  # calls in flight: a sync edit takes ~10–20 s, so 2 a second keep ~40 busy


def dispatch(
    ctx: Context,
    remaining: Callable[[], float],
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Dispatch while jobs wait and the function has time left; what it did, in a few words."""
    now = clock()
    lease = ctx.dispatch_lease.acquire(uuid.uuid4().hex, now, now + LEASE_SECONDS)
    if lease is None:
        return "another dispatcher holds the lease"
    run = Run(ctx, lease, clock, sleep)
    try:
        run.loop(remaining)
    finally:
        run.hand_over()
    return f"{run.booked} calls booked"


class Run:
    def __init__(
        self,
        ctx: Context,
        lease: HeldLease,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ):
        self.ctx, self.token, self.clock, self.sleep = ctx, lease.token, clock, sleep
        margin = ctx.need(Limits).admission_margin_seconds
        guard = HANDOVER_GUARD_SECONDS
        self.schedule = Schedule(margin, lease.calls, lease.paces, guard=guard)
        self.lock = threading.Lock()  # the schedule: workers report answers to it
        self.workers = ThreadPoolExecutor(WORKERS, thread_name_prefix="call")
        self.renewed_at = clock()
        self.lost = False
        self.booked = 0
        self.pool: list[PoolKey] = []
        self.dead: set[str] = set()  # also added to by workers, under the lock
        self._read_pool()

    def _read_pool(self) -> None:
        """The keys, the dead ones and the tenants' own: read at the start and at each renewal,
        so a key put back (or a tenant given a key) is seen within RENEW_SECONDS."""
        self.pool = self.ctx.provider_keys()
        dead = self.ctx.key_health.dead()
        with self.lock:
            self.dead = dead

    def loop(self, remaining: Callable[[], float]) -> None:
        while remaining() > HAND_OVER_SECONDS and self._renewed():
            now = self.clock()
            entries = self.ctx.queue.entries()
            if self._settle_stale(entries, now):
                continue  # they may be back in line: look again
            waiting = [e for e in entries if not e.claimed and not self._expired(e, now)]
            if not waiting:
                if not any(e.claimed_by == self.token for e in entries):
                    return  # nothing to do: the next queued job wakes a dispatcher
                self.sleep(LOOK_SECONDS)  # calls in flight may come back "try later"
                continue
            wake = now + LOOK_SECONDS
            reserved = self.ctx.tenant_keys.reserved()
            for family, group, keys, line in self._lines(waiting, reserved):
                if not keys:
                    self._no_key(line, group, now)
                    continue
                wake = min(wake, self._book(family, line, keys, group, now) - LEAD_SECONDS)
                if self.lost:
                    return
            self.sleep(max(0.0, wake - self.clock()))

    def hand_over(self) -> None:
        """Free the lease for a successor (woken if jobs still wait), then let the calls in
        flight finish: they need no lease, each holds its job's claim. One that comes back
        "try later" after the first look wakes a successor too."""
        if not self.lost:
            self.ctx.dispatch_lease.release(self.token)
        self._wake_if_waiting()
        self.workers.shutdown(wait=True)
        self._wake_if_waiting()

    def _wake_if_waiting(self) -> None:
        if any(not e.claimed for e in self.ctx.queue.entries()):
            self.ctx.wake_dispatcher()

    def _renewed(self) -> bool:
        now = self.clock()
        if now - self.renewed_at >= RENEW_SECONDS:
            self.lost = not self.ctx.dispatch_lease.renew(self.token, now + LEASE_SECONDS)
            self.renewed_at = now
            if not self.lost:
                self._read_pool()
        return not self.lost

    def _expired(self, entry: QueueEntry, now: float) -> bool:
        """A job past a deadline before its call ends, costing no call: canceled when its
        request's own deadline passed (start_by), failed past the job's."""
        late = entry.start_by is not None and entry.start_by <= now
        if entry.deadline_at > now and not late:
            return False
        if (task_token := self.ctx.queue.claim(entry, self.token, now)) is None:
            return True  # someone else's now
        if late:
            expire(self.ctx, load_job(self.ctx, entry.job_id))
            error: QwenEditError = JobConflict(
                f"job {entry.job_id} was not started by its deadline"
            )
        else:
            error = DeadlineExceeded("the job was not called by its deadline")
        self._fail(entry, task_token, error)
        return True

    def _lines(
        self, waiting: list[QueueEntry], reserved: dict[str, str]
    ) -> list[tuple[str, str, list[str], list[QueueEntry]]]:
        """(family, group, its live keys, its entries) for each line: per family, the shared
        line on the shared keys, and one line per tenant with its own key, on that key only."""
        with self.lock:
            dead = set(self.dead)
        lines = []
        for family in sorted({e.family for e in waiting}):
            provider = get_model(family).provider
            entries = [e for e in waiting if e.family == family]
            shared = [e for e in entries if e.tenant not in reserved]
            if shared:
                keys = shared_keys(self.pool, provider, dead, reserved)
                lines.append((family, SHARED, keys, shared))
            for tenant in sorted({e.tenant for e in entries if e.tenant in reserved}):
                key = own_key(tenant, self.pool, provider, dead, reserved)
                own = [e for e in entries if e.tenant == tenant]
                lines.append((family, f"tenant:{tenant}", [key] if key else [], own))
        return lines

    def _no_key(self, line: list[QueueEntry], group: str, now: float) -> None:
        """No live key may serve this line: its jobs fail, saying why (nothing is sent)."""
        why = (
            "the tenant's own provider key is dead or not in the pool"
            if group != SHARED
            else "no live provider key serves this model (every key answered 401/403)"
        )
        for entry in line:
            if (task_token := self.ctx.queue.claim(entry, self.token, now)) is not None:
                self._fail(entry, task_token, JobFailed(why, code=NO_KEY_CODE))

    def _book(
        self, family: str, line: list[QueueEntry], keys: list[str], group: str, now: float
    ) -> float:
        """Book and start the line's calls due within the lead; when its next one is due."""
        spec = get_model(family)
        with self.lock:
            planned = self.schedule.book(
                family, spec.rate_limit, line, now, LEAD_SECONDS, keys, group
            )
        claimed: list[tuple[Booking, str]] = []
        passed_over = False
        for booking in planned:
            task_token = self._claim(spec, booking.entry, now)
            if task_token is None:
                with self.lock:
                    self.schedule.unbook(family, booking.at, booking.key)
                passed_over = True
                continue
            claimed.append((booking, task_token))
        for key in sorted({booking.key for booking, _ in claimed}):
            with self.lock:
                clock = self.schedule.clock(family, key)
                calls, pace = list(clock.calls), clock.pace
            if not self.ctx.dispatch_lease.record(self.token, bucket(key, family), calls, pace):
                self.lost = True  # another dispatcher took over: it sends these jobs
                for booking, _ in claimed:
                    self.ctx.queue.requeue(booking.entry, booking.entry.calls)
                return now
        for booking, task_token in claimed:
            self.booked += 1
            self.workers.submit(self._call, booking, task_token)
        if passed_over:  # at its task cap, or gone: look again next round, not at once
            return now + LOOK_SECONDS + LEAD_SECONDS
        with self.lock:
            return self.schedule.earliest(family, spec.rate_limit, now, keys)[0]

    def _claim(self, spec: ModelSpec, entry: QueueEntry, now: float) -> str | None:
        capped = spec.max_concurrent_tasks is not None
        if capped and not self.ctx.limits.acquire_lease(
            spec.family, entry.job_id, spec.max_concurrent_tasks or 0, entry.deadline_at, now
        ):
            return None  # its running tasks are at the cap: a later round
        task_token = self.ctx.queue.claim(entry, self.token, now)
        if task_token is None and capped:  # gone meanwhile (canceled): its place is free
            self.ctx.limits.release_lease(spec.family, entry.job_id)
        return task_token

    # ---- one call (a worker thread) ------------------------------------------------------

    def _call(self, booking: Booking, task_token: str) -> None:
        entry = booking.entry
        try:
            self._send(entry, task_token, booking.at, booking.key)
        except Exception:
            logger.exception("dispatching a job failed", extra={"job_id": entry.job_id})
            self._settle(entry, task_token, attempts=1)

    def _send(self, entry: QueueEntry, task_token: str, send_at: float, key: str) -> None:
        ctx = self.ctx
        job = load_job(ctx, entry.job_id)  # this worker's spans are about it
        spec = get_model(job.current_model)
        if job.status.is_final:  # canceled or reconciled while it waited: no call
            self._release_task_place(spec, job)
            ctx.queue.remove(entry.tenant, entry.job_id, task_token)
            return
        if job.status is JobStatus.QUEUED:
            job = ctx.jobs.transition(job.id, JobStatus.RUNNING, now_utc())
            webhooks.announce_progress(ctx, job)
        capability, payload = chains.call_request(job)
        valid = parse_request(capability, payload, default_model=job.current_model)
        request = valid.to_provider(lambda ref: readable_url(ctx, ref))
        provider = ctx.provider(spec.provider, key)
        sent = ProviderCall(attempt=entry.calls, sent_at=now_utc())
        ctx.jobs.update(job.id, sent.sent_at, provider_call=sent)  # before it is sent
        self.sleep(max(0.0, send_at - self.clock()))
        while True:
            with self.lock:
                sent_at = self.clock()
                if key in self.dead:  # died since it was booked: nothing goes to a dead key
                    self.schedule.unbook(spec.family, send_at, key)
                    wait = -1.0
                else:
                    wait = self.schedule.clear_to_send(
                        spec.family, spec.rate_limit, send_at, sent_at, key
                    )
            if wait == -1.0:
                self._release_task_place(spec, job)
                ctx.queue.requeue(entry, entry.calls)  # never sent: the same attempt, on another
                return
            if wait == 0:
                break
            self.sleep(wait)
        try:
            task = provider.submit(request, asynchronous=spec.is_async)
        except ProviderError as error:
            self._refused(entry, task_token, spec, job, error, sent, sent_at, key)
            return
        self._answered(spec, Answer.OK, sent_at, key)
        answered = sent.model_copy(update={"answered": True})
        try:
            info = self._info(spec, task, key)
            ctx.jobs.update(job.id, now_utc(), provider=info, provider_call=answered)
        except JobConflict:  # canceled during its call: the cancel answered its workflow
            ctx.queue.remove(entry.tenant, entry.job_id, task_token)
            return
        logger.info(
            "submitted", extra={"job_id": job.id, "model": spec.id, "task_id": task.task_id}
        )
        status = task.status.value
        submitted = event(Step.SUBMITTED, f"{job.step_prefix}{status}")
        note(ctx, job.id, submitted, status, provider_calls=1)
        try:
            submission = (
                final_result(task) if task.status.is_final else Submission(task_id=task.task_id)
            )
        except JobFailed as failed:
            self._fail(entry, task_token, failed)
            return
        self._succeed(entry, task_token, submission.model_copy(update={"cursor": job.cursor}))

    def _refused(
        self,
        entry: QueueEntry,
        task_token: str,
        spec: ModelSpec,
        job: Job,
        error: ProviderError,
        sent: ProviderCall,
        sent_at: float,
        key: str,
    ) -> None:
        answer = Answer.of(error)
        self._answered(spec, answer, sent_at, key)
        if answer is Answer.KEY_REFUSED:
            with self.lock:
                self.dead.add(key)
            key_died(self.ctx, key, error.code or str(error.http_status))
        if answer is not Answer.NO_ANSWER:
            answered = sent.model_copy(update={"answered": True})
            self.ctx.jobs.update(job.id, now_utc(), provider_call=answered)
        calls = entry.calls + 1
        step = next_step(answer, calls, self.ctx.need(Limits).max_provider_attempts)
        retried = event(Step.RETRIED, f"{answer.value}: {error.code}")
        note(
            self.ctx,
            job.id,
            retried if step is Next.REQUEUE else None,
            provider_calls=int(answer.sent),
        )
        if step is Next.REQUEUE:
            self._release_task_place(spec, job)
            self.ctx.queue.requeue(entry, calls)  # at its old place: it goes in the next slot
        elif answer is Answer.NO_ANSWER:
            unknown = ProviderOutcomeUnknown(f"{OUTCOME_UNKNOWN}: {error.message}")
            self._fail(entry, task_token, unknown)
        elif answer.try_later:
            message = f"gave up after {calls} provider attempts; the last one: {error.message}"
            self._fail(entry, task_token, JobFailed(message, code=error.code))
        else:
            self._fail(entry, task_token, JobFailed(error.message, code=error.code))

    def _answered(self, spec: ModelSpec, answer: Answer, sent_at: float, key: str) -> None:
        self.ctx.metrics.count("ProviderCalls", Family=spec.family, Answer=answer.value)
        count_provider_answer(self.ctx, answer)
        with self.lock:
            self.schedule.answered(spec.family, spec.rate_limit, answer, sent_at, self.clock(), key)

    def _info(self, spec: ModelSpec, task: ProviderTask, key: str) -> ProviderInfo:
        """What the job records of its call: the key's id (never the key) and its region."""
        pool_key = next((k for k in self.pool if k.id == key), None)
        region = pool_key.region if pool_key is not None else None
        return ProviderInfo(
            name=spec.provider.value,
            region=region.value
            if region is not None and spec.provider is Provider.DASHSCOPE
            else None,
            request_id=task.request_id,
            task_id=task.task_id,
            key_id=key,
        )

    def _release_task_place(self, spec: ModelSpec, job: Job) -> None:
        if spec.max_concurrent_tasks is not None:
            self.ctx.limits.release_lease(spec.family, job.id)

    # ---- ending a claim ------------------------------------------------------------------

    def _succeed(self, entry: QueueEntry, task_token: str, submission: Submission) -> None:
        output = submission.model_dump(mode="json", exclude_none=True)
        if not self.ctx.callbacks.succeed(task_token, output):
            logger.info("its workflow no longer waits", extra={"job_id": entry.job_id})
        self.ctx.queue.remove(entry.tenant, entry.job_id, task_token)  # not the next step's

    def _fail(self, entry: QueueEntry, task_token: str, error: QwenEditError) -> None:
        """The workflow's Catch records the failure (RecordFailure), as for any step."""
        cause = json.dumps({"errorMessage": str(error)})
        if not self.ctx.callbacks.fail(task_token, type(error).__name__, cause):
            logger.info("its workflow no longer waits", extra={"job_id": entry.job_id})
        self.ctx.queue.remove(entry.tenant, entry.job_id, task_token)  # not the next step's

    def _settle_stale(self, entries: list[QueueEntry], now: float) -> bool:
        """Claims another holder left behind (it died): settle each from the job's record."""
        settled = False
        for entry in entries:
            if (
                entry.claimed_by not in (None, self.token)
                and entry.claimed_at is not None
                and now - entry.claimed_at > STALE_CLAIM_SECONDS
                and (task_token := self.ctx.queue.claim(entry, self.token, now)) is not None
            ):
                self._settle(entry, task_token, attempts=0)
                settled = True
        return settled

    def _settle(self, entry: QueueEntry, task_token: str, attempts: int) -> None:
        """What a claim's job needs, judged from its record alone. `attempts`: 1 when our own
        worker crashed, so that a job that always crashes it ends after the attempts budget."""
        job = load_job(self.ctx, entry.job_id)
        call, info = job.provider_call, job.provider
        if call is None or call.attempt != entry.calls:  # never sent
            calls = entry.calls + attempts
            if calls >= self.ctx.need(Limits).max_provider_attempts:
                self._fail(
                    entry,
                    task_token,
                    JobFailed("the job could not be dispatched", code="DispatchFailed"),
                )
            else:
                self.ctx.queue.requeue(entry, calls)
        elif call.answered and info is not None and info.task_id:
            self._succeed(entry, task_token, Submission(task_id=info.task_id, cursor=job.cursor))
        elif call.answered and info is None:  # answered "try later" and recorded
            self.ctx.queue.requeue(entry, entry.calls + 1)
        else:
            self._fail(
                entry,
                task_token,
                ProviderOutcomeUnknown(f"{OUTCOME_UNKNOWN}: its dispatcher stopped"),
            )
