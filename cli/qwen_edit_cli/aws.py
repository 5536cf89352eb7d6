"""AWS clients for the operator's commands (`admin tenants`, `events put`)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def aws_client(service: str, args: argparse.Namespace) -> Any:
    """A boto3 client of `service`: the environment's AWS (credentials, region, --endpoint-url),
    or with --ready-file the local stack's, where moto serves every AWS API on one port. It
    takes any credentials, so the environment's real ones are never sent there."""
    import boto3

    endpoint, region = args.endpoint_url, args.region
    options: dict[str, Any] = {}
    if args.ready_file is not None:
        ready = json.loads(args.ready_file.read_text())
        endpoint, region = endpoint or ready["s3_endpoint_url"], region or ready["region"]
        options = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
    return boto3.client(service, endpoint_url=endpoint, region_name=region, **options)
