"""The pool of provider keys: which keys may serve a job, and when a key is dead.

A deployment has one default key (DashScopeApiKeySecretArn, id `default`, serving every
provider, as before the pool) and optionally more (ProviderKeysSecretArn). The dispatcher paces
each key as its own bucket per model family (domain/dispatch.py). A key reserved for a tenant
(the tenants table's `provider_key`) serves that tenant's jobs only, and that tenant's jobs run
only on it. A key that answers 401, or 403 AccessDenied, is dead until an operator puts it back.

Values only: the key material never enters the domain (adapters/secrets.py keeps it).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from pydantic import BaseModel, ConfigDict, Field

from qwen_edit.domain.catalog import Provider
from qwen_edit.domain.provider import ProviderError, Region

DEFAULT_KEY_ID = "default"
KEY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
NO_KEY_CODE = "NoProviderKey"


class PoolKey(BaseModel):
    """A key as the scheduler sees it: its id, what it serves, and its region."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    id: str = Field(pattern=KEY_ID_PATTERN)
    providers: frozenset[Provider]
    region: Region | None = None  # DashScope keys only: keys are per region


def rejects_the_key(error: ProviderError) -> bool:
    """401 (InvalidApiKey), or 403 AccessDenied…: the key itself is refused, whatever the
    request. No other key's answer changes by retrying with this one."""
    if error.http_status == 401:
        return True
    return error.http_status == 403 and (error.code or "").startswith("AccessDenied")


def bucket(key_id: str, family: str) -> str:
    """The name of one key's clock for one family, in the dispatcher's handed-over state. The
    default key keeps the bare family name, so a single-key deployment's state is unchanged."""
    return family if key_id == DEFAULT_KEY_ID else f"{key_id}/{family}"


def shared_keys(
    pool: Collection[PoolKey],
    provider: Provider,
    dead: Collection[str],
    reserved: Mapping[str, str],
) -> list[str]:
    """The live keys for `provider` that no tenant holds as its own, in id order."""
    held = set(reserved.values())
    return sorted(
        k.id for k in pool if provider in k.providers and k.id not in dead and k.id not in held
    )


def own_key(
    tenant: str,
    pool: Collection[PoolKey],
    provider: Provider,
    dead: Collection[str],
    reserved: Mapping[str, str],
) -> str | None:
    """The tenant's own key if it is live and serves `provider`, else None (its jobs fail:
    another tenant's key, or a shared one, is never used instead)."""
    key_id = reserved[tenant]
    serves = any(k.id == key_id and provider in k.providers for k in pool)
    return key_id if serves and key_id not in dead else None
