"""Submit by event in template.yaml: the rule exists only with sources, lets only them through
(its pattern is the EventSources parameter, which the function gets too), and every event it
queues either becomes a job, a Job Rejected, or waits in a watched dead-letter queue."""

from __future__ import annotations

from typing import Any

from yaml_loader import template


def _resources() -> dict[str, Any]:
    return template()["Resources"]


def test_the_rule_exists_only_with_sources_and_its_pattern_is_the_sources_parameter():
    rule = _resources()["JobRequestsRule"]
    assert rule["Type"] == "AWS::Events::Rule" and rule["Condition"] == "HasEventSources"
    assert template()["Conditions"]["HasEventSources"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "EventSources"}]}, ""]}]
    }
    props = rule["Properties"]
    assert props["EventBusName"] == {"Ref": "EventBusName"}
    assert props["EventPattern"] == {
        "source": {"Ref": "EventSources"},
        "detail-type": ["Edit Requested", "Generation Requested"],
    }
    [target] = props["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["IntakeQueue", "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["IntakeDeadLetterQueue", "Arn"]}}


def test_the_function_reads_the_same_sources_and_their_tenants():
    variables = _resources()["IntakeFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["EVENT_SOURCES"] == {"Fn::Join": [",", {"Ref": "EventSources"}]}
    assert variables["EVENT_SOURCE_TENANTS"] == {"Ref": "EventSourceTenants"}
    parameters = template()["Parameters"]
    assert parameters["EventSources"]["Type"] == "CommaDelimitedList"
    # The defaults agree (nothing submits by event); a deployment's values are checked by the
    # function at cold start (settings.EventIntake), since CloudFormation cannot read JSON.
    assert (
        parameters["EventSources"]["Default"] == parameters["EventSourceTenants"]["Default"] == ""
    )


def test_only_the_rule_may_send_to_the_intake_queues():
    policy = _resources()["IntakeQueuePolicy"]
    assert policy["Condition"] == "HasEventSources"
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["JobRequestsRule", "Arn"]}}
    }


def test_failed_events_are_retried_alone_then_dead_lettered_with_an_alarm():
    queue = _resources()["IntakeQueue"]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["IntakeDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    [source] = _resources()["IntakeFunction"]["Properties"]["Events"].values()
    assert source["Type"] == "SQS"
    assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    alarm = _resources()["IntakeDeadLettersAlarm"]["Properties"]
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["IntakeDeadLetterQueue", "QueueName"]}}
    ]
    assert alarm["AlarmActions"] == {
        "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
    }
