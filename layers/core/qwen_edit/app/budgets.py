"""Spend caps at acceptance (README "Budgets and keys").

`reserve` is called by service.accept for every job; a tenant without caps costs nothing more
than the read of its settings. The end of a job settles its reservation in
lifecycle.settle, called by lifecycle.announce.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

from qwen_edit.app import webhooks
from qwen_edit.context import Context
from qwen_edit.domain import budgets
from qwen_edit.domain.budgets import (
    Balance,
    BudgetAlert,
    BudgetHold,
    PeriodCap,
    Refused,
    cost,
    fits,
    money,
    worst_case_images,
)
from qwen_edit.domain.catalog import RuleViolation
from qwen_edit.domain.errors import BudgetExceeded, InvalidRequest
from qwen_edit.domain.jobs import now_utc
from qwen_edit.domain.requests import ValidRequest
from qwen_edit.domain.tenants import TenantSettings
from qwen_edit.settings import Pricing

logger = Logger(child=True)


def reserve(
    ctx: Context, tenant: str, settings: TenantSettings | None, valid: ValidRequest
) -> BudgetHold | None:
    """Reserve the job's worst-case cost under the tenant's caps (None: it has none).
    BudgetExceeded when it does not fit; InvalidRequest when a step's model has no price,
    since a capped tenant's job must have a known worst case."""
    now = now_utc()
    caps = budgets.caps_of(settings, now)
    if settings is None or not caps:
        return None
    prices = ctx.need(Pricing).model_prices
    models = [valid.spec.id, *(step.model or "" for step in valid.body.then or ())]
    images = worst_case_images(valid.body.model_dump(exclude_none=True), models)
    unpriced = [
        RuleViolation(
            "model" if index == 0 else f"then[{index - 1}].model",
            "priced",
            f"{model} has no price (ModelPrices), and your account has a spend cap: only "
            "priced models can be reserved against it",
        )
        for index, model in enumerate(models)
        if prices.per_image_price(model) is None
    ]
    if unpriced:
        raise InvalidRequest.of(unpriced)
    price_of = {model: money(prices.per_image_price(model) or 0) for model in images}
    amount = cost(images, price_of)
    try:
        reserved = ctx.budgets.reserve(tenant, caps, amount, enforce=not settings.observe_only)
    except Refused as refused:
        full = [
            cap.period
            for cap, balance in zip(caps, refused.balances, strict=True)
            if not fits(balance, cap, amount)
        ]
        _announce_thresholds(ctx, settings, caps, refused.balances, full)
        raise _exceeded(settings, caps, refused.balances, amount, prices.currency) from None
    if reserved.over:  # observe-only: what an enforced cap would have refused
        ctx.metrics.count("BudgetWouldRefuse")
        logger.info(
            "budget would refuse",
            extra={"tenant": tenant, "periods": reserved.over, "cost": str(amount)},
        )
    _announce_thresholds(ctx, settings, caps, reserved.balances, reserved.over)
    return BudgetHold(
        periods=[cap.period for cap in caps],
        amount=amount,
        prices=price_of,
        observe_only=settings.observe_only,
    )


def release(ctx: Context, tenant: str, hold: BudgetHold | None) -> None:
    """Take back the reservation of a job that was not made after all (a failed start, a
    redelivered upload or event whose job exists)."""
    if hold is not None:
        ctx.budgets.release(tenant, hold.periods, hold.amount)


def statuses(ctx: Context, tenant: str, currency: str | None) -> list[budgets.BudgetStatus] | None:
    """The tenant's caps now, with what is spent and reserved (None: it has no caps)."""
    settings = ctx.tenants.get(tenant)
    caps = budgets.caps_of(settings, now_utc())
    if settings is None or not caps:
        return None
    balances = ctx.budgets.balances(tenant, [cap.period for cap in caps])
    return [
        budgets.status(cap, balance, currency, settings.observe_only)
        for cap, balance in zip(caps, balances, strict=True)
    ]


_ADJECTIVE = {"month": "monthly", "day": "daily"}  # of a period id's kind (month:…, day:…)


def _exceeded(
    settings: TenantSettings,
    caps: list[PeriodCap],
    balances: list[Balance],
    amount: object,
    currency: str | None,
) -> BudgetExceeded:
    details = [
        {
            "limit": "budget",
            **budgets.status(cap, balance, currency, False).model_dump(
                mode="json", exclude={"observe_only", "would_refuse"}
            ),
            "cost": float(str(amount)),
        }
        for cap, balance in zip(caps, balances, strict=True)
    ]
    room = [d["cap"] - d["spent"] - d["reserved"] for d in details]
    tight = next((i for i, left in enumerate(room) if left < details[i]["cost"]), 0)
    first = details[tight]  # the cap that refuses (the day's may, where the month's has room)
    return BudgetExceeded(
        f"this job may cost up to {first['cost']} {currency or ''}".rstrip()
        + f", and your {_ADJECTIVE[first['period'].split(':')[0]]} spend cap has "
        f"{round(room[tight], 6)}"
        f" left until {first['resets_at']}; wait for the reset or ask for a higher cap",
        details,
    )


def _announce_thresholds(
    ctx: Context,
    settings: TenantSettings,
    caps: list[PeriodCap],
    balances: list[Balance],
    full: list[str],
) -> None:
    """One `Budget Threshold Reached` per (tenant, period, threshold): 80% and 100% of the
    cap, counted on spent + reserved; a job refused for want of room is 100% too. Best
    effort: a lost notice never costs the submission."""
    currency = ctx.need(Pricing).model_prices.currency
    for cap, balance in zip(caps, balances, strict=True):
        thresholds = budgets.reached(balance, cap.cap)
        if cap.period in full and 100 not in balance.alerts and 100 not in thresholds:
            thresholds.append(100)
        for threshold in thresholds:
            try:
                if not ctx.budgets.claim_alert(settings.tenant, cap.period, threshold):
                    continue
                status = budgets.status(cap, balance, currency, settings.observe_only)
                alert = BudgetAlert(
                    **status.model_dump(), tenant=settings.tenant, threshold=threshold
                )
                ctx.events.budget_threshold(alert)
                if settings.webhook_url:
                    period = cap.period.replace(":", "-")
                    webhook_id = f"msg_budget_{settings.tenant}_{period}_{threshold}"
                    data = alert.model_dump(mode="json")
                    delivery = webhooks.notice(
                        webhook_id, settings.webhook_url, "budget.threshold_reached", data
                    )
                    ctx.webhook_outbox.send(delivery, 0)
                ctx.metrics.count("BudgetThresholdsReached", Threshold=str(threshold))
            except Exception:
                logger.exception(
                    "budget threshold not announced", extra={"tenant": settings.tenant}
                )
