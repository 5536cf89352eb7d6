"""GET /console: the web console, one static HTML page (console.html beside this module).

It loads without an API key (template.yaml declares the route keyless); every data call it makes
sends the key the user types. Its inline script and style are allowed by their hashes, so the
Content-Security-Policy admits no other script or style, and no third-party origin at all.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from qwen_edit import runtime
from qwen_edit.entrypoints.api.responses import error
from qwen_edit.settings import ApiOnly, Buckets

PAGE = Path(__file__).with_name("console.html")
router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves __init__ unannotated


@cache
def page() -> str:
    return PAGE.read_text(encoding="utf-8")


def _hashes(tag: str) -> str:
    """CSP source expressions of every inline <tag> element of the page, by content hash."""
    bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", page(), flags=re.DOTALL)
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in bodies
    )


@cache
def _bucket_origins() -> str:
    """Where presigned URLs point (outputs and inputs to show, uploads to PUT): S3's virtual
    host of each bucket in AWS, the local stack's S3 endpoint offline. Presigning a probe key is
    local computation (no request), and it is the only way to know the exact origin."""
    ctx = runtime.context("api")
    buckets = ctx.need(Buckets)
    origins = []
    for bucket in (buckets.output_bucket, buckets.input_bucket):
        url = urlsplit(ctx.objects.presigned_get(bucket, "console-origin-probe", 60))
        origins.append(f"{url.scheme}://{url.netloc}")
    return " ".join(dict.fromkeys(origins))


def security_headers() -> dict[str, str]:
    s3 = _bucket_origins()
    policy = "; ".join(
        [
            "default-src 'none'",
            f"script-src {_hashes('script')}",
            f"style-src {_hashes('style')}",
            f"img-src 'self' data: blob: {s3}",  # previews of chosen files are blob: URLs
            f"connect-src 'self' {s3}",  # the API, and the presigned PUT of an upload
            "form-action 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",  # for browsers that predate frame-ancestors
        "Referrer-Policy": "no-referrer",  # presigned URLs must not leak to other sites
        "Cache-Control": "no-cache",
    }


@router.get("/console", include_in_schema=False)
def console() -> Response[str]:
    if runtime.context("api").need(ApiOnly).console != "enabled":
        return error(404, "NotFound", "no route GET /console")  # off: as if it were not there
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=page(),
        headers=security_headers(),
    )
