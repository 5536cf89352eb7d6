"""What one image of a model costs: the one price lookup (usage estimates read it).

The provider references the catalog comes from state no prices, so the service knows none of its
own: the operator sets them (template.yaml's ModelPrices), and every answer that uses them says
where they come from.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from qwen_edit.domain.catalog import MODELS

OPERATOR_SOURCE = "operator: the ModelPrices parameter"
NO_PRICES_SOURCE = "none set: costs are null; set the ModelPrices parameter"


class Prices(BaseModel):
    """A price per successful image for some catalog models (the provider bills those only)."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    currency: str | None = Field(
        None, min_length=1, max_length=8, description="the currency of every price, e.g. USD"
    )
    source: str = Field(description="where the prices come from")
    per_image: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict, description="model id → price of one image"
    )

    @model_validator(mode="before")
    @classmethod
    def _say_the_source(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("source") is None:
            source = OPERATOR_SOURCE if data.get("per_image") else NO_PRICES_SOURCE
            return {**data, "source": source}
        return data

    @field_validator("per_image")
    @classmethod
    def _catalog_models(cls, prices: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(prices) - set(MODELS))
        if unknown:
            raise ValueError(f"not models of the catalog: {', '.join(unknown)}")
        return prices

    @model_validator(mode="after")
    def _priced_in_a_currency(self) -> Prices:
        if self.per_image and self.currency is None:
            raise ValueError("prices need a currency")
        return self

    def per_image_price(self, model: str) -> float | None:
        """The price of one image of `model`, or None when it has none."""
        return self.per_image.get(model)
