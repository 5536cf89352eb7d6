"""`qwen-edit admin tenants …`: the operator's per-tenant settings, written straight to the
tenants table with AWS credentials (IAM). No tenant API key can reach them: the API has no
route to this table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from qwen_edit.adapters.tenants import DynamoTenantStore
from qwen_edit.domain.jobs import now_utc
from qwen_edit.domain.tenants import TenantSettings, stamped
from qwen_edit_cli.aws import aws_client

LOCAL_TABLE_SUFFIX = "-TenantsTable"  # the local stack names tables <stack>-<logical id>


def add_commands(commands: Any) -> None:
    admin = commands.add_parser("admin", help="operator commands (AWS credentials, not API keys)")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True)
    tenants = admin_commands.add_parser("tenants", help="per-tenant settings: caps, lane, keys")
    verbs = tenants.add_subparsers(dest="tenants_command", required=True)

    def where(command: argparse.ArgumentParser) -> None:
        command.add_argument("--table", help="the stack's TenantsTableName output")
        command.add_argument(
            "--ready-file", type=Path, help="the ready file of `qwen-edit local serve`"
        )
        command.add_argument("--endpoint-url", help="a DynamoDB endpoint (default: AWS's)")
        command.add_argument("--region", help="default: the environment's (AWS_DEFAULT_REGION)")

    listing = verbs.add_parser("list", help="every tenant with settings")
    where(listing)
    listing.set_defaults(run=lambda a: _print([s.model_dump(mode="json") for s in _store(a).all()]))
    get = verbs.add_parser("get", help="one tenant's settings")
    get.add_argument("tenant", help="the tenant: its API key id")
    where(get)
    get.set_defaults(run=_get)
    put = verbs.add_parser("set", help="set (change) a tenant's settings")
    put.add_argument("tenant")
    put.add_argument("--monthly-cap", type=float, help="spend cap per UTC month (prices' currency)")
    put.add_argument("--daily-cap", type=float, help="spend cap per UTC day")
    put.add_argument(
        "--observe-only",
        action=argparse.BooleanOptionalAction,
        dest="observe_only",
        help="--observe-only records what the caps would refuse; --no-observe-only enforces",
    )
    put.add_argument("--enforce", action="store_false", dest="observe_only")
    put.add_argument("--lane", choices=["interactive", "batch"], help="default lane")
    put.add_argument("--max-queued", type=int, help="overrides MaxQueuedJobsPerTenant")
    put.add_argument("--provider-key", help="id of a pool key reserved for this tenant")
    put.add_argument(
        "--webhook-url", help="where the tenant hears of its budget thresholds (signed)"
    )
    put.set_defaults(observe_only=None)
    where(put)
    put.set_defaults(run=_set)
    clear = verbs.add_parser("clear-cap", help="remove a tenant's spend caps")
    clear.add_argument("tenant")
    where(clear)
    clear.set_defaults(run=_clear_cap)


def _store(args: argparse.Namespace) -> DynamoTenantStore:
    client, table = aws_client("dynamodb", args), args.table
    if table is None:
        names = client.list_tables()["TableNames"]
        found = [name for name in names if name.endswith(LOCAL_TABLE_SUFFIX)]
        if args.ready_file is None or len(found) != 1:
            raise SystemExit("qwen-edit: pass --table (the stack's TenantsTableName output)")
        table = found[0]
    return DynamoTenantStore(table, client)


def _print(document: Any) -> int:
    print(json.dumps(document, indent=2))
    return 0


def _get(args: argparse.Namespace) -> int:
    found = _store(args).get(args.tenant)
    if found is None:
        raise SystemExit(f"qwen-edit: no settings for {args.tenant} (the defaults apply)")
    return _print(found.model_dump(mode="json"))


def _set(args: argparse.Namespace) -> int:
    store = _store(args)
    current = store.get(args.tenant) or TenantSettings.model_validate({"tenant": args.tenant})
    given = {
        "monthly_cap": args.monthly_cap,
        "daily_cap": args.daily_cap,
        "observe_only": args.observe_only,
        "lane": args.lane,
        "max_queued_jobs": args.max_queued,
        "provider_key": args.provider_key,
        "webhook_url": args.webhook_url,
    }
    changed = {name: value for name, value in given.items() if value is not None}
    settings = TenantSettings.model_validate({**current.model_dump(), **changed})
    store.put(stamped(settings, now_utc()))
    return _print(settings.model_dump(mode="json"))


def _clear_cap(args: argparse.Namespace) -> int:
    store = _store(args)
    current = store.get(args.tenant) or TenantSettings.model_validate({"tenant": args.tenant})
    settings = current.model_copy(update={"monthly_cap": None, "daily_cap": None})
    store.put(stamped(settings, now_utc()))
    return _print(settings.model_dump(mode="json"))
