"""Who is calling: the API key id API Gateway puts in the request context is the tenant."""

from __future__ import annotations

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent

from qwen_edit import runtime
from qwen_edit.domain.errors import Unauthorized
from qwen_edit.domain.jobs import UPLOAD_TENANT
from qwen_edit.settings import ApiOnly


def tenant_of(event: BaseProxyEvent) -> str:
    """The caller's API key id; an operator key acts for the upload-triggered jobs."""
    if not isinstance(event, APIGatewayProxyEvent):  # the REST resolver always makes one
        raise Unauthorized("send your API key in the x-api-key header")
    tenant = event.request_context.identity.api_key_id
    if not tenant:
        raise Unauthorized("send your API key in the x-api-key header")
    if tenant in runtime.context("api").need(ApiOnly).operator_api_key_ids:
        return UPLOAD_TENANT
    return tenant
