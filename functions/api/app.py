"""The public REST API (SPEC §3) behind API Gateway, stage v1, API key required.

The routes live in qwen_edit.entrypoints.api (jobs, uploads, catalog, usage); every error leaves
through one envelope, {"error": {"code", "message", "details"}}, with the status its class
declares (qwen_edit.domain.errors); API Gateway's own refusals use the same envelope
(template.yaml's GatewayResponses).
"""

from __future__ import annotations

from qwen_edit.entrypoints.startup import imports_without_gc

with imports_without_gc():  # cold start: see qwen_edit/entrypoints/startup.py
    import json
    from typing import Any

    from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

    from qwen_edit import runtime
    from qwen_edit.domain.catalog import Capability
    from qwen_edit.domain.errors import BadRequest
    from qwen_edit.entrypoints import request_body
    from qwen_edit.entrypoints.api import (
        catalog,
        console,
        contract,
        jobs,
        responses,
        uploads,
        usage,
    )
    from qwen_edit.entrypoints.api.schemas import OpenApiDocument, answers, error_envelope
    from qwen_edit.entrypoints.lambda_handlers import logger
    from qwen_edit.settings import Requests

# With SnapStart on: what the snapshot may hold (the clients' data of a first request: create,
# read, presign), and what a restore drops.
runtime.snapstart(services=("dynamodb", "stepfunctions", "s3"))
app = APIGatewayRestResolver(enable_validation=True)
responses.install(app)
for routes in (jobs.router, uploads.router, catalog.router, usage.router, console.router):
    app.include_router(routes)


@app.get(
    "/openapi.json",
    operation_id="get_openapi",
    summary="This API's OpenAPI document",
    responses=answers(200, "this document", OpenApiDocument),
)
def openapi() -> Response[str]:
    settings = runtime.context("api").need(Requests)
    defaults = {
        Capability.EDIT: settings.default_model,
        Capability.TEXT_TO_IMAGE: settings.default_generation_model,
    }
    return responses.answer(200, json.loads(openapi_document(defaults)))


def openapi_document(default_models: dict[Capability, str] | None = None) -> str:
    """The document, with the per-model rules of the deployment's default models (the
    settings' defaults when none are given: docs/openapi.json)."""
    # Powertools' OpenAPI models (about 50 ms to import) load only when the document is asked
    # for: the resolver validates requests without them.
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, Server

    document = app.get_openapi_schema(
        title="qwen-edit",
        version="1.0.0",
        servers=[Server(url="/v1")],
        description="Durable Qwen image editing and generation (see README.md).",
        security_schemes={"apiKey": APIKey.model_validate({"name": "x-api-key", "in": "header"})},
        security=[{"apiKey": []}],
    ).model_dump(mode="json", by_alias=True, exclude_none=True)
    if default_models is None:
        fields = Requests.model_fields
        default_models = {
            Capability.EDIT: fields["default_model"].default,
            Capability.TEXT_TO_IMAGE: fields["default_generation_model"].default,
        }
    return json.dumps(contract.refine(document, default_models), indent=2)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    jobs.IDEMPOTENCY.register_lambda_context(context)  # in-progress records expire with the call
    try:
        event = request_body.normalized_event(event)
    except BadRequest as error:
        detail = {"field": "body", "rule": "json", "message": error.message}
        return {
            "statusCode": error.http_status,
            "headers": {"Content-Type": "application/json"},
            "isBase64Encoded": False,
            "body": json.dumps(error_envelope(error.code, error.message, [detail])),
        }
    return app.resolve(event, context)
