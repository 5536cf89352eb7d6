"""Keep URL credentials out of what the service stores, announces and logs.

Providers and HTTP errors echo the URLs they were given, and the service gives the provider
presigned S3 URLs whose query string carries X-Amz-Credential, X-Amz-Security-Token and
X-Amz-Signature. Every error message that reaches a job record, an event, a webhook or a log
line passes through `redact` first.
"""

from __future__ import annotations

import re

# A URL's query string (or an X-Amz-* parameter standing alone) up to whitespace or a quote.
_URL_QUERY = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?#\"'<>]*)\?[^\s\"'<>]*", re.IGNORECASE)
_AMZ_PARAMETER = re.compile(r"(X-Amz-[A-Za-z-]+)=[^&\s\"'<>]*", re.IGNORECASE)
REDACTED = "<redacted>"


def redact(text: str) -> str:
    """`text` with every URL's query string, and any X-Amz-* parameter value, replaced."""
    text = _URL_QUERY.sub(rf"\1?{REDACTED}", text)
    return _AMZ_PARAMETER.sub(rf"\1={REDACTED}", text)
