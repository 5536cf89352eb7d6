"""Spend caps, reserved before admission (README "Budgets and keys").

A capped tenant's job reserves its worst-case provider cost (every step's most images times
its model's price) in each period its caps count (a calendar month, a day, in UTC), together
with the cap check, in one conditional write: spent + reserved + cost <= cap. When the job
ends, the reservation settles to what the provider billed (successful images only). Money is
kept in Decimal so that sums agree with DynamoDB's exact number arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from qwen_edit.domain.tenants import TenantSettings

THRESHOLDS = (80, 100)  # percent of a cap: one Budget Threshold Reached each, per period
THRESHOLD_DETAIL_TYPE = "Budget Threshold Reached"
PERIOD_RETENTION = timedelta(days=400)  # the ledger's TTL: a year of months stays readable


def money(value: float | Decimal | int | str) -> Decimal:
    """An amount as an exact decimal (floats through their shortest repr: 0.03 is 0.03)."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


class Period(StrEnum):
    MONTH = "month"
    DAY = "day"

    def id_at(self, at: datetime) -> str:
        at = at.astimezone(UTC)
        return f"month:{at:%Y-%m}" if self is Period.MONTH else f"day:{at:%Y-%m-%d}"

    def resets_at(self, at: datetime) -> datetime:
        at = at.astimezone(UTC)
        if self is Period.DAY:
            return datetime(at.year, at.month, at.day, tzinfo=UTC) + timedelta(days=1)
        return datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)


class PeriodCap(BaseModel):
    """One cap as it applies now: its ledger item (`period`), amount and reset time."""

    model_config = ConfigDict(defer_build=True)

    period: str
    cap: Decimal
    resets_at: datetime


def caps_of(settings: TenantSettings | None, at: datetime) -> list[PeriodCap]:
    """The tenant's caps in force at `at`: none for a tenant without settings or caps."""
    if settings is None:
        return []
    amounts = ((Period.MONTH, settings.monthly_cap), (Period.DAY, settings.daily_cap))
    return [
        PeriodCap(period=kind.id_at(at), cap=money(cap), resets_at=kind.resets_at(at))
        for kind, cap in amounts
        if cap is not None
    ]


class Balance(BaseModel):
    """A (tenant, period) ledger item."""

    model_config = ConfigDict(defer_build=True)

    period: str
    spent: Decimal = Decimal(0)
    reserved: Decimal = Decimal(0)
    would_refuse: int = 0  # observe-only: submissions the cap would have refused
    alerts: list[int] = Field(default_factory=list)  # thresholds announced already


def fits(balance: Balance, cap: PeriodCap, amount: Decimal) -> bool:
    return balance.spent + balance.reserved + amount <= cap.cap


class Reserved(BaseModel):
    """A reservation made: the balances after it, and (observe-only) the periods whose caps
    would have refused it."""

    model_config = ConfigDict(defer_build=True)

    balances: list[Balance]
    over: list[str] = Field(default_factory=list)


class Refused(Exception):
    """The ledger's answer to a reservation that does not fit (nothing was written)."""

    def __init__(self, balances: list[Balance]):
        super().__init__("over the cap")
        self.balances = balances


class BudgetHold(BaseModel):
    """What a capped job reserved, kept on its job record until it settles."""

    model_config = ConfigDict(defer_build=True)

    periods: list[str]
    amount: Decimal
    prices: dict[str, Decimal]  # per image, as they were at acceptance (settled at these)
    observe_only: bool = False
    settled_at: datetime | None = None  # set by the ledger's settlement, once


def worst_case_images(request: Mapping[str, Any], models: list[str]) -> dict[str, int]:
    """The most images each model can make for this request: each step's n, times the runs
    of a fanned-out step (the previous step's images), summed per model."""
    by_model: dict[str, int] = {}
    images = int(request.get("n") or 1)
    by_model[models[0]] = images
    for step, model in zip(request.get("then") or (), models[1:], strict=True):
        images = (images if step.get("fan_out") else 1) * int(step.get("n") or 1)
        by_model[model] = by_model.get(model, 0) + images
    return by_model


def cost(images_by_model: Mapping[str, int], prices: Mapping[str, Decimal]) -> Decimal:
    """Images times their model's price (every model must have one)."""
    return sum((prices[model] * images for model, images in images_by_model.items()), Decimal(0))


def reached(balance: Balance, cap: Decimal) -> list[int]:
    """The thresholds the committed amount (spent + reserved) has reached and that were not
    announced yet."""
    committed = balance.spent + balance.reserved
    return [t for t in THRESHOLDS if t not in balance.alerts and committed * 100 >= cap * t]


class BudgetStatus(BaseModel):
    """One cap as usage shows it, and as a refusal and a threshold notice describe it."""

    model_config = ConfigDict(defer_build=True)

    period: str = Field(description="`month:YYYY-MM` or `day:YYYY-MM-DD` (UTC)")
    cap: float
    spent: float = Field(description="what settled jobs cost (successful images only)")
    reserved: float = Field(description="the worst case of jobs not settled yet")
    currency: str | None
    resets_at: datetime
    observe_only: bool = Field(description="the cap refuses nothing; it only records")
    would_refuse: int = Field(0, description="observe-only: submissions it would have refused")


def status(cap: PeriodCap, balance: Balance, currency: str | None, observe: bool) -> BudgetStatus:
    return BudgetStatus(
        period=cap.period,
        cap=float(cap.cap),
        spent=float(balance.spent),
        reserved=float(balance.reserved),
        currency=currency,
        resets_at=cap.resets_at,
        observe_only=observe,
        would_refuse=balance.would_refuse,
    )


class BudgetAlert(BudgetStatus):
    """The detail of a `Budget Threshold Reached` event."""

    tenant: str
    threshold: int = Field(description="percent of the cap: 80 or 100")
