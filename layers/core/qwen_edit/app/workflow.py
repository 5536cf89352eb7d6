"""The steps of the job workflow (statemachine/job.asl.json), one function per Task state.

State carried between steps stays small (SPEC §4): the job id, and the provider's task id or
result URLs. Images live in S3, records in DynamoDB. The provider call itself is the
dispatcher's (app/dispatcher.py): Admit queues the job and its workflow waits for it.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict

from qwen_edit.app.key_pool import key_died, key_of_task
from qwen_edit.app.lifecycle import announce, expire, load_job, note, settle, write_record
from qwen_edit.context import Context
from qwen_edit.domain import chains
from qwen_edit.domain.catalog import ModelSpec, get_model
from qwen_edit.domain.dispatch import Answer, QueueEntry
from qwen_edit.domain.errors import (
    DeadlineExceeded,
    JobConflict,
    JobFailed,
    JobNotFound,
    JobNotRecorded,
    ProviderRetryable,
    TaskPending,
    failure_of,
)
from qwen_edit.domain.images import ImageRef, S3Image, direct_url, png_dimensions
from qwen_edit.domain.jobs import (
    Cursor,
    Job,
    JobError,
    JobOutput,
    JobStatus,
    Step,
    StepResult,
    event,
    now_utc,
)
from qwen_edit.domain.provider import (
    ProviderError,
    ProviderTask,
    TaskStatus,
    Usage,
)
from qwen_edit.settings import Buckets

logger = Logger(child=True)
PRESIGNED_INPUT_SECONDS = 3600  # how long the provider may take to fetch an s3:// input
OUTCOME_UNKNOWN = (
    "the provider may have received the call but its answer was lost; it is not sent again, "
    "so as not to create (and pay for) a second task: submit the job anew if you need it"
)


class Submission(BaseModel):
    model_config = ConfigDict(defer_build=True)
    task_id: str | None = None  # set for async tasks until they are final
    image_urls: list[str] = []
    usage: Usage | None = None
    cursor: Cursor | None = None  # a multi-step job's call that made it


class Stored(BaseModel):
    """Store's answer: whether the job has another call to make (a multi-step job)."""

    model_config = ConfigDict(defer_build=True)

    more: bool = False


class Failure(BaseModel):
    model_config = ConfigDict(defer_build=True)
    Error: str
    Cause: str | None = None


class WorkflowState(BaseModel):
    model_config = ConfigDict(defer_build=True)
    job_id: str
    submission: Submission | None = None
    failure: Failure | None = None


def _provider_error(error: ProviderError) -> Exception:
    """The provider's "try later" becomes a retry; anything else fails the job, code kept."""
    if error.retryable:
        return ProviderRetryable(error.message, code=error.code)
    return JobFailed(error.message, code=error.code)


KEY_DEAD = "the provider key that created this job's task was taken out of the pool (401/403)"
KEY_DEAD_CODE = "ProviderKeyDead"


def _check_deadline(job: Job, at: float) -> None:
    if at >= job.deadline_at.timestamp():
        raise DeadlineExceeded(
            f"the job did not finish by its deadline {job.deadline_at.isoformat()}"
        )


class AdmitRequest(BaseModel):
    """The Admit state's payload: the job, and the task token its workflow waits on."""

    model_config = ConfigDict(defer_build=True)

    job_id: str
    task_token: str


def admit(ctx: Context, request: AdmitRequest) -> None:
    """Queue the job for its provider call; the dispatcher resumes the workflow with the answer
    (a task id, or result URLs) or a failure. Run again (a retried Admit), it keeps the job's
    place and gives the dispatcher the new token."""
    job = _recorded_job(ctx, request.job_id)
    if job.status.is_final:  # canceled before it was queued
        raise JobConflict(f"job {job.id} is already {job.status.value}")
    now = time.time()
    _check_deadline(job, now)
    # The start deadline is the first call's: a later step of a multi-step job runs on.
    first_call = job.status is JobStatus.QUEUED
    start_by = job.start_by.timestamp() if job.start_by and first_call else None
    if start_by is not None and start_by <= now:
        expire(ctx, job)
        raise JobConflict(f"job {job.id} was not started by its deadline: canceled")
    entry = QueueEntry(
        job_id=job.id,
        tenant=job.tenant,
        family=get_model(job.current_model).family,
        lane=job.lane,
        enqueued_at=now,
        deadline_at=job.deadline_at.timestamp(),
        start_by=start_by,
    )
    ctx.queue.put(entry, request.task_token)
    note(ctx, job.id, event(Step.ADMITTED, f"{job.step_prefix}{job.lane.value} lane"))
    if not ctx.dispatch_lease.held(now):
        try:
            ctx.wake_dispatcher()
        except Exception:  # the schedule wakes one within a minute: never lose the job here
            logger.exception("could not wake the dispatcher", extra={"job_id": job.id})


def _recorded_job(ctx: Context, job_id: str) -> Job:
    """The job, which the API records just after starting its workflow: a short look here
    first (it is usually milliseconds away), then the Admit state's Retry."""
    for pause in (0.05, 0.1, 0.2):
        with contextlib.suppress(JobNotFound):
            return load_job(ctx, job_id)
        time.sleep(pause)
    try:
        return load_job(ctx, job_id)
    except JobNotFound:
        raise JobNotRecorded(f"job {job_id} is not recorded (yet)") from None


def poll(ctx: Context, state: WorkflowState) -> Submission:
    """Ask the provider once; TaskPending makes the Poll state's Retry ask again later."""
    job = load_job(ctx, state.job_id)
    spec = get_model(job.current_model)
    submission = _submission(state)
    task_id = submission.task_id
    if task_id is None:
        raise JobFailed("the workflow polled a job without a provider task", code="NoTask")
    _check_deadline(job, time.time())
    key = key_of_task(job)
    if key in ctx.key_health.dead():  # its task is that key's account's: no other key reads it
        raise JobFailed(f"{KEY_DEAD}; its task cannot be read with another key", code=KEY_DEAD_CODE)
    ctx.metrics.count("Polls", Family=spec.family)
    try:
        task = ctx.provider(spec.provider, key).fetch(task_id)
    except ProviderError as error:
        answer = Answer.of(error)
        count_provider_answer(ctx, answer)
        if answer is Answer.KEY_REFUSED:
            key_died(ctx, key, error.code or str(error.http_status))
        retried = event(Step.RETRIED, f"poll: {error.code}") if error.retryable else None
        note(ctx, job.id, retried, provider_calls=int(answer.sent), polls=1)
        if error.retryable:  # the next poll is the retry
            raise TaskPending(f"polling failed for now: {error.code}") from None
        raise JobFailed(error.message, code=error.code) from None
    count_provider_answer(ctx, Answer.OK)
    status = task.status.value
    changed = status != job.provider_status  # one event per status the task goes through
    answered = event(Step.ANSWERED, status, polls=job.polls + 1) if changed else None
    note(ctx, job.id, answered, status, provider_calls=1, polls=1)
    if not task.status.is_final:
        raise TaskPending(f"task {task_id} is {task.status.value}")
    _release_lease(ctx, job, spec)
    return final_result(task).model_copy(update={"cursor": submission.cursor})


def store(ctx: Context, state: WorkflowState) -> Stored:
    """Copy the call's results into the output bucket; then complete the record, or, for a
    multi-step job with calls left, move it to its next call."""
    job = load_job(ctx, state.job_id)
    if job.status.is_final:  # a retried Store after success, or a job canceled meanwhile
        if job.status is JobStatus.SUCCEEDED:
            write_record(ctx, job)
        return Stored()
    result = _submission(state)
    if result.cursor != job.cursor:  # a retried Store of a call stored already: go on
        return Stored(more=True)
    step = _stored_outputs(ctx, job, result)
    chain: dict[str, Any] = {}  # a multi-step job's step results
    if job.cursor is None:
        outputs, usage = step.outputs, _usage(result.usage, step)
        stored = f"{len(outputs)} image(s)"
    else:
        results, following = chains.advance(job, job.cursor, step)
        stored = f"{job.step_prefix}{len(step.outputs)} image(s)"
        if following is not None:
            # A dispatcher that died between answering and removing left this call's entry:
            # the next Admit must put a new one (its own family, attempts and claim).
            ctx.queue.remove(job.tenant, job.id)
            ctx.jobs.update(
                job.id,
                now_utc(),
                step_results=results,
                cursor=following,
                provider=None,  # the next call's, once it is made
                provider_call=None,
                provider_status=None,
            )
            note(ctx, job.id, event(Step.STORED, stored))
            return Stored(more=True)
        chain["step_results"] = results
        outputs = results[-1].outputs
        usage = Usage(
            image_count=sum(r.images for r in results),
            width=outputs[0].width,
            height=outputs[0].height,
        )
    done = ctx.jobs.transition(
        job.id,
        JobStatus.SUCCEEDED,
        now_utc(),
        outputs=outputs,
        usage=usage,
        completed_at=now_utc(),
        **chain,
    )
    note(ctx, job.id, event(Step.STORED, stored))
    write_record(ctx, done)
    return Stored()


def _stored_outputs(ctx: Context, job: Job, result: Submission) -> StepResult:
    """The call's images, downloaded and put in the output bucket, with the provider's
    count. An earlier step's go beside the last step's (OutputTarget.image_key)."""
    bucket = ctx.need(Buckets).output_bucket
    provider = ctx.provider(get_model(job.current_model).provider, key_of_task(job))
    at, last = job.cursor, len(job.models) - 1
    step = None if at is None or at.step == last else at.step
    done = len(job.step_results[at.step].outputs) if at and at.step < len(job.step_results) else 0
    count = chains.planned_images(job, at.step) if at else len(result.image_urls)
    outputs = []
    for index, url in enumerate(result.image_urls):
        try:
            png = provider.download(url)
        except ProviderError as error:
            if error.retryable:
                note(ctx, job.id, event(Step.RETRIED, f"download: {error.code}"))
            raise _provider_error(error) from None
        key = job.output.image_key(done + index, count, step)
        ctx.objects.put(bucket, key, png, "image/png")
        width, height = png_dimensions(png) or (None, None)
        outputs.append(JobOutput(s3_uri=f"s3://{bucket}/{key}", width=width, height=height))
    images = (result.usage.image_count if result.usage else 0) or len(outputs)
    return StepResult(model=job.current_model, outputs=outputs, images=images)


def _usage(counted: Usage | None, step: StepResult) -> Usage:
    """The provider's count, completed from the stored outputs where it said nothing."""
    counted = counted or Usage()
    return Usage(
        image_count=step.images,
        width=counted.width or step.outputs[0].width,
        height=counted.height or step.outputs[0].height,
    )


def record_failure(ctx: Context, state: WorkflowState) -> None:
    """Every caught failure ends here: the job fails with the code and message that caused it."""
    code, message = _failure(state)
    try:
        job = load_job(ctx, state.job_id)
    except JobNotFound:  # the API died before recording it: nothing was accepted
        logger.warning("no job to fail", extra={"job_id": state.job_id, "code": code})
        return
    _release_lease(ctx, job, get_model(job.current_model))
    if job.status.is_final:  # ended already: by its client, or canceled at its start deadline
        write_record(ctx, job)  # by the dispatcher or Admit, which have no output bucket
        return
    try:
        job = ctx.jobs.transition(
            job.id,
            JobStatus.FAILED,
            now_utc(),
            error=_step_error(job, code, message),
            completed_at=now_utc(),
        )
    except JobConflict:
        return  # already final (canceled, or a retried step): its record stands
    note(ctx, job.id, event(Step.FAILED, code))
    logger.warning("job failed", extra={"job_id": job.id, "code": code})
    write_record(ctx, job)


def _step_error(job: Job, code: str, message: str) -> JobError:
    """A multi-step job's error names the step that failed (its outputs so far stay)."""
    if job.cursor is None:
        return JobError(code=code, message=message)
    step = job.cursor.step
    return JobError(code=code, message=f"step {step} ({job.current_model}): {message}", step=step)


def notify(ctx: Context, state: WorkflowState) -> None:
    """The one place final statuses are announced."""
    try:
        job = load_job(ctx, state.job_id)
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


def readable_url(ctx: Context, ref: ImageRef) -> str:
    if isinstance(ref, S3Image):
        return ctx.objects.presigned_get(ref.bucket, ref.key, PRESIGNED_INPUT_SECONDS)
    return direct_url(ref)


def final_result(task: ProviderTask) -> Submission:
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


def count_provider_answer(ctx: Context, answer: Answer) -> None:
    """1 or 0 for every provider call, submit or poll, undimensioned: its average is the
    provider's error rate, which one alarm watches across families."""
    ctx.metrics.count("ProviderCallFailed", int(answer.provider_failed))


def _release_lease(ctx: Context, job: Job, spec: ModelSpec) -> None:
    if spec.max_concurrent_tasks is not None:
        ctx.limits.release_lease(spec.family, job.id)


def reconcile(ctx: Context, job_id: str, execution_status: str, cause: str | None) -> None:
    """An execution ended without reaching Notify (FAILED, TIMED_OUT, ABORTED): make the job
    final with the reason, and announce it, so no accepted job is ever left hanging."""
    try:
        job = load_job(ctx, job_id)
    except JobNotFound:
        return  # started by an API call that died before recording it: nothing was accepted
    if job.status is JobStatus.CANCELED and execution_status == "ABORTED":
        # A cancel stops the execution and announces itself; its settlement is made again
        # here (once at most), in case its function died before.
        settle(ctx, job)
        return
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
