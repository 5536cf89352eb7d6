"""The public REST API: every route with valid and invalid input, tenants, idempotency,
pagination, uploads, OpenAPI, and one path end to end through the workflow."""

from __future__ import annotations

import json

import boto3
import pytest
import requests

from qwen_edit.domain import keys
from qwen_edit.domain.catalog import MODELS
from qwen_edit_cli.local.drive import call, wait_execution, wait_until
from qwen_edit_cli.local.lambdas import FakeLambdaContext
from qwen_edit_cli.local.samples import data_url, image_bytes, png_size

from conftest import ROOT
from yaml_loader import template

EDIT = {"model": "qwen-image-edit-plus", "prompt": "add a red scarf", "n": 1}


def edit(**fields):
    return {**EDIT, "images": [data_url()], **fields}


def assert_error(answer, status: int, code: str, field: str | None = None):
    assert answer.status == status, answer
    error = answer.body["error"]
    assert error["code"] == code and error["message"] and isinstance(error["details"], list)
    if field is not None:
        assert field in [d["field"] for d in error["details"]], error


# ---- creating jobs --------------------------------------------------------------------------


def test_post_edit_accepts_and_the_job_succeeds_end_to_end(stack):
    created = call(stack, "api-create-edit", body=edit(n=2, metadata={"order": "A-17"}))
    assert created.status == 202, created
    job = created.body
    assert created.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["source"] == "api" and job["kind"] == "edit"
    assert job["request"]["images"][0].startswith("s3://")  # inline images are stored first
    assert job["metadata"] == {"order": "A-17"} and "tenant" not in job
    wait_execution(stack, job["id"])
    done = call(stack, "api-get-job", path=f"/jobs/{job['id']}")
    assert done.status == 200 and done.body["status"] == "succeeded"
    assert len(done.body["outputs"]) == 2
    for output in done.body["outputs"]:
        download = requests.get(output["url"], timeout=10)
        assert download.status_code == 200
        assert png_size(download.content) == (output["width"], output["height"])


def test_post_generation(stack):
    created = call(
        stack, "api-create-generation", body={"model": "qwen-image-plus", "prompt": "a lighthouse"}
    )
    assert created.status == 202 and created.body["kind"] == "generation"
    assert_error(
        call(stack, "api-create-generation", body={"model": "qwen-image-edit-plus", "prompt": "x"}),
        422,
        "InvalidRequest",
        "model",
    )


@pytest.mark.parametrize(
    "body, field",
    [
        ({**EDIT, "images": ["https://x/a.png"], "strength": 1}, "strength"),
        ({**EDIT, "images": ["https://x/a.png"], "n": 9}, "n"),
        ({**EDIT, "images": ["https://x/a.png"], "prompt": "x" * 801}, "prompt"),
        ({**EDIT, "images": []}, "images"),
        ({**EDIT}, "images"),
        ({**EDIT, "images": ["https://x/a.png"], "size": "100*100"}, "size"),
        ({**EDIT, "images": ["s3://not-ours/a.png"]}, "images[0]"),
        (
            {**EDIT, "images": ["https://x/a.png"], "webhook_url": "http://h.example.com"},
            "webhook_url",
        ),
    ],
)
def test_post_edit_refuses_bad_input_naming_the_field(stack, body, field):
    assert_error(call(stack, "api-create-edit", body=body), 422, "InvalidRequest", field)
    assert stack.emulator.fake.counters.total() == 0  # no provider call


def test_stored_inputs_must_be_the_tenants_own_images(stack):
    bucket = stack.physical["InputBucket"]
    s3 = boto3.client("s3")
    own = f"uploads/{keys.tenant_folder('tenant-a')}"
    s3.put_object(Bucket=bucket, Key=f"{own}/notes.png", Body=b"plain text, not a picture")
    for image in (
        f"s3://{bucket}/{own}/nope.png",
        f"s3://{bucket}/assets/a.png",
        "s3://not-ours/a.png",
    ):
        refused = call(stack, "api-create-edit", body={**EDIT, "images": [image]})
        assert_error(refused, 422, "InvalidRequest", "images[0]")
        assert refused.body["error"]["details"][0]["rule"] == "not-available"
    fake = call(
        stack, "api-create-edit", body={**EDIT, "images": [f"s3://{bucket}/{own}/notes.png"]}
    )
    assert fake.body["error"]["details"][0]["rule"] == "format"


def test_body_that_is_not_json(stack):
    assert_error(call(stack, "api-create-edit", body="{not json"), 400, "BadRequest", "body")


# ---- auth and tenants ------------------------------------------------------------------------


def test_no_api_key_identity_is_401(stack):
    assert_error(call(stack, "api-create-edit", body=edit(), tenant=None), 401, "InvalidApiKey")
    assert_error(call(stack, "api-list-jobs", tenant=None), 401, "InvalidApiKey")


def test_another_tenants_job_does_not_exist(stack):
    job = call(stack, "api-create-edit", body=edit()).body
    assert_error(
        call(stack, "api-get-job", path=f"/jobs/{job['id']}", tenant="tenant-b"), 404, "JobNotFound"
    )
    assert_error(
        call(stack, "api-cancel-job", path=f"/jobs/{job['id']}/cancel", tenant="tenant-b"),
        404,
        "JobNotFound",
    )
    assert_error(call(stack, "api-get-job", path="/jobs/nope"), 404, "JobNotFound")


def test_unknown_route_uses_the_envelope(stack):
    assert_error(call(stack, "api-get-job", path="/nothing/here"), 404, "NotFound")


# ---- idempotency -----------------------------------------------------------------------------


def test_same_idempotency_key_and_body_make_one_job(stack):
    body, key = edit(seed=5), {"Idempotency-Key": "order-17"}
    first = call(stack, "api-create-edit", body=body, headers=key)
    again = call(stack, "api-create-edit", body=body, headers=key)
    assert first.status == again.status == 202 and first.body["id"] == again.body["id"]
    executions = boto3.client("stepfunctions").list_executions(
        stateMachineArn=stack.state_machine_arn
    )["executions"]
    assert len(executions) == 1
    other_tenant = call(stack, "api-create-edit", body=body, headers=key, tenant="tenant-b")
    assert other_tenant.status == 202 and other_tenant.body["id"] != first.body["id"]


def test_same_idempotency_key_with_another_body_is_409(stack):
    key = {"Idempotency-Key": "order-18"}
    assert call(stack, "api-create-edit", body=edit(seed=1), headers=key).status == 202
    assert_error(
        call(stack, "api-create-edit", body=edit(seed=2), headers=key), 409, "IdempotencyConflict"
    )


# ---- reading, listing, canceling -------------------------------------------------------------


def test_list_is_newest_first_paginated_and_filtered(stack):
    ids = [
        call(
            stack, "api-create-generation", body={"model": "qwen-image-plus", "prompt": f"p{i}"}
        ).body["id"]
        for i in range(5)
    ]
    call(
        stack,
        "api-create-generation",
        body={"model": "qwen-image-plus", "prompt": "b"},
        tenant="tenant-b",
    )
    seen, cursor = [], None
    for expected in (2, 2, 1):
        page = call(
            stack, "api-list-jobs", query={"limit": "2", **({"cursor": cursor} if cursor else {})}
        )
        assert page.status == 200 and len(page.body["jobs"]) == expected
        seen += [job["id"] for job in page.body["jobs"]]
        cursor = page.body["next_cursor"]
        if expected == 1:
            break
    assert seen == list(reversed(ids))
    for job_id in ids:
        wait_execution(stack, job_id)
    succeeded = call(stack, "api-list-jobs", query={"status": "succeeded", "limit": "100"})
    assert {job["id"] for job in succeeded.body["jobs"]} == set(ids)
    assert call(stack, "api-list-jobs", query={"status": "queued"}).body["jobs"] == []


def test_a_cursor_works_only_for_the_tenant_it_was_given_to(stack):
    for i in range(2):
        call(stack, "api-create-generation", body={"model": "qwen-image-plus", "prompt": f"p{i}"})
    cursor = call(stack, "api-list-jobs", query={"limit": "1"}).body["next_cursor"]
    assert cursor
    assert_error(
        call(stack, "api-list-jobs", query={"cursor": cursor}, tenant="tenant-b"),
        422,
        "InvalidRequest",
        "cursor",
    )


@pytest.mark.parametrize(
    "query, field",
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"status": "done"}, "status"),
        ({"cursor": "bm9wZQ"}, "cursor"),
    ],
)
def test_list_refuses_bad_parameters(stack, query, field):
    assert_error(call(stack, "api-list-jobs", query=query), 422, "InvalidRequest", field)


def test_cancel_a_running_job_then_it_is_final(stack):
    stack.emulator.fake.faults.pending_s = 60
    job = call(stack, "api-create-generation", body={"model": "qwen-image", "prompt": "slow"}).body
    wait_until(lambda: stack.ctx.jobs.get(job["id"]).provider, what="the provider task")
    canceled = call(stack, "api-cancel-job", path=f"/jobs/{job['id']}/cancel")
    assert canceled.status == 200 and canceled.body["status"] == "canceled"
    assert_error(
        call(stack, "api-cancel-job", path=f"/jobs/{job['id']}/cancel"), 409, "JobConflict"
    )


def test_cancel_a_finished_job_is_409(stack):
    job = call(stack, "api-create-edit", body=edit()).body
    wait_execution(stack, job["id"])
    answer = call(stack, "api-cancel-job", path=f"/jobs/{job['id']}/cancel")
    assert_error(answer, 409, "JobConflict")
    assert "succeeded" in answer.body["error"]["message"]


# ---- usage ----------------------------------------------------------------------------------


def test_usage_counts_only_the_tenants_own_jobs(stack):
    generation = {"model": "qwen-image-plus", "prompt": "a kite", "n": 2}
    mine = [call(stack, "api-create-generation", body=generation).body["id"] for _ in range(2)]
    theirs = call(stack, "api-create-generation", body={**generation, "n": 3}, tenant="tenant-b")
    for job_id in [*mine, theirs.body["id"]]:
        wait_execution(stack, job_id)
    answer = call(stack, "api-get-usage", query={"group_by": "model"})
    assert answer.status == 200, answer
    [group] = answer.body["groups"]
    assert group["key"] == "qwen-image-plus" and group["images"] == 4
    assert group["jobs"] == {"queued": 0, "running": 0, "succeeded": 2, "failed": 0, "canceled": 0}
    assert group["estimated_cost"] == pytest.approx(0.04)  # the local stack's example prices
    assert answer.body["totals"]["images"] == 4 and answer.body["unpriced_models"] == []
    assert answer.body["pricing"]["source"] == "local demo: example prices, not real ones"
    assert not answer.body["truncated"] and answer.body["counted_until"] is None
    assert call(stack, "api-get-usage", tenant="tenant-b").body["totals"]["images"] == 3
    nobody = call(stack, "api-get-usage", tenant="tenant-c").body
    assert nobody["groups"] == [] and nobody["totals"]["jobs"]["succeeded"] == 0
    before = call(stack, "api-get-usage", query={"to": "2026-01-01", "group_by": "day"}).body
    assert before["groups"] == [] and before["from"] == "2025-12-25T00:00:00Z"


@pytest.mark.parametrize(
    "query, field, rule",
    [
        ({"from": "yesterday"}, "from", None),
        ({"to": "2026-11-01T10:00:00"}, "to", None),  # RFC 3339 times carry their offset
        ({"group_by": "week"}, "group_by", None),
        ({"from": "2026-11-02", "to": "2026-11-01"}, "from", "order"),
        ({"from": "2026-01-01", "to": "2026-11-01"}, "from", "range"),
    ],
)
def test_usage_refuses_bad_parameters(stack, query, field, rule):
    answer = call(stack, "api-get-usage", query=query)
    assert_error(answer, 422, "InvalidRequest", field)
    if rule:
        assert answer.body["error"]["details"][0]["rule"] == rule


# ---- uploads, models, OpenAPI -----------------------------------------------------------------


def test_upload_then_edit_with_the_reference(stack):
    photo = image_bytes("jpeg", (640, 480))
    upload = call(
        stack,
        "api-create-upload",
        body={"content_type": "image/jpeg", "content_length": len(photo)},
    )
    assert upload.status == 201, upload
    put = requests.put(
        upload.body["upload_url"], data=photo, headers=upload.body["headers"], timeout=10
    )
    assert put.status_code == 200
    assert upload.body["image"].startswith(f"s3://{stack.physical['InputBucket']}/uploads/")
    created = call(stack, "api-create-edit", body={**EDIT, "images": [upload.body["image"]]})
    assert created.status == 202 and created.body["request"]["images"] == [upload.body["image"]]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"content_type": "image/svg+xml"}, "content_type"),
        ({"content_type": "image/png", "content_length": 10 * 1024 * 1024 + 1}, "content_length"),
        ({}, "content_type"),
    ],
)
def test_upload_refuses_bad_requests(stack, body, field):
    assert_error(call(stack, "api-create-upload", body=body), 422, "InvalidRequest", field)


def test_models_lists_the_catalog(stack):
    answer = call(stack, "api-list-models")
    assert answer.status == 200
    assert [m["id"] for m in answer.body["models"]] == list(MODELS)


def test_openapi_is_served_and_committed(stack):
    served = call(stack, "api-openapi").body
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert served == committed, "regenerate it: .venv/bin/qwen-edit openapi"
    assert set(served["paths"]) == {
        "/edits",
        "/generations",
        "/jobs/{job_id}",
        "/jobs",
        "/jobs/{job_id}/cancel",
        "/jobs/{job_id}/retry",
        "/uploads",
        "/usage",
        "/models",
        "/openapi.json",
    }


# ---- the template's API ------------------------------------------------------------------------


def test_template_routes_match_the_app(stack):
    events = template()["Resources"]["ApiFunction"]["Properties"]["Events"]
    routes = {(e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events.values()}
    served = call(stack, "api-openapi").body["paths"]
    # The console is an HTML page, not part of the JSON API: the document leaves it out.
    documented = routes - {("GET", "/console")}
    assert documented == {(method.upper(), path) for path, ops in served.items() for method in ops}


def test_the_console_is_the_one_route_that_needs_no_key(stack):
    events = template()["Resources"]["ApiFunction"]["Properties"]["Events"]
    keyless = [e["Properties"]["Path"] for e in events.values() if "Auth" in e["Properties"]]
    assert keyless == ["/console"]
    assert events["Console"]["Properties"]["Auth"] == {"ApiKeyRequired": False}
    event = json.loads((ROOT / "events" / "api-console.json").read_text())
    function = stack.physical["ApiFunction"]
    answer = stack.dispatcher.call(function, event, FakeLambdaContext(function, function))
    assert answer["statusCode"] == 200 and answer["body"].startswith("<!doctype html>")
    # The origins of presigned URLs (S3's virtual hosts here): the page may show and PUT there.
    policy = answer["multiValueHeaders"]["Content-Security-Policy"][0]
    output, input_ = (stack.physical[b] for b in ("OutputBucket", "InputBucket"))
    s3 = f"https://{output}.s3.amazonaws.com https://{input_}.s3.amazonaws.com"
    assert f"img-src 'self' data: blob: {s3};" in policy and f"connect-src 'self' {s3};" in policy


def test_the_console_parameter_turns_the_route_and_the_upload_cors_off():
    parameters = template()["Parameters"]["Console"]
    assert parameters["Default"] == "enabled" and parameters["AllowedValues"] == [
        "enabled",
        "disabled",
    ]
    function = template()["Resources"]["ApiFunction"]["Properties"]
    assert function["Environment"]["Variables"]["CONSOLE"] == {"Ref": "Console"}
    cors = template()["Resources"]["InputBucket"]["Properties"]["CorsConfiguration"]["Fn::If"]
    assert cors[0] == "ConsoleEnabled" and cors[2] == {"Ref": "AWS::NoValue"}
    (rule,) = cors[1]["CorsRules"]
    assert rule["AllowedMethods"] == ["PUT"]  # browser uploads to presigned URLs, nothing else


def test_api_gateway_refusals_use_the_envelope():
    api = template()["Resources"]["Api"]["Properties"]
    assert api["StageName"] == "v1" and api["Auth"]["ApiKeyRequired"] is True
    assert api["Auth"]["UsagePlan"]["CreateUsagePlan"] == "PER_API"
    responses = api["GatewayResponses"]
    for name, status in [
        ("INVALID_API_KEY", "401"),
        ("THROTTLED", "429"),
        ("REQUEST_TOO_LARGE", "413"),
        ("MISSING_AUTHENTICATION_TOKEN", "404"),
    ]:
        assert responses[name]["StatusCode"] == status
        body = json.loads(responses[name]["ResponseTemplates"]["application/json"])
        assert set(body["error"]) == {"code", "message", "details"}


def test_every_429_of_api_gateway_says_when_to_retry_and_which_limit():
    """API Gateway cannot compute a wait: the static Retry-After of each usage-plan 429 is the
    one in its body's details, and names the limit (Limit in domain/errors.py)."""
    from qwen_edit.domain.errors import Limit

    api = template()["Resources"]["Api"]["Properties"]
    for name, limit, seconds in [
        ("THROTTLED", Limit.THROTTLE, 1),
        ("QUOTA_EXCEEDED", Limit.QUOTA, 86400),
    ]:
        response = api["GatewayResponses"][name]
        assert response["ResponseParameters"]["Headers"]["Retry-After"] == f"'{seconds}'"
        body = json.loads(response["ResponseTemplates"]["application/json"])
        assert body["error"]["details"] == [{"limit": limit.value, "retry_after_seconds": seconds}]
    quota = api["Auth"]["UsagePlan"]["Quota"]["Fn::If"][1]
    assert quota["Period"] == "DAY"  # what the 86400 s Retry-After is worth
    assert template()["Parameters"]["ApiThrottleRateLimit"]["MinValue"] == 1  # a token per 1 s


# ---- the queue: place in line, the cap ------------------------------------------------------


def test_a_waiting_job_shows_its_place_and_a_full_queue_is_429_with_retry_after(stack, monkeypatch):
    from qwen_edit import runtime

    pro = {"model": "qwen-image-2.0-pro", "prompt": "a poster"}  # 2 calls a minute
    jobs = [call(stack, "api-create-generation", body=pro).body for _ in range(4)]
    # One call every 30 s: one goes at once, three wait (in the order Admit queued them).
    wait_until(
        lambda: (
            len([e for e in stack.ctx.queue.entries() if not e.claimed]) == 3
            and any(stack.ctx.jobs.get(j["id"]).provider_call for j in jobs)
        ),
        what="one job called, three waiting",
    )
    shown = [call(stack, "api-get-job", path=f"/jobs/{j['id']}").body for j in jobs]
    waiting = [job for job in shown if job["status"] == "queued"]
    assert sorted(job["queue"]["position"] for job in waiting) == [1, 2, 3]
    assert all(job["lane"] == job["queue"]["lane"] == "interactive" for job in waiting)
    monkeypatch.setenv("MAX_QUEUED_JOBS_PER_TENANT", "2")
    runtime.context.cache_clear()
    full = call(stack, "api-create-generation", body=pro)
    assert_error(full, 429, "QueueFull")
    assert full.headers["Retry-After"] == "30"
    assert full.body["error"]["details"] == [{"limit": "queue", "retry_after_seconds": 30}]
    assert (
        full.headers["RateLimit-Limit"],
        full.headers["RateLimit-Remaining"],
        full.headers["RateLimit-Reset"],
    ) == ("2", "0", "30")
    other = call(stack, "api-create-generation", body=pro, tenant="tenant-b")
    assert other.status == 202  # another tenant is not held by this one's queue
