"""Routes of usage: the tenant's jobs, images, provider calls and estimated cost over a range."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from qwen_edit import runtime
from qwen_edit.app import service
from qwen_edit.domain.usage import MAX_RANGE, GroupBy, UsageReport, When
from qwen_edit.entrypoints.api.responses import answer
from qwen_edit.entrypoints.api.schemas import answers
from qwen_edit.entrypoints.api.tenants import tenant_of

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves __init__ unannotated

_WHEN = "an RFC 3339 time with its offset, or a date (00:00 UTC of that day)"


@router.get(
    "/usage",
    operation_id="get_usage",
    summary="Your usage over a time range: jobs, images, provider calls, estimated cost",
    description=f"Counts your jobs created in [from, to), at most {MAX_RANGE.days} days apart. "
    "The cost is an estimate: images times the operator's price per image (`pricing` says "
    "where the prices come from).",
    responses=answers(200, "the numbers per group and in total", UsageReport, also=(422,)),
)
def get_usage(
    start: Annotated[
        When | None, Query(alias="from", description=f"{_WHEN}; default: 7 days before to")
    ] = None,
    end: Annotated[When | None, Query(alias="to", description=f"{_WHEN}; default: now")] = None,
    group_by: Annotated[GroupBy, Query(description="day (UTC date of creation) or model")] = (
        GroupBy.DAY
    ),
) -> Response[str]:
    usage = service.usage(
        runtime.context("api"),
        tenant_of(router.current_event),
        start=start,
        end=end,
        group_by=group_by,
    )
    return answer(200, usage.model_dump(mode="json", by_alias=True))
