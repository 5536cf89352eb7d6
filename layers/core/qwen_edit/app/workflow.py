"""The steps of the job workflow (statemachine/job.asl.json), one function per Task state.

State carried between steps stays small (SPEC §4): the job id, the admission slot, and the
provider's task id or result URLs. Images live in S3, records in DynamoDB.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime

from aws_lambda_powertools import Logger
from pydantic import BaseModel

from qwen_edit.app.service import announce, write_record
from qwen_edit.context import Context
from qwen_edit.domain import admission
from qwen_edit.domain.catalog import ModelSpec, Provider, get_model
from qwen_edit.domain.errors import (
    DeadlineExceeded,
    JobConflict,
    JobFailed,
    JobNotFound,
    JobNotRecorded,
    NotAdmitted,
    ProviderOutcomeUnknown,
    ProviderRetryable,
    TaskPending,
    failure_of,
)
from qwen_edit.domain.images import ImageRef, S3Image, png_dimensions
from qwen_edit.domain.jobs import (
    Job,
    JobError,
    JobOutput,
    JobStatus,
    ProviderCall,
    ProviderInfo,
    QueuePlace,
    now_utc,
)
from qwen_edit.domain.provider import (
    RATE_QUOTA_CODE,
    ProviderError,
    ProviderTask,
    TaskStatus,
    Usage,
)
from qwen_edit.domain.requests import direct_url, parse_request
from qwen_edit.settings import Buckets, Limits, ProviderAccess

logger = Logger(child=True)
PRESIGNED_INPUT_SECONDS = 3600  # how long the provider may take to fetch an s3:// input
MAX_SLEEP_FOR_SLOT = 3.0  # longer gaps go back to Admit instead of idling in the Lambda
OUTCOME_UNKNOWN = (
    "the provider may have received the call but its answer was lost; it is not sent again, "
    "so as not to create (and pay for) a second task: submit the job anew if you need it"
)


class Admission(BaseModel):
    at: datetime  # when this job may call the provider (the Wait state's timestamp)
    attempt: int = 0
    provider_attempts: int = 0  # provider calls that failed with "try later" so far


class Submission(BaseModel):
    task_id: str | None = None  # set for async tasks until they are final
    image_urls: list[str] = []
    usage: Usage | None = None


class Failure(BaseModel):
    Error: str
    Cause: str | None = None


class WorkflowState(BaseModel):
    job_id: str
    admission: Admission | None = None
    submission: Submission | None = None
    failure: Failure | None = None


def _provider_error(error: ProviderError) -> Exception:
    """The provider's "try later" becomes a retry; anything else fails the job, code kept."""
    if error.retryable:
        return ProviderRetryable(error.message, code=error.code)
    return JobFailed(error.message, code=error.code)


def _check_deadline(job: Job, at: float) -> None:
    if at >= job.deadline_at.timestamp():
        raise DeadlineExceeded(
            f"the job did not finish by its deadline {job.deadline_at.isoformat()}"
        )


def admit(ctx: Context, state: WorkflowState) -> Admission:
    """Book the job's provider call: an async-task place if the model has a cap, then a slot.

    Entered again after a provider call failed with "try later" (Submit's Catch): each such
    call counts against MAX_PROVIDER_ATTEMPTS, and the job fails with the last error once the
    budget is spent. The count is derived from the input state alone, so Admit's own Retry
    (which repeats the same input) never counts a failure twice.
    """
    job = _recorded_job(ctx, state.job_id)
    spec = get_model(job.model)
    attempt = state.admission.attempt + 1 if state.admission else 0
    provider_attempts = _provider_attempts(state)
    if provider_attempts >= ctx.need(Limits).max_provider_attempts:
        code, message = _failure(state)
        raise JobFailed(
            f"gave up after {provider_attempts} provider attempts; the last one: {message}",
            code=code,
        )
    now = time.time()
    _check_deadline(job, now)
    if spec.max_concurrent_tasks is not None and not ctx.limits.acquire_lease(
        spec.family, job.id, spec.max_concurrent_tasks, job.deadline_at.timestamp(), now
    ):
        raise NotAdmitted(f"{spec.family} already runs {spec.max_concurrent_tasks} tasks")
    if state.admission is None:  # a new job books a slot: a burst leaves at the provider's pace
        slot = ctx.limits.reserve(spec.family, spec.rate_limit, now)
    else:
        # Back from Submit: it keeps its place, at the next moment the call log frees, not at
        # the tail (plus a jittered delay: admission.rejoin_delay).
        delay = admission.rejoin_delay(spec.rate_limit, provider_attempts, _failed_call(state))
        slot = max(now + delay, ctx.limits.next_call_at(spec.family, spec.rate_limit, now))
    _check_deadline(job, slot)
    if job.status is JobStatus.QUEUED:
        margin = ctx.need(Limits).admission_margin_seconds
        place = QueuePlace(
            position=admission.calls_before(slot, spec.rate_limit, now, margin),
            estimated_start_at=datetime.fromtimestamp(slot, UTC),
        )
        ctx.jobs.update(job.id, now_utc(), queue=place)
    return Admission(
        at=datetime.fromtimestamp(slot, UTC), attempt=attempt, provider_attempts=provider_attempts
    )


def _resumed(job: Job) -> Submission:
    """Submit ran again for an attempt whose call was made: never a second call. An async task
    that was recorded goes on being polled; anything else cannot be known."""
    call, info = job.provider_call, job.provider
    if call is not None and call.answered and info is not None and info.task_id:
        logger.info("submit ran again: polling its task", extra={"job_id": job.id})
        return Submission(task_id=info.task_id)
    raise ProviderOutcomeUnknown(f"{OUTCOME_UNKNOWN}: this step ran again after its call")


def _note_refusal(
    ctx: Context, job_id: str, spec: ModelSpec, error: ProviderError, answered: ProviderCall
) -> None:
    """The bookkeeping of a failed call (metric, pace, record). Its own trouble is logged,
    never raised: it must not turn a "try later" into a failed job."""
    try:
        ctx.metrics.count("ProviderCalls", Family=spec.family, Answer=_answer_class(error))
        if error.outcome_unknown:
            return
        if error.code == RATE_QUOTA_CODE:
            sent_at = answered.sent_at.timestamp()
            ctx.limits.throttled(spec.family, spec.rate_limit, sent_at, time.time())
        ctx.jobs.update(job_id, now_utc(), provider_call=answered)
    except Exception:  # bookkeeping only: the call's own outcome is raised after
        logger.exception("could not record a refused provider call", extra={"job_id": job_id})


def _answer_class(error: ProviderError) -> str:
    """A provider call's failure, in a few words: what an operator graphs."""
    if error.outcome_unknown:
        return "no-answer"
    if error.code == RATE_QUOTA_CODE:
        return "rate-quota-429"
    if error.http_status == 429:
        return "busy-429"
    if error.http_status is not None and error.http_status >= 500:
        return "5xx"
    return "not-sent" if error.retryable else "refused"


def _recorded_job(ctx: Context, job_id: str) -> Job:
    """The job, which the API records just after starting its workflow: a short look here
    first (it is usually milliseconds away), then the Admit state's Retry."""
    for pause in (0.05, 0.1, 0.2):
        with contextlib.suppress(JobNotFound):
            return ctx.jobs.get(job_id)
        time.sleep(pause)
    try:
        return ctx.jobs.get(job_id)
    except JobNotFound:
        raise JobNotRecorded(f"job {job_id} is not recorded (yet)") from None


def _provider_attempts(state: WorkflowState) -> int:
    earlier = state.admission.provider_attempts if state.admission else 0
    return earlier + _failed_call(state)


def _failed_call(state: WorkflowState) -> bool:
    """Whether Submit's Catch brought the job back after a provider call failed "try later"."""
    return state.failure is not None and state.failure.Error == ProviderRetryable.__name__


def submit(ctx: Context, state: WorkflowState) -> Submission:
    """Call the provider: a sync model answers with images, an async one with a task id."""
    job = ctx.jobs.get(state.job_id)
    if job.status.is_final:  # ended elsewhere (canceled, reconciled): never call the provider
        raise JobConflict(f"job {job.id} is already {job.status.value}")
    if job.status is JobStatus.QUEUED:
        job = ctx.jobs.transition(job.id, JobStatus.RUNNING, now_utc())
    spec = get_model(job.model)
    valid = parse_request(job.kind.capability, job.request, default_model=job.model)
    call = valid.to_provider(lambda ref: _readable_url(ctx, ref))
    provider = ctx.provider(spec.provider)  # before the claim: building it may take a while
    attempt = state.admission.attempt if state.admission else 0
    if job.provider_call and job.provider_call.attempt == attempt:
        return _resumed(job)  # this step ran again (a Lambda-level Retry): its call was made
    _claim_call(ctx, spec)
    sent = ProviderCall(attempt=attempt, sent_at=now_utc())
    ctx.jobs.update(job.id, sent.sent_at, provider_call=sent)
    answered = sent.model_copy(update={"answered": True})
    try:
        task = provider.submit(call, asynchronous=spec.is_async)
    except ProviderError as error:
        failure = (
            ProviderOutcomeUnknown(f"{OUTCOME_UNKNOWN}: {error.message}")
            if error.outcome_unknown
            else _provider_error(error)
        )
        _note_refusal(ctx, job.id, spec, error, answered)
        raise failure from None
    ctx.jobs.update(
        job.id, now_utc(), provider=_provider_info(ctx, spec, task), provider_call=answered
    )
    ctx.metrics.count("ProviderCalls", Family=spec.family, Answer="ok")
    logger.info("submitted", extra={"job_id": job.id, "model": spec.id, "task_id": task.task_id})
    if task.status.is_final:
        return _final_result(task)
    return Submission(task_id=task.task_id)


def poll(ctx: Context, state: WorkflowState) -> Submission:
    """Ask the provider once; TaskPending makes the Poll state's Retry ask again later."""
    job = ctx.jobs.get(state.job_id)
    spec = get_model(job.model)
    task_id = _submission(state).task_id
    if task_id is None:
        raise JobFailed("the workflow polled a job without a provider task", code="NoTask")
    _check_deadline(job, time.time())
    ctx.metrics.count("Polls", Family=spec.family)
    try:
        task = ctx.provider(spec.provider).fetch(task_id)
    except ProviderError as error:
        if error.retryable:  # the next poll is the retry
            raise TaskPending(f"polling failed for now: {error.code}") from None
        raise JobFailed(error.message, code=error.code) from None
    if not task.status.is_final:
        raise TaskPending(f"task {task_id} is {task.status.value}")
    _release_lease(ctx, job, spec)
    return _final_result(task)


def store(ctx: Context, state: WorkflowState) -> None:
    """Copy every result into the output bucket at once, then complete the record."""
    job = ctx.jobs.get(state.job_id)
    if job.status.is_final:  # a retried Store after success, or a job canceled meanwhile
        if job.status is JobStatus.SUCCEEDED:
            write_record(ctx, job)
        return
    result = _submission(state)
    bucket = ctx.need(Buckets).output_bucket
    provider = ctx.provider(get_model(job.model).provider)
    outputs = []
    for index, url in enumerate(result.image_urls):
        try:
            png = provider.download(url)
        except ProviderError as error:
            raise _provider_error(error) from None
        key = job.output.image_key(index, len(result.image_urls))
        ctx.objects.put(bucket, key, png, "image/png")
        width, height = png_dimensions(png) or (None, None)
        outputs.append(JobOutput(s3_uri=f"s3://{bucket}/{key}", width=width, height=height))
    usage = result.usage or Usage()
    usage = Usage(
        image_count=usage.image_count or len(outputs),
        width=usage.width or outputs[0].width,
        height=usage.height or outputs[0].height,
    )
    done = ctx.jobs.transition(
        job.id, JobStatus.SUCCEEDED, now_utc(), outputs=outputs, usage=usage, completed_at=now_utc()
    )
    write_record(ctx, done)


def record_failure(ctx: Context, state: WorkflowState) -> None:
    """Every caught failure ends here: the job fails with the code and message that caused it."""
    code, message = _failure(state)
    try:
        job = ctx.jobs.get(state.job_id)
    except JobNotFound:  # the API died before recording it: nothing was accepted
        logger.warning("no job to fail", extra={"job_id": state.job_id, "code": code})
        return
    _release_lease(ctx, job, get_model(job.model))
    try:
        job = ctx.jobs.transition(
            job.id,
            JobStatus.FAILED,
            now_utc(),
            error=JobError(code=code, message=message),
            completed_at=now_utc(),
        )
    except JobConflict:
        return  # already final (canceled, or a retried step): its record stands
    logger.warning("job failed", extra={"job_id": job.id, "code": code})
    write_record(ctx, job)


def notify(ctx: Context, state: WorkflowState) -> None:
    """The one place final statuses are announced."""
    try:
        job = ctx.jobs.get(state.job_id)
    except JobNotFound:
        return  # never recorded (record_failure said so): no one to tell
    if job.status.is_final:
        announce(ctx, job)


def _submission(state: WorkflowState) -> Submission:
    """The provider's answer, which the definition puts in the state before Poll and Store."""
    if state.submission is None:
        raise JobFailed("the workflow state carries no submission", code="NoSubmission")
    return state.submission


def _failure(state: WorkflowState) -> tuple[str, str]:
    """(code, message) of the failure the definition's Catch put in the state."""
    if state.failure is None:
        return "Unknown", "the workflow state carries no failure"
    return failure_of(state.failure.Error, state.failure.Cause)


# ---- helpers ---------------------------------------------------------------------------------


def _readable_url(ctx: Context, ref: ImageRef) -> str:
    if isinstance(ref, S3Image):
        return ctx.objects.presigned_get(ref.bucket, ref.key, PRESIGNED_INPUT_SECONDS)
    return direct_url(ref)


def _provider_info(ctx: Context, spec: ModelSpec, task: ProviderTask) -> ProviderInfo:
    region = ctx.need(ProviderAccess).region.value if spec.provider is Provider.DASHSCOPE else None
    return ProviderInfo(
        name=spec.provider.value, region=region, request_id=task.request_id, task_id=task.task_id
    )


def _final_result(task: ProviderTask) -> Submission:
    if task.status is TaskStatus.SUCCEEDED:
        if not task.image_urls:
            raise JobFailed("the provider reported success without images", code="EmptyOutput")
        return Submission(image_urls=task.image_urls, usage=task.usage)
    if task.status is TaskStatus.UNKNOWN:
        raise JobFailed(
            "the provider no longer knows the task (task data lasts 24 h)", code="TaskUnknown"
        )
    raise JobFailed(
        task.error_message or f"the provider task ended {task.status.value}",
        code=task.error_code or f"Task{task.status.value.title()}",
    )


def _claim_call(ctx: Context, spec: ModelSpec) -> None:
    while (wait := ctx.limits.claim_call(spec.family, spec.rate_limit, time.time())) > 0:
        if wait > MAX_SLEEP_FOR_SLOT:
            raise NotAdmitted(f"{spec.family} has no call slot for {wait:.1f} s")
        time.sleep(wait)


def _release_lease(ctx: Context, job: Job, spec: ModelSpec) -> None:
    if spec.max_concurrent_tasks is not None:
        ctx.limits.release_lease(spec.family, job.id)


def reconcile(ctx: Context, job_id: str, execution_status: str, cause: str | None) -> None:
    """An execution ended without reaching Notify (FAILED, TIMED_OUT, ABORTED): make the job
    final with the reason, and announce it, so no accepted job is ever left hanging."""
    try:
        job = ctx.jobs.get(job_id)
    except JobNotFound:
        return  # started by an API call that died before recording it: nothing was accepted
    if job.status is JobStatus.CANCELED and execution_status == "ABORTED":
        return  # a cancel stops the execution and announces itself
    if not job.status.is_final:
        error = "Execution" + execution_status.title().replace("_", "")
        record_failure(
            ctx,
            WorkflowState(
                job_id=job_id,
                failure=Failure(
                    Error=error, Cause=cause or f"the workflow execution ended {execution_status}"
                ),
            ),
        )
    notify(ctx, WorkflowState(job_id=job_id))
