"""Routes of the model catalog."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from qwen_edit.domain.catalog import MODELS
from qwen_edit.entrypoints.api.responses import answer

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves __init__ unannotated


@router.get("/models", summary="The model catalog and each model's limits")
def list_models() -> Response[str]:
    return answer(200, {"models": [model.describe() for model in MODELS.values()]})
