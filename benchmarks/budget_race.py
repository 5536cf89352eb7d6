"""Budget race: 100 submissions at once through the API function of the local stack, against
a monthly cap with room for exactly 10 of them. Reservation and cap check are one conditional
write, so exactly 10 are accepted and nothing is overspent; it prints both, and then waits for
the 10 jobs to end and settle.

    .venv/bin/python benchmarks/budget_race.py [--submissions 100] [--room 10]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import boto3

from qwen_edit.domain.budgets import Period
from qwen_edit.domain.jobs import now_utc
from qwen_edit.domain.pricing import Prices
from qwen_edit.domain.tenants import TenantSettings
from qwen_edit_cli.emulator.faults import Faults
from qwen_edit_cli.emulator.server import EmulatorServer
from qwen_edit_cli.local.drive import call, wait_execution
from qwen_edit_cli.local.inprocess import LOCAL_PRICES, in_process_stack, offline_resolve

MODEL = "qwen-image-plus"
TENANT = "tenant-race"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--submissions", type=int, default=100)
    parser.add_argument("--room", type=int, default=10, help="jobs the cap has room for")
    args = parser.parse_args()
    price = Prices.model_validate(LOCAL_PRICES).per_image_price(MODEL)
    assert price is not None
    cap = Decimal(str(price)) * args.room
    faults = Faults(pending_s=0.3, running_s=0.3, sync_latency_s=0, enforce_rate_limits=False)
    with (
        EmulatorServer(faults=faults) as emulator,
        in_process_stack(emulator, poll_interval=1, resolve=offline_resolve) as stack,
    ):
        settings = TenantSettings.model_validate({"tenant": TENANT, "monthly_cap": float(cap)})
        stack.ctx.tenants.put(settings)

        def submit(_: int) -> int:
            body = {"model": MODEL, "prompt": "a lighthouse"}
            return int(call(stack, "api-create-generation", body=body, tenant=TENANT).status)

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.submissions) as pool:
            statuses = list(pool.map(submit, range(args.submissions)))
        seconds = time.perf_counter() - started

        def ledger() -> dict[str, Decimal]:
            item = boto3.client("dynamodb").get_item(
                TableName=stack.physical["BudgetsTable"],
                Key={"tenant": {"S": TENANT}, "period": {"S": Period.MONTH.id_at(now_utc())}},
                ConsistentRead=True,
            )["Item"]
            return {name: Decimal(item[name]["N"]) for name in ("spent", "reserved", "committed")}

        at_admission = ledger()
        jobs, _ = stack.ctx.jobs.list_for_tenant(TENANT, 100, None, None)
        for job in jobs:
            wait_execution(stack, job.id)
        settled = ledger()
    accepted, refused = statuses.count(202), statuses.count(402)
    print(f"submissions {args.submissions} at once, cap {cap} USD = room for {args.room} jobs")
    print(f"accepted {accepted}, refused 402 {refused}, other {len(statuses) - accepted - refused}")
    print(f"reserved at admission {at_admission['committed']} of {cap}: overspend "
          f"{max(Decimal(0), at_admission['committed'] - cap)}")  # fmt: skip
    print(f"after the jobs ended: spent {settled['spent']}, reserved {settled['reserved']}, "
          f"overspend {max(Decimal(0), settled['spent'] - cap)}")  # fmt: skip
    print(f"{args.submissions} submissions answered in {seconds:.1f} s")


if __name__ == "__main__":
    main()
