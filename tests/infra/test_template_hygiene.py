"""template.yaml hygiene: every log group keeps logs for LogRetentionDays, SQS queues give their
functions the visibility timeout Lambda asks for, and policies grant only what the code calls
(no S3 deletes, no DynamoDB deletes or scans outside the idempotency table)."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from typing import Any

import pytest

from qwen_edit.domain import keys

from conftest import ROOT
from yaml_loader import template

# The retention periods CloudWatch Logs accepts (PutRetentionPolicy).
RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827]
RETENTION_DAYS += [2192, 2557, 2922, 3288, 3653]
LAMBDA_DEFAULT_TIMEOUT = 3  # seconds, when neither the function nor Globals set one
SQS_DEFAULT_VISIBILITY_TIMEOUT = 30

# What the SAM policy templates this stack may use grant (samtranslator's
# policy_templates.json). A template missing here fails the policy tests: teach it here first.
SAM_POLICY_TEMPLATES: dict[str, list[str]] = {
    "AWSSecretsManagerGetSecretValuePolicy": ["secretsmanager:GetSecretValue"],
    "DynamoDBCrudPolicy": [
        "dynamodb:GetItem",
        "dynamodb:DeleteItem",
        "dynamodb:PutItem",
        "dynamodb:Scan",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:BatchGetItem",
        "dynamodb:DescribeTable",
        "dynamodb:ConditionCheckItem",
    ],
    "DynamoDBReadPolicy": [
        "dynamodb:GetItem",
        "dynamodb:Scan",
        "dynamodb:Query",
        "dynamodb:BatchGetItem",
        "dynamodb:DescribeTable",
    ],
    "DynamoDBWritePolicy": ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"],
    "EventBridgePutEventsPolicy": ["events:PutEvents"],
    "LambdaInvokePolicy": ["lambda:InvokeFunction"],
    "S3CrudPolicy": [
        "s3:GetObject",
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:GetObjectVersion",
        "s3:PutObject",
        "s3:PutObjectAcl",
        "s3:GetLifecycleConfiguration",
        "s3:PutLifecycleConfiguration",
        "s3:DeleteObject",
    ],
    "S3ReadPolicy": [
        "s3:GetObject",
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:GetObjectVersion",
        "s3:GetLifecycleConfiguration",
    ],
    "S3WritePolicy": ["s3:PutObject", "s3:PutObjectAcl", "s3:PutLifecycleConfiguration"],
    "SQSSendMessagePolicy": ["sqs:SendMessage*"],
    "StepFunctionsCallbackPolicy": [
        "states:SendTaskFailure",
        "states:SendTaskHeartbeat",
        "states:SendTaskSuccess",
    ],
    "StepFunctionsExecutionPolicy": ["states:StartExecution"],
}
# Deleting objects, by name or by a lifecycle rule that expires them.
S3_DELETES = [
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:DeleteObjects",
    "s3:PutLifecycleConfiguration",
]


def _resources() -> dict[str, Any]:
    return template()["Resources"]


def _of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in _resources().items() if r["Type"] == kind}


FUNCTIONS = sorted(_of_type("AWS::Serverless::Function"))


def _timeout(function: str) -> int:
    own = _resources()[function]["Properties"].get("Timeout")
    default = template().get("Globals", {}).get("Function", {}).get("Timeout")
    return own or default or LAMBDA_DEFAULT_TIMEOUT


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _arn(node: Any) -> str:
    """A policy resource as text: !GetAtt X.Arn is ${X.Arn}, !Sub keeps its string."""
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        logical, attribute = node["Fn::GetAtt"]
        return f"${{{logical}.{attribute}}}"
    if isinstance(node, dict) and "Fn::Sub" in node:
        sub = node["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    return str(node)


def _branches(policies: list[Any]) -> list[Any]:
    """Policies with each `!If [condition, a, b]` counted as both a and b (either may be
    deployed), AWS::NoValue dropped."""
    found = []
    for policy in policies:
        if isinstance(policy, dict) and "Fn::If" in policy:
            found += [p for p in policy["Fn::If"][1:] if p != {"Ref": "AWS::NoValue"}]
        else:
            found.append(policy)
    return found


def _grants(resource: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (action, resource) an Allow of this resource's policies grants, SAM policy
    templates expanded (their bucket or table resources as ${X.Arn} and ${X.Arn}/*)."""
    documents = []
    properties = resource.get("Properties", {})
    if resource["Type"] in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
        for policy in _branches(_listed(properties.get("Policies", []))):
            if isinstance(policy, str):
                pytest.fail(f"managed policy {policy}: name what it grants inline instead")
            if "Statement" in policy:
                documents.append(policy)
                continue
            ((name, parameters),) = policy.items()
            assert name in SAM_POLICY_TEMPLATES, f"unknown SAM policy template {name}"
            target = next(iter((parameters or {}).values()), None)
            logical = target.get("Ref") if isinstance(target, dict) else None
            arns = [f"${{{logical}.Arn}}", f"${{{logical}.Arn}}/*"] if logical else ["*"]
            documents.append(
                {
                    "Statement": [
                        {"Effect": "Allow", "Action": SAM_POLICY_TEMPLATES[name], "Resource": arns}
                    ]
                }
            )
    elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        documents.append(properties["PolicyDocument"])
    elif resource["Type"] == "AWS::IAM::Role":
        documents += [p["PolicyDocument"] for p in properties.get("Policies", [])]
    elif resource["Type"] in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy"):
        documents.append(properties["PolicyDocument"])
    return [
        (action, _arn(target))
        for document in documents
        for statement in _listed(document["Statement"])
        if statement.get("Effect") == "Allow"
        for action in _listed(statement.get("Action", []))
        for target in _listed(statement.get("Resource", "*"))
    ]


def _all_grants() -> list[tuple[str, str, str]]:
    return [
        (name, action, arn)
        for name, resource in _resources().items()
        for action, arn in _grants(resource)
    ]


def _allows(granted: str, action: str) -> bool:
    """Whether a granted action (IAM wildcards, case-insensitive) covers `action`."""
    return fnmatchcase(action.lower(), granted.lower())


# ---- log groups -----------------------------------------------------------------------------


def test_log_retention_is_a_parameter_of_the_periods_cloudwatch_accepts():
    parameter = template()["Parameters"]["LogRetentionDays"]
    assert parameter["Type"] == "Number"
    assert parameter["Default"] == 30
    assert parameter["AllowedValues"] == RETENTION_DAYS


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_has_a_log_group_named_for_it(function):
    groups = [
        name
        for name, group in _of_type("AWS::Logs::LogGroup").items()
        if group["Properties"].get("LogGroupName") == {"Fn::Sub": f"/aws/lambda/${{{function}}}"}
    ]
    assert len(groups) == 1, f"{function}: log groups named for it: {groups}"
    properties = _resources()[groups[0]]["Properties"]
    assert properties["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_every_log_group_keeps_logs_for_log_retention_days():
    groups = _of_type("AWS::Logs::LogGroup")
    assert {"ApiAccessLogs", "JobStateMachineLogs"} <= set(groups)
    for name, group in groups.items():
        assert group["Properties"].get("RetentionInDays") == {"Ref": "LogRetentionDays"}, name


def test_the_state_machine_and_the_api_log_to_log_groups_of_the_template():
    machines = _of_type("AWS::Serverless::StateMachine")
    assert machines
    for name, machine in machines.items():
        destinations = machine["Properties"]["Logging"]["Destinations"]
        arns = [d["CloudWatchLogsLogGroup"]["LogGroupArn"] for d in destinations]
        assert arns and all(
            _resources()[arn["Fn::GetAtt"][0]]["Type"] == "AWS::Logs::LogGroup" for arn in arns
        ), name
    api = _resources()["Api"]["Properties"]["AccessLogSetting"]["DestinationArn"]
    assert _resources()[api["Fn::GetAtt"][0]]["Type"] == "AWS::Logs::LogGroup"


# ---- SQS event sources ----------------------------------------------------------------------

SQS_SOURCES = [
    (function, event["Properties"]["Queue"]["Fn::GetAtt"][0])
    for function in FUNCTIONS
    for event in _resources()[function]["Properties"].get("Events", {}).values()
    if event["Type"] == "SQS"
]


def test_the_queue_triggered_functions_are_checked():
    assert {function for function, _ in SQS_SOURCES} >= {
        "TriggerFunction",
        "WebhookFunction",
        "IntakeFunction",
    }


@pytest.mark.parametrize(("function", "queue"), SQS_SOURCES)
def test_queue_visibility_timeout_is_at_least_six_times_the_function_timeout(function, queue):
    # Lambda's advice for SQS event sources: it leaves room to retry a throttled batch.
    visibility = _resources()[queue]["Properties"].get(
        "VisibilityTimeout", SQS_DEFAULT_VISIBILITY_TIMEOUT
    )
    assert visibility >= 6 * _timeout(function), (queue, visibility, function, _timeout(function))


# ---- least privilege ------------------------------------------------------------------------


def test_no_policy_uses_s3_crud_or_write_templates():
    # S3CrudPolicy deletes; S3WritePolicy may set lifecycle rules (expiring objects) and ACLs.
    for name, resource in _resources().items():
        for policy in _listed(resource.get("Properties", {}).get("Policies", [])):
            if isinstance(policy, dict):
                used = set(policy) & {"S3CrudPolicy", "S3WritePolicy", "S3FullAccessPolicy"}
                assert not used, (name, used)


def test_no_policy_grants_s3_deletes():
    grants = _all_grants()
    assert grants, "no policy found: the walk over the template is broken"
    deleting = [
        (name, granted, arn)
        for name, granted, arn in grants
        if any(_allows(granted, action) for action in S3_DELETES)
    ]
    assert not deleting, deleting


def test_dynamodb_deletes_scans_and_batch_writes_only_where_items_are_meant_to_go():
    # Job records expire by TTL, and pacing state is overwritten. Only Powertools' idempotency
    # layer deletes (the record of a call that failed), and a queue entry leaves the queue
    # when its job is called or canceled. The dispatcher scans the tenants table (small) for
    # the keys tenants hold as their own: it must know them all to keep them out of the pool.
    risky = ["dynamodb:DeleteItem", "dynamodb:Scan", "dynamodb:BatchWriteItem"]
    tenants_scan = ("DispatchFunction", "dynamodb:Scan", "${TenantsTable.Arn}")
    found_all = list(_all_grants())
    found = [
        (name, granted, arn)
        for name, granted, arn in found_all
        if any(_allows(granted, action) for action in risky)
        and (name, granted, arn) != tenants_scan
    ]
    assert tenants_scan in found_all
    assert all(
        arn in ("${IdempotencyTable.Arn}", "${QueueTable.Arn}") and granted == "dynamodb:DeleteItem"
        for _name, granted, arn in found
    ), found


# The functions whose code updates job records (moto does not check IAM, so the local stack
# cannot tell): the dispatcher records the provider call, the rest the outcome.
JOB_WRITERS = ["DispatchFunction", "StoreFunction", "RecordFailureFunction", "ApiFunction",
               "WebhookFunction"]  # fmt: skip


@pytest.mark.parametrize("function", JOB_WRITERS)
def test_functions_that_update_jobs_may(function):
    grants = [(action, arn) for name, action, arn in _all_grants() if name == function]
    assert any(
        _allows(action, "dynamodb:UpdateItem") and arn == "${JobsTable.Arn}"
        for action, arn in grants
    ), grants


# What each user of the queue does to it: Admit queues, the dispatcher reads, claims and
# removes, the API shows places and frees them on cancel, the API and the trigger count a
# tenant's waiting jobs.
QUEUE_USES = {
    "AdmitFunction": ["dynamodb:UpdateItem"],
    "DispatchFunction": ["dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
    "ApiFunction": ["dynamodb:Query", "dynamodb:DeleteItem"],
    "TriggerFunction": ["dynamodb:Query"],
    "IntakeFunction": ["dynamodb:Query"],  # MaxQueuedJobsPerTenant, for events too
    "ReconcileFunction": ["dynamodb:Query"],  # the sweep skips jobs waiting in line
}


@pytest.mark.parametrize("function", sorted(QUEUE_USES))
def test_functions_that_use_the_queue_may(function):
    grants = [(action, arn) for name, action, arn in _all_grants() if name == function]
    for needed in QUEUE_USES[function]:
        assert any(
            _allows(action, needed) and arn == "${QueueTable.Arn}" for action, arn in grants
        ), (needed, grants)


def test_writes_to_the_input_bucket_stay_out_of_inbox_and_recipes():
    # A function that could write inbox/ could trigger jobs (and itself); recipes/ are the
    # operator's. Inline images go to inputs/, presigned uploads to uploads/.
    allowed = {f"${{InputBucket.Arn}}/{prefix}*" for prefix in (keys.INPUTS, keys.UPLOADS)}
    writes = [
        (name, arn)
        for name, granted, arn in _all_grants()
        if arn.startswith("${InputBucket.Arn}") and _allows(granted, "s3:PutObject")
    ]
    assert writes, "no function writes the input bucket: the walk over the template is broken"
    assert all(arn in allowed for _name, arn in writes), writes


def test_object_prefixes_in_policies_are_the_service_key_prefixes():
    # Policies scoped to a prefix name one of domain/keys.py's, so renaming a prefix there
    # cannot leave a deployment without the permission (the local stack does not check IAM).
    prefixes = {keys.INBOX, keys.OUTBOX, keys.RECIPES, keys.RESULTS, keys.INPUTS, keys.UPLOADS}
    for name, _granted, arn in _all_grants():
        for bucket in ("${InputBucket.Arn}", "${OutputBucket.Arn}"):
            if arn.startswith(bucket) and arn not in (bucket, f"{bucket}/*"):
                prefix = arn.removeprefix(f"{bucket}/").removesuffix("*")
                assert arn.endswith("/*") and prefix in prefixes, (name, arn)


# ---- the operations dashboard -----------------------------------------------------------


def test_the_dashboard_is_valid_json_and_shows_only_metrics_the_code_writes():
    body = template()["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]
    text = body["Fn::Sub"] if isinstance(body, dict) else body
    numbers = re.sub(r"(?<=: )\$\{[^}]+\}", "0", text)  # a parameter as a bare value
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", numbers))["widgets"]
    assert widgets
    shown = set(re.findall(r'MetricName=\\?"(\w+)\\?"', text))
    shown |= set(re.findall(r'"qwen-edit",\s*"(\w+)"', text))  # metrics named in full
    code = "\n".join(p.read_text() for p in (ROOT / "layers" / "core").rglob("*.py"))
    assert shown and all(f'"{name}"' in code for name in shown), shown


def test_every_alarm_goes_to_the_topic_and_watches_what_the_code_writes():
    code = "\n".join(p.read_text() for p in (ROOT / "layers" / "core").rglob("*.py"))
    alarms = {
        name: resource["Properties"]
        for name, resource in template()["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert {"ProviderErrorsAlarm", "OldestQueuedJobAlarm", "StuckRunningJobAlarm"} <= set(alarms)
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == {
            "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }, name
        watched = [alarm] + [
            q["MetricStat"]["Metric"] for q in alarm.get("Metrics", []) if "MetricStat" in q
        ]
        for metric in watched:
            if metric.get("Namespace") == "qwen-edit":
                assert f'"{metric["MetricName"]}"' in code, (name, metric["MetricName"])
