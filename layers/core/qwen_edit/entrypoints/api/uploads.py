"""Routes of inputs: a presigned PUT for an image the tenant then names in `images`."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from qwen_edit import runtime
from qwen_edit.app import service
from qwen_edit.entrypoints.api.responses import answer
from qwen_edit.entrypoints.api.schemas import Upload, UploadRequest, answers
from qwen_edit.entrypoints.api.tenants import tenant_of

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves __init__ unannotated


@router.post(
    "/uploads",
    operation_id="create_upload",
    summary="A presigned PUT for one input image",
    responses=answers(
        201,
        "PUT the bytes to upload_url with these headers, then pass image",
        Upload,
        also=(422,),
    ),
)
def create_upload(request: Annotated[UploadRequest, Body()]) -> Response[str]:
    upload = service.new_upload(
        runtime.context("api"),
        tenant_of(router.current_event),
        request.content_type,
        request.content_length,
    )
    return answer(201, upload)
