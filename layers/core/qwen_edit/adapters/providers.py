"""Builds the client for a model's provider from the deployment's settings."""

from __future__ import annotations

import httpx

from qwen_edit.adapters.dashscope import DashScopeClient
from qwen_edit.adapters.task_api import TaskApiClient
from qwen_edit.domain.catalog import Provider
from qwen_edit.domain.provider import Region
from qwen_edit.ports import ImageProvider
from qwen_edit.settings import ProviderAccess


def provider_client(
    provider: Provider,
    settings: ProviderAccess,
    api_key: str,
    *,
    region: Region | None = None,
    transport: httpx.BaseTransport | None = None,
) -> ImageProvider:
    """`region`: the key's (a pool key may be of another region than DashScopeRegion)."""
    if provider is Provider.TASK_API:
        if not settings.task_api_base_url:
            raise ValueError("TASK_API_BASE_URL is not configured for the task-api provider")
        return TaskApiClient(api_key, base_url=settings.task_api_base_url, transport=transport)
    return DashScopeClient(
        api_key, region=region or settings.region, base_url=settings.base_url, transport=transport
    )
