"""The DashScope API key from Secrets Manager (cached by Powertools; never logged)."""

from __future__ import annotations

import json
import logging
from typing import Any

from aws_lambda_powertools.utilities import parameters

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


def provider_api_key(secret_arn: str, reader: parameters.SecretsProvider | None = None) -> str:
    """The secret is the bare key, or a JSON object with an `api_key` field."""
    value = _read(secret_arn, reader)
    if isinstance(value, bytes):
        value = value.decode()
    text = str(value).strip()
    if text.startswith("{"):
        text = str(json.loads(text).get("api_key", "")).strip()
    if not text:
        raise ValueError(f"the secret {secret_arn} holds no API key")
    return text
