"""statemachine/job.asl.json: schema-valid (cfn-lint does not read DefinitionUri files), wired to
the template, and in agreement with the domain errors its Retry and Catch rules name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from cfnlint.data.schemas.other import step_functions

from qwen_edit.app import workflow
from qwen_edit.domain import errors
from qwen_edit_cli.local.template import substitute

from conftest import ROOT
from yaml_loader import template

ASL = ROOT / "statemachine" / "job.asl.json"
STATE_MACHINE = template()["Resources"]["JobStateMachine"]["Properties"]
AWS_ERRORS = {"States.ALL", "States.Timeout", "ClientError"}


def definition(poll_interval: int = 10) -> dict:
    values = {
        name: f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        for name in STATE_MACHINE["DefinitionSubstitutions"]
    }
    values["PollIntervalSeconds"] = poll_interval
    return json.loads(substitute(ASL.read_text(), values))


def test_definition_is_valid_asl():
    schema = json.loads((Path(step_functions.__file__).parent / "statemachine.json").read_text())
    jsonschema.validate(definition(), schema)


def test_placeholders_and_substitutions_match():
    placeholders = set(re.findall(r"\$\{(\w+)\}", ASL.read_text()))
    assert placeholders == set(STATE_MACHINE["DefinitionSubstitutions"])
    assert STATE_MACHINE["DefinitionUri"] == "statemachine/job.asl.json"
    assert STATE_MACHINE["Type"] == "STANDARD"


def test_the_poll_loop_is_a_retry_at_the_poll_interval():
    states = definition(poll_interval=7)["States"]
    pending = states["Poll"]["Retry"][0]
    assert pending["ErrorEquals"] == ["TaskPending"]
    assert (pending["IntervalSeconds"], pending["BackoffRate"]) == (7, 1)
    assert states["WaitForTask"]["Seconds"] == 7


def test_every_task_runs_the_workflow_step_of_its_name():
    resources = template()["Resources"]
    for state_name, state in definition()["States"].items():
        if state["Type"] != "Task":
            continue
        resource = state.get("Parameters", {}).get("FunctionName", state["Resource"])
        function = resource.rsplit(":", 1)[-1].removesuffix("Arn").strip("${}")
        step = re.sub(
            r"(?<!^)([A-Z])", r"_\1", state_name
        ).lower()  # RecordFailure → record_failure
        assert callable(getattr(workflow, step))
        app = ROOT / resources[function]["Properties"]["CodeUri"] / "app.py"
        folder = app.parent.name
        assert f'workflow_task("{folder}", workflow.{step}' in app.read_text(), (state_name, app)


def test_error_names_are_domain_errors_with_the_matching_outcome():
    states = definition()["States"]
    outcome_of = {
        "Admit": {"JobNotRecorded": errors.Outcome.WAIT_FOR_SLOT},
        "Poll": {"TaskPending": errors.Outcome.POLL_AGAIN},
        "Store": {"ProviderRetryable": errors.Outcome.RETRY},
    }
    for state_name, state in states.items():
        for rule in state.get("Retry", []) + state.get("Catch", []):
            for name in rule["ErrorEquals"]:
                if name in AWS_ERRORS or name.startswith("Lambda."):
                    continue
                error_class = getattr(errors, name)
                assert error_class.outcome is outcome_of[state_name][name], (state_name, name)


def test_every_failure_is_caught_into_record_failure():
    for name, state in definition()["States"].items():
        if state["Type"] == "Task" and name not in ("RecordFailure", "Notify"):
            assert state["Catch"][-1] == {
                "ErrorEquals": ["States.ALL"],
                "ResultPath": "$.failure",
                "Next": "RecordFailure",
            }
    states = definition()["States"]
    assert states["RecordFailure"]["Next"] == "Notify" and states["Notify"]["End"]


@pytest.mark.parametrize(
    "sample",
    sorted(
        p
        for p in (ROOT / "events").glob("*.json")
        # the other functions' samples run through their handlers in tests/integration
        if not p.stem.startswith(("api-", "trigger-", "s3-", "webhook-", "intake-", "edit-"))
    ),
    ids=lambda p: p.stem,
)
def test_workflow_sample_events_match_their_handlers(sample):
    event = json.loads(sample.read_text())
    if sample.stem == "reconcile":
        assert event["detail-type"] == "Step Functions Execution Status Change"
        assert event["detail"]["status"] in ("FAILED", "TIMED_OUT", "ABORTED")
    elif sample.stem == "reconcile-sweep":
        assert event["detail-type"] == "Scheduled Event"  # the handler's other event source
    elif sample.stem == "admit":
        workflow.AdmitRequest.model_validate(event)
    elif sample.stem == "dispatch":
        assert event == {"wake": True}  # what Admit and the schedule send; it reads no field
    else:
        assert (ROOT / "functions" / sample.stem / "app.py").exists()
        workflow.WorkflowState.model_validate(event)


def test_failure_records_keep_our_code_or_the_error_name():
    sample = json.loads((ROOT / "events" / "record_failure.json").read_text())
    assert errors.failure_of(sample["failure"]["Error"], sample["failure"]["Cause"]) == (
        "DataInspectionFailed",
        "Input data may contain inappropriate content.",
    )
    crash = json.dumps({"errorType": "KeyError", "errorMessage": "'images'"})
    assert errors.failure_of("KeyError", crash) == ("KeyError", "'images'")
    assert errors.failure_of("States.Timeout", None) == ("States.Timeout", "States.Timeout")
