"""Runtime settings of the Lambda functions, read once from the environment (template.yaml
sets it)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from qwen_edit.domain.provider import Region


def _comma_list(value: object) -> object:
    """Template parameters carry lists as comma-separated strings."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CommaList = Annotated[tuple[str, ...], BeforeValidator(_comma_list)]


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    region: Region = Field(Region.SINGAPORE, alias="DASHSCOPE_REGION")
    base_url: str | None = Field(None, alias="DASHSCOPE_BASE_URL")
    api_key_secret_arn: str = Field(alias="DASHSCOPE_API_KEY_SECRET_ARN")
    task_api_base_url: str | None = Field(None, alias="TASK_API_BASE_URL")
    default_model: str = Field("qwen-image-edit-plus", alias="DEFAULT_MODEL")
    default_generation_model: str = Field("qwen-image-plus", alias="DEFAULT_GENERATION_MODEL")

    # The service's own resources (template.yaml sets them; STATE_MACHINE_ARN only where used).
    jobs_table: str | None = Field(None, alias="JOBS_TABLE")
    limits_table: str | None = Field(None, alias="LIMITS_TABLE")
    input_bucket: str | None = Field(None, alias="INPUT_BUCKET")
    output_bucket: str | None = Field(None, alias="OUTPUT_BUCKET")
    event_bus_name: str = Field("default", alias="EVENT_BUS_NAME")
    state_machine_arn: str | None = Field(None, alias="STATE_MACHINE_ARN")
    idempotency_table: str | None = Field(None, alias="IDEMPOTENCY_TABLE")
    job_deadline_seconds: int = Field(3600, alias="JOB_DEADLINE_SECONDS", ge=60)
    webhook_queue_url: str | None = Field(None, alias="WEBHOOK_QUEUE_URL")
    webhook_dead_letter_queue_url: str | None = Field(None, alias="WEBHOOK_DEAD_LETTER_QUEUE_URL")
    webhook_secret_arn: str | None = Field(None, alias="WEBHOOK_SECRET_ARN")
    # Only the local stack sets this: webhook receivers and image URLs on loopback, for laptops.
    allow_loopback_urls: bool = Field(False, alias="ALLOW_LOOPBACK_URLS")
    # A job gives up after this many provider calls that failed with "try later" (429, 5xx,
    # timeouts, dropped connections), failing with the last error.
    max_provider_attempts: int = Field(10, alias="MAX_PROVIDER_ATTEMPTS", ge=1, le=100)
    # Input-bucket prefixes every tenant may name in `images` besides its own uploads.
    shared_input_prefixes: CommaList = Field((), alias="SHARED_INPUT_PREFIXES")
    # API key ids that act for the operator: they own (list, read, cancel) upload-triggered jobs.
    operator_api_key_ids: CommaList = Field((), alias="OPERATOR_API_KEY_IDS")
    admission_margin_seconds: float = Field(0.1, alias="ADMISSION_MARGIN_SECONDS", ge=0)

    @classmethod
    def from_env(cls, environ: dict[str, str]) -> Settings:
        # Empty template parameters arrive as empty strings: treat them as unset.
        return cls.model_validate({k: v for k, v in environ.items() if v != ""})
