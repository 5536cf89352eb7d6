"""Runtime settings of the Lambda functions, read once from the environment (template.yaml sets it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from qwen_edit.providers.dashscope import Region


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
    # Only the local stack sets this: plain-http receivers on loopback, for laptops.
    webhook_allow_loopback: bool = Field(False, alias="WEBHOOK_ALLOW_LOOPBACK")
    admission_margin_seconds: float = Field(0.1, alias="ADMISSION_MARGIN_SECONDS", ge=0)

    @classmethod
    def from_env(cls, environ: dict[str, str]) -> Settings:
        # Empty template parameters arrive as empty strings: treat them as unset.
        return cls.model_validate({k: v for k, v in environ.items() if v != ""})
