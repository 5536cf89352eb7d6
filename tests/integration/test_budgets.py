"""Spend caps on the real tables (moto): the operator sets a cap with `qwen-edit admin
tenants`, the API answers 402 BudgetExceeded past it, a finished job settles once, and no
tenant can reach the settings."""

from __future__ import annotations

import json
from decimal import Decimal

import boto3
from botocore.stub import Stubber

from qwen_edit.adapters.tenants import DynamoBudgetLedger
from qwen_edit.domain.budgets import Period, PeriodCap
from qwen_edit.domain.jobs import now_utc
from qwen_edit_cli.local.drive import call, wait_execution
from qwen_edit_cli.local.inprocess import LOCAL_PRICES
from qwen_edit_cli.main import main

from yaml_loader import template

GENERATION = {"model": "qwen-image-plus", "prompt": "a lighthouse"}


def admin(stack, *args: str) -> int:
    table = stack.physical["TenantsTable"]
    return main(["admin", "tenants", *args, "--table", table, "--region", "us-east-1"])


def month(stack, tenant: str) -> dict:
    item = boto3.client("dynamodb").get_item(
        TableName=stack.physical["BudgetsTable"],
        Key={"tenant": {"S": tenant}, "period": {"S": Period.MONTH.id_at(now_utc())}},
        ConsistentRead=True,
    )["Item"]
    return {name: float(item[name]["N"]) for name in ("spent", "reserved", "committed")}


def test_the_api_answers_402_past_the_cap_and_a_finished_job_settles_once(stack, capsys):
    cost = LOCAL_PRICES["per_image"]["qwen-image-plus"]
    assert admin(stack, "set", "tenant-cap", "--monthly-cap", str(cost * 2)) == 0
    capsys.readouterr()
    assert admin(stack, "get", "tenant-cap") == 0
    assert json.loads(capsys.readouterr().out)["monthly_cap"] == cost * 2

    first = call(stack, "api-create-generation", body={**GENERATION, "n": 2}, tenant="tenant-cap")
    assert first.status == 202, first
    refused = call(stack, "api-create-generation", body=GENERATION, tenant="tenant-cap")
    assert refused.status == 402, refused
    error = refused.body["error"]
    assert error["code"] == "BudgetExceeded" and error["message"]
    [detail] = error["details"]
    assert detail["cap"] == cost * 2 and detail["reserved"] == cost * 2 and detail["spent"] == 0
    assert detail["cost"] == cost and detail["resets_at"]

    wait_execution(stack, first.body["id"])
    assert month(stack, "tenant-cap") == {"spent": cost * 2, "reserved": 0, "committed": cost * 2}
    from qwen_edit.app import lifecycle

    lifecycle.announce(stack.ctx, stack.ctx.jobs.get(first.body["id"]))  # a second announce
    assert month(stack, "tenant-cap")["spent"] == cost * 2

    usage = call(stack, "api-get-usage", tenant="tenant-cap").body
    [cap] = usage["budgets"]
    assert (cap["cap"], cap["spent"], cap["reserved"]) == (cost * 2, cost * 2, 0)

    assert admin(stack, "clear-cap", "tenant-cap") == 0
    assert call(stack, "api-create-generation", body=GENERATION, tenant="tenant-cap").status == 202


def test_no_tenant_can_read_or_change_tenant_settings(stack):
    admin(stack, "set", "tenant-a", "--monthly-cap", "5")
    for sample in ("api-list-jobs", "api-create-edit"):  # GET and POST
        for path in ("/tenants", "/tenants/tenant-a", "/tenants/tenant-b", "/admin/tenants"):
            answer = call(stack, sample, path=path, body=None, tenant="tenant-a")
            assert answer.status == 404 and answer.body["error"]["code"] == "NotFound", path
    # and the API's own role may only read the table (its caps), never write it
    policies = template()["Resources"]["ApiFunction"]["Properties"]["Policies"]
    granted = [
        statement
        for policy in policies
        if isinstance(policy, dict) and "Statement" in policy
        for statement in policy["Statement"]
        if "TenantsTable" in json.dumps(statement["Resource"])
    ]
    assert [s["Action"] for s in granted] == ["dynamodb:GetItem"]
    document = call(stack, "api-openapi").body
    assert not [path for path in document["paths"] if "tenant" in path]


def _canceled(stubber: Stubber, operation: str, *reasons: str) -> None:
    stubber.add_client_error(
        operation,
        service_error_code="TransactionCanceledException",
        http_status_code=400,
        modeled_fields={"CancellationReasons": [{"Code": reason} for reason in reasons]},
    )


def test_a_conflict_with_another_write_is_tried_again_never_taken_for_settled_or_refused():
    client = boto3.client("dynamodb", region_name="us-east-1")
    ledger = DynamoBudgetLedger("budgets", "jobs", client)
    resets = now_utc()
    month_cap = PeriodCap(period="month:2026-11", cap=Decimal("1"), resets_at=resets)
    day_cap = PeriodCap(period="day:2026-11-26", cap=Decimal("1"), resets_at=resets)
    balance = {"tenant": {"S": "t"}, "period": {"S": "month:2026-11"}}
    with Stubber(client) as stubber:
        _canceled(stubber, "transact_write_items", "None", "TransactionConflict")
        stubber.add_response("transact_write_items", {})
        assert ledger.settle("job-1", "t", ["month:2026-11"], Decimal("0.3"), Decimal("0.1"))
        _canceled(stubber, "transact_write_items", "ConditionalCheckFailed", "None")
        assert not ledger.settle("job-1", "t", ["month:2026-11"], Decimal("0.3"), Decimal("0.1"))
        # Both caps: a conflict is tried again, and the reservation goes through (no 402).
        _canceled(stubber, "transact_write_items", "TransactionConflict", "None")
        stubber.add_response("transact_write_items", {})
        for _ in range(2):
            stubber.add_response("get_item", {"Item": balance})
        ledger.reserve("t", [month_cap, day_cap], Decimal("0.1"), enforce=True)
        # One cap: its update met a settlement in flight, and goes through the second time.
        stubber.add_client_error(
            "update_item", "TransactionConflictException", http_status_code=400
        )
        stubber.add_response("update_item", {"Attributes": balance})
        ledger.reserve("t", [month_cap], Decimal("0.1"), enforce=True)
        stubber.assert_no_pending_responses()
