"""Routes of the model catalog."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from qwen_edit.domain.catalog import MODELS
from qwen_edit.entrypoints.api.responses import answer
from qwen_edit.entrypoints.api.schemas import ModelCatalog, answers

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves __init__ unannotated


@router.get(
    "/models",
    operation_id="list_models",
    summary="The model catalog and each model's limits",
    responses=answers(200, "every model the service can call", ModelCatalog),
)
def list_models() -> Response[str]:
    return answer(200, _catalog())


@cache
def _catalog() -> dict[str, Any]:
    catalog = ModelCatalog.model_validate({"models": [m.describe() for m in MODELS.values()]})
    return catalog.model_dump(mode="json", by_alias=True)
