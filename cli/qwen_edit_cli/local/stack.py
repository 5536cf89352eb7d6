"""The template's resources, created in moto (in-process, or moto's server for `local serve`).

Only the resource types the service runs on are created; IAM policies, alarms, log groups and
the layer have no behaviour to emulate. EventBridge rules with SQS targets are created (moto
matches put events against their patterns and delivers them, so submit-by-event runs); the
functions' own EventBridgeRule and Schedule events are not: moto does not deliver AWS service
events to them (the reconcile handler is exercised directly).
"""

from __future__ import annotations

import io
import json
import os
import secrets
import string
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from qwen_edit import runtime
from qwen_edit.context import Context
from qwen_edit_cli.local.lambdas import FakeLambdaContext, Handler, LambdaDispatcher
from qwen_edit_cli.local.metrics import TallyMetrics
from qwen_edit_cli.local.sqs import SqsEventSource
from qwen_edit_cli.local.template import ROOT, Resolver, load_template, substitute

ACCOUNT = "123456789012"
_CORS_FIELDS = {"MaxAge": "MaxAgeSeconds"}  # CloudFormation's CorsRule names, as S3's API has them


@dataclass
class LocalStack:
    name: str
    region: str
    physical: dict[str, str] = field(default_factory=dict)  # logical id → name or URL
    arns: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    dispatcher: LambdaDispatcher = field(default_factory=LambdaDispatcher)
    event_sources: list[SqsEventSource] = field(default_factory=list)
    emulator: Any = None
    metrics: TallyMetrics = field(default_factory=TallyMetrics)
    usage_plan: dict[str, Any] = field(default_factory=dict)  # the Api's, parameters resolved
    stopping: threading.Event = field(default_factory=threading.Event)
    _waking: threading.Lock = field(default_factory=threading.Lock)
    _woken: bool = False
    _dispatching: threading.Thread | None = None

    @property
    def ctx(self) -> Context:
        """Every part of every function's context (what local tools and tests use)."""
        return runtime.context()

    @property
    def state_machine_arn(self) -> str:
        return self.arns["JobStateMachine"]

    def handler(self, logical_id: str) -> Handler:
        """The real handler of a function of the template, as Lambda would run it."""
        return self.dispatcher.handler(self.physical[logical_id])

    def wake_dispatcher(self) -> None:
        """Lambda's asynchronous invoke: the dispatcher runs on a thread of its own, one at a
        time (as its lease would have it anyway); a wake while it runs makes it run again."""
        with self._waking:
            if self.stopping.is_set():
                return
            self._woken = True
            if self._dispatching is None:
                self._dispatching = threading.Thread(target=self._dispatch_while_woken, daemon=True)
                self._dispatching.start()

    def _dispatch_while_woken(self) -> None:
        name = self.physical["DispatchFunction"]
        context = DispatcherContext(name, self.arns["DispatchFunction"], stopping=self.stopping)
        while True:
            with self._waking:
                if not self._woken or self.stopping.is_set():
                    self._dispatching = None
                    return
                self._woken = False
            self.dispatcher.call(name, {"wake": True}, context)

    def stop_dispatching(self, within: float = 5.0) -> None:
        """The dispatcher's time runs out (it hands over to no one): before the stack goes.
        Calls still in flight after `within` seconds are left to the process's end."""
        with self._waking:
            self.stopping.set()
            running = self._dispatching
        if running is not None:
            running.join(timeout=within)

    def pump(self) -> int:
        """Deliver every queued message to its function (Lambda's SQS poller); how many."""
        delivered = 0
        while moved := sum(source.poll_once() for source in self.event_sources):
            delivered += moved
        return delivered


@dataclass
class DispatcherContext(FakeLambdaContext):
    """Its remaining time ends when the stack stops, so that the dispatcher hands over."""

    stopping: threading.Event = field(default_factory=threading.Event)

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        return 0 if self.stopping.is_set() else 300_000


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return event\n")
    return out.getvalue()


def build_stack(
    parameters: dict[str, Any],
    *,
    name: str = "qwen-edit-local",
    region: str = "us-east-1",
    endpoint_url: str | None = None,
) -> LocalStack:
    """Create the stack's resources through boto3 (moto must be active or `endpoint_url` set)
    and point this process's environment at them, as Lambda would for each function."""
    template = load_template()
    stack = LocalStack(name=name, region=region)
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = boto3.client(service, region_name=region, endpoint_url=endpoint_url)
        return clients[service]

    def ref(logical: str) -> str:
        return stack.physical[logical]

    def get_att(logical: str, attribute: str) -> str:
        if attribute == "Arn":
            return stack.arns[logical]
        if attribute == "QueueName":
            return stack.physical[logical].rsplit("/", 1)[-1]
        raise KeyError(f"{logical}.{attribute}")

    pseudo = {"AWS::StackName": name, "AWS::Region": region, "AWS::AccountId": ACCOUNT}
    resolve = Resolver(template, {**pseudo, **parameters}, ref, get_att)
    resources = template["Resources"]
    stack.usage_plan = resolve.value(resources["Api"]["Properties"]["Auth"]["UsagePlan"])
    role = client("iam").create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")
    role_arn = role["Role"]["Arn"]

    for logical, resource in resources.items():
        props = resource.get("Properties", {})
        physical = f"{name}-{logical}"
        if resource["Type"] == "AWS::DynamoDB::Table":
            spec = resolve.value(props)
            client("dynamodb").create_table(
                TableName=physical,
                KeySchema=spec["KeySchema"],
                AttributeDefinitions=spec["AttributeDefinitions"],
                BillingMode=spec.get("BillingMode", "PAY_PER_REQUEST"),
                **(
                    {"GlobalSecondaryIndexes": spec["GlobalSecondaryIndexes"]}
                    if "GlobalSecondaryIndexes" in spec
                    else {}
                ),
            )
            if "TimeToLiveSpecification" in spec:
                client("dynamodb").update_time_to_live(
                    TableName=physical, TimeToLiveSpecification=spec["TimeToLiveSpecification"]
                )
            stack.physical[logical] = physical
            stack.arns[logical] = f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{physical}"
        elif resource["Type"] == "AWS::S3::Bucket":
            bucket = physical.lower()[:63]
            client("s3").create_bucket(Bucket=bucket)
            stack.physical[logical], stack.arns[logical] = bucket, f"arn:aws:s3:::{bucket}"
        elif resource["Type"] == "AWS::SecretsManager::Secret":
            length = props.get("GenerateSecretString", {}).get("PasswordLength", 32)
            value = "".join(
                secrets.choice(string.ascii_letters + string.digits) for _ in range(length)
            )
            arn = client("secretsmanager").create_secret(Name=physical, SecretString=value)["ARN"]
            stack.physical[logical] = stack.arns[logical] = arn
        elif resource["Type"] == "AWS::SQS::Queue":
            url = client("sqs").create_queue(QueueName=physical)["QueueUrl"]
            stack.physical[logical] = url
            stack.arns[logical] = f"arn:aws:sqs:{region}:{ACCOUNT}:{physical}"

    for logical, resource in resources.items():
        if resource["Type"] not in ("AWS::SQS::Queue", "AWS::S3::Bucket"):
            continue
        props = resolve.value(resource.get("Properties", {}))
        if resource["Type"] == "AWS::SQS::Queue":
            attributes = {
                name: (json.dumps(value) if isinstance(value, dict) else str(value))
                for name, value in props.items()
                if name in ("VisibilityTimeout", "RedrivePolicy", "MessageRetentionPeriod")
            }
            if attributes:
                client("sqs").set_queue_attributes(
                    QueueUrl=stack.physical[logical], Attributes=attributes
                )
        if resource["Type"] == "AWS::S3::Bucket" and "CorsConfiguration" in props:
            client("s3").put_bucket_cors(
                Bucket=stack.physical[logical],
                CORSConfiguration={
                    "CORSRules": [
                        {_CORS_FIELDS.get(name, name): value for name, value in rule.items()}
                        for rule in props["CorsConfiguration"]["CorsRules"]
                    ]
                },
            )
        if resource["Type"] == "AWS::S3::Bucket" and "NotificationConfiguration" in props:
            client("s3").put_bucket_notification_configuration(
                Bucket=stack.physical[logical],
                NotificationConfiguration={
                    "QueueConfigurations": [
                        {
                            "QueueArn": rule["Queue"],
                            "Events": [rule["Event"]],
                            "Filter": {"Key": {"FilterRules": rule["Filter"]["S3Key"]["Rules"]}},
                        }
                        for rule in props["NotificationConfiguration"]["QueueConfigurations"]
                    ]
                },
            )

    for logical, resource in resources.items():
        if resource["Type"] != "AWS::Events::Rule":
            continue
        if "Condition" in resource and not resolve.condition(resource["Condition"]):
            continue
        _create_rule(stack, client("events"), logical, resolve.value(resource["Properties"]))

    globals_env = template.get("Globals", {}).get("Function", {}).get("Environment", {})
    functions = {k: r for k, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    pending = list(functions)

    def create_functions() -> None:
        """Each function once what its environment names exists (another function, or the
        state machine): rounds until no more can be created."""
        while True:
            created = []
            for logical in pending:
                try:
                    _create_function(
                        stack, client, resolve, logical, functions[logical], globals_env, role_arn
                    )
                except KeyError:
                    continue
                created.append(logical)
            pending[:] = [logical for logical in pending if logical not in created]
            if not created:
                return

    create_functions()
    for logical, resource in resources.items():
        if resource["Type"] == "AWS::Serverless::StateMachine":
            props = resource["Properties"]
            definition = substitute(
                (ROOT / props["DefinitionUri"]).read_text(),
                resolve.value(props.get("DefinitionSubstitutions", {})),
            )
            answer = client("stepfunctions").create_state_machine(
                name=f"{name}-{logical}",
                definition=definition,
                roleArn=role_arn,
                type=props.get("Type", "STANDARD"),
            )
            stack.physical[logical] = stack.arns[logical] = answer["stateMachineArn"]
    create_functions()
    if pending:
        raise KeyError(f"functions whose environment names what is not created: {pending}")

    # In-process handlers share this process's environment: the union of their variables.
    os.environ.update(stack.environment)
    runtime.context.cache_clear()
    return stack


def _create_rule(stack: LocalStack, events: Any, logical: str, props: dict[str, Any]) -> None:
    """An EventBridge rule and its SQS targets (their RetryPolicy and DeadLetterConfig: moto
    delivers at once or not at all)."""
    name = f"{stack.name}-{logical}"[:64]
    bus = props.get("EventBusName", "default")
    arn = events.put_rule(
        Name=name,
        EventBusName=bus,
        EventPattern=json.dumps(props["EventPattern"]),
        State=props.get("State", "ENABLED"),
    )["RuleArn"]
    events.put_targets(
        Rule=name,
        EventBusName=bus,
        Targets=[{"Id": target["Id"], "Arn": target["Arn"]} for target in props["Targets"]],
    )
    stack.physical[logical], stack.arns[logical] = name, arn


def _create_function(
    stack: LocalStack,
    client: Callable[[str], Any],
    resolve: Resolver,
    logical: str,
    resource: dict[str, Any],
    globals_env: dict[str, Any],
    role_arn: str,
) -> None:
    props = resource["Properties"]
    variables = {
        **globals_env.get("Variables", {}),
        **props.get("Environment", {}).get("Variables", {}),
    }
    environment = {k: str(v) for k, v in resolve.value(variables).items() if v is not None}
    function_name = f"{stack.name}-{logical}"[:64]
    answer = client("lambda").create_function(
        FunctionName=function_name,
        Runtime="python3.12",
        Role=role_arn,
        Handler=props["Handler"],
        Code={"ZipFile": _zip()},
        Environment={"Variables": environment},
    )
    stack.physical[logical], stack.arns[logical] = function_name, answer["FunctionArn"]
    stack.environment.update(environment)
    stack.dispatcher.register(function_name, ROOT / props["CodeUri"], props["Handler"])
    for event in props.get("Events", {}).values():
        if event["Type"] == "SQS":
            queue_arn = resolve.value(event["Properties"]["Queue"])
            queue = next(k for k, arn in stack.arns.items() if arn == queue_arn)
            stack.event_sources.append(
                SqsEventSource(
                    client("sqs"),
                    stack.physical[queue],
                    queue_arn,
                    function_name,
                    stack.dispatcher,
                    event["Properties"].get("BatchSize", 10),
                    stack.region,
                )
            )
