"""Provider keys and the webhook secret from Secrets Manager (cached by Powertools; never
logged: key material stays in SecretStr until the client's Authorization header)."""

from __future__ import annotations

import json
import logging
from typing import Any

from aws_lambda_powertools.utilities import parameters
from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, ValidationError

from qwen_edit.domain.catalog import Provider
from qwen_edit.domain.errors import JobFailed
from qwen_edit.domain.provider import Region
from qwen_edit.domain.provider_keys import DEFAULT_KEY_ID, KEY_ID_PATTERN, NO_KEY_CODE, PoolKey

CACHE_SECONDS = 300

# botocore's DEBUG log prints whole responses, GetSecretValue's secret included: whatever the
# function's log level, now or set later, botocore logs from INFO up. Its own level is set (not
# left to inherit), so raising the root logger's level cannot lower it.
_botocore_log = logging.getLogger("botocore")
if _botocore_log.level < logging.INFO:
    _botocore_log.setLevel(logging.INFO)


def secrets_reader(client: Any) -> parameters.SecretsProvider:
    """Secrets read through the function's own Secrets Manager client. Powertools' default
    reader (`parameters.get_secret`) builds a boto3 session of its own, tens of milliseconds of
    a cold start spent loading botocore's data a second time."""
    return parameters.SecretsProvider(boto3_client=client)


def _read(secret_arn: str, reader: parameters.SecretsProvider | None) -> Any:
    if reader is None:
        return parameters.get_secret(secret_arn, max_age=CACHE_SECONDS)
    return reader.get(secret_arn, max_age=CACHE_SECONDS)


def webhook_signing_secret(
    secret_arn: str, reader: parameters.SecretsProvider | None = None
) -> str:
    """The stack generates 32 base64 characters; Standard Webhooks names them whsec_<…>."""
    value = str(_read(secret_arn, reader)).strip()
    return value if value.startswith("whsec_") else f"whsec_{value}"


def _secret_text(secret_arn: str, reader: parameters.SecretsProvider | None = None) -> str:
    value = _read(secret_arn, reader)
    return (value.decode() if isinstance(value, bytes) else str(value)).strip()


def provider_api_key(secret_arn: str, reader: parameters.SecretsProvider | None = None) -> str:
    """The default key's secret is the bare key, or a JSON object with an `api_key` field."""
    text = _secret_text(secret_arn, reader)
    if text.startswith("{"):
        text = str(json.loads(text).get("api_key", "")).strip()
    if not text:
        raise ValueError(f"the secret {secret_arn} holds no API key")
    return text


class StoredKey(BaseModel):
    """One entry of the pool's secret (ProviderKeysSecretArn)."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    id: str = Field(pattern=KEY_ID_PATTERN)
    api_key: SecretStr = Field(min_length=1)
    provider: Provider = Provider.DASHSCOPE
    region: Region | None = None  # DashScope keys; unset: DashScopeRegion


_POOL = TypeAdapter(list[StoredKey])


def pool_keys(secret_arn: str, reader: parameters.SecretsProvider | None = None) -> list[StoredKey]:
    """The pool's secret: a JSON list of {id, api_key, provider?, region?}. A malformed one
    fails naming the entry's field, never echoing the value."""
    try:
        keys = _POOL.validate_json(_secret_text(secret_arn, reader))
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['type']}" for e in error.errors()
        )
        raise ValueError(f"the secret {secret_arn} is not a list of keys ({problems})") from None
    ids = [key.id for key in keys]
    if DEFAULT_KEY_ID in ids or len(set(ids)) != len(ids):
        raise ValueError(f"the secret {secret_arn}: key ids must be unique and not 'default'")
    return keys


class KeyRing:
    """The deployment's keys: the default one (every provider, DashScopeRegion) and the pool's."""

    def __init__(
        self,
        default_secret_arn: str,
        pool_secret_arn: str | None,
        region: Region,
        reader: parameters.SecretsProvider | None = None,
    ):
        self.default_secret_arn, self.pool_secret_arn = default_secret_arn, pool_secret_arn
        self.region, self.reader = region, reader

    def pool(self) -> list[PoolKey]:
        return [key for key, _ in self._all()]

    def material(self, key_id: str) -> tuple[PoolKey, SecretStr]:
        for key, material in self._all():
            if key.id == key_id:
                return key, material
        raise JobFailed(f"the provider key {key_id!r} is not in the pool", code=NO_KEY_CODE)

    def _all(self) -> list[tuple[PoolKey, SecretStr]]:
        default = PoolKey(id=DEFAULT_KEY_ID, providers=frozenset(Provider), region=self.region)
        keys = [(default, SecretStr(provider_api_key(self.default_secret_arn, self.reader)))]
        pool = pool_keys(self.pool_secret_arn, self.reader) if self.pool_secret_arn else []
        for stored in pool:
            dashscope = stored.provider is Provider.DASHSCOPE
            region = (stored.region or self.region) if dashscope else None
            key = PoolKey(id=stored.id, providers=frozenset({stored.provider}), region=region)
            keys.append((key, stored.api_key))
        return keys
