"""Settings from the environment the template sets, and the API key from Secrets Manager."""

from __future__ import annotations

import json
import logging

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws
from pydantic import AliasChoices
from pydantic.fields import FieldInfo

from qwen_edit.adapters.dashscope import DashScopeClient
from qwen_edit.adapters.providers import provider_client
from qwen_edit.adapters.secrets import provider_api_key
from qwen_edit.adapters.task_api import TaskApiClient
from qwen_edit.domain.catalog import Provider
from qwen_edit.settings import FUNCTIONS, ConfigurationError, Pricing, ProviderAccess, model_for

from yaml_loader import template

ENV = {
    "DASHSCOPE_REGION": "beijing",
    "DASHSCOPE_BASE_URL": "",
    "DASHSCOPE_API_KEY_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:k",
    "DEFAULT_MODEL": "qwen-image-edit-max",
    "UNRELATED": "x",
}


def environment_of(function: dict) -> dict[str, str]:
    """The variables template.yaml gives a function (stand-in values for the references)."""
    variables = {
        **template()["Globals"]["Function"]["Environment"]["Variables"],
        **function.get("Properties", {}).get("Environment", {}).get("Variables", {}),
    }
    numbers = {
        "JOB_DEADLINE_SECONDS": "3600",
        "MAX_PROVIDER_ATTEMPTS": "10",
        "MAX_QUEUED_JOBS_PER_TENANT": "1000",
        "ADMISSION_MARGIN_SECONDS": "0.1",
        "DASHSCOPE_REGION": "beijing",
        "SHARED_INPUT_PREFIXES": "library/",
        "MODEL_PRICES": '{"currency": "USD", "per_image": {"qwen-image-edit-plus": 0.03}}',
        "EVENT_SOURCES": "com.example.catalog",
        "EVENT_SOURCE_TENANTS": '{"com.example.catalog": "tenant-catalog"}',
        "CONSOLE": "enabled",
    }
    return {name: numbers.get(name, "x") for name in [*variables, *LAMBDA_SETS]}


LAMBDA_SETS = ["AWS_LAMBDA_FUNCTION_NAME"]  # what Lambda itself gives every function


def names_of(field: FieldInfo) -> list[str]:
    """The variables a settings field may be read from, first the one it is named by."""
    if isinstance(field.validation_alias, AliasChoices):
        return [str(choice) for choice in field.validation_alias.choices]
    return [str(field.alias)]


def functions() -> dict[str, dict]:
    return {
        resource["Properties"]["CodeUri"].strip("/").split("/")[-1]: resource
        for resource in template()["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def test_every_function_has_an_environment_model_the_template_satisfies():
    assert set(functions()) == set(FUNCTIONS)
    for name, function in functions().items():
        model_for(name).from_env(environment_of(function))  # ConfigurationError if incomplete


def test_a_missing_variable_is_named_at_cold_start():
    for name, function in functions().items():
        environment = environment_of(function)
        required = [names_of(f) for f in model_for(name).model_fields.values() if f.is_required()]
        assert required, name
        for variables in required:
            with pytest.raises(ConfigurationError, match=variables[0]):
                model_for(name).from_env(
                    {k: v for k, v in environment.items() if k not in variables}
                )


def test_every_variable_read_is_one_the_template_sets():
    set_by_template: set[str] = set()
    for function in functions().values():
        set_by_template |= set(environment_of(function))
    fields = {names_of(field)[0] for field in model_for(None).model_fields.values()}
    # ALLOW_LOOPBACK_URLS is the local stack's alone (SPEC §7): a deployment never sets it.
    assert fields - set_by_template == {"ALLOW_LOOPBACK_URLS"}


def test_model_prices_name_catalog_models_or_fail_at_cold_start():
    prices = json.dumps({"currency": "USD", "per_image": {"qwen-image-edit-plus": 0.03}})
    read = Pricing.from_env({"MODEL_PRICES": prices}).model_prices
    assert read.per_image_price("qwen-image-edit-plus") == 0.03 and read.currency == "USD"
    assert read.source == "operator: the ModelPrices parameter"
    assert Pricing.from_env({"MODEL_PRICES": ""}).model_prices.per_image == {}
    unknown = json.dumps({"currency": "USD", "per_image": {"qwen-image-9": 0.03}})
    with pytest.raises(ConfigurationError, match=r"MODEL_PRICES.*qwen-image-9"):
        Pricing.from_env({"MODEL_PRICES": unknown})
    with pytest.raises(ConfigurationError, match="MODEL_PRICES"):
        Pricing.from_env({"MODEL_PRICES": "not json"})


def test_settings_read_the_template_environment():
    settings = ProviderAccess.from_env(ENV)
    assert settings.region.value == "beijing" and settings.base_url is None


def test_provider_client_per_provider():
    settings = ProviderAccess.from_env(ENV)
    dashscope = provider_client(Provider.DASHSCOPE, settings, "sk")
    assert isinstance(dashscope, DashScopeClient)
    assert dashscope.base_url.startswith("https://dashscope.aliyuncs.com/api/v1")
    with pytest.raises(ValueError, match="TASK_API_BASE_URL"):
        provider_client(Provider.TASK_API, settings, "sk")
    with_task_api = ProviderAccess.from_env({**ENV, "TASK_API_BASE_URL": "https://t.example"})
    assert isinstance(provider_client(Provider.TASK_API, with_task_api, "sk"), TaskApiClient)


@pytest.fixture
def secrets(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        parameters.clear_caches()
        yield boto3.client("secretsmanager")
    parameters.clear_caches()


@pytest.mark.parametrize("stored", ["sk-plain-key\n", json.dumps({"api_key": "sk-plain-key"})])
def test_api_key_from_secrets_manager(secrets, stored, caplog):
    arn = secrets.create_secret(Name="dashscope", SecretString=stored)["ARN"]
    logging.getLogger("botocore").setLevel(logging.DEBUG)  # as a DEBUG-level runtime would
    import importlib

    import qwen_edit.adapters.secrets

    importlib.reload(qwen_edit.adapters.secrets)  # the guard runs when the module loads
    with caplog.at_level(logging.DEBUG):
        assert qwen_edit.adapters.secrets.provider_api_key(arn) == "sk-plain-key"
    assert "sk-plain-key" not in caplog.text


def test_an_empty_secret_is_refused(secrets):
    arn = secrets.create_secret(Name="empty", SecretString=json.dumps({"other": 1}))["ARN"]
    with pytest.raises(ValueError, match="holds no API key"):
        provider_api_key(arn)


def test_the_api_key_is_never_in_a_client_repr_or_error():
    client = DashScopeClient("sk-very-secret", base_url="http://127.0.0.1:9/api/v1")
    assert "sk-very-secret" not in repr(client.__dict__)
    with pytest.raises(Exception) as caught:
        client.fetch("t")
    assert "sk-very-secret" not in str(caught.value)
