"""What the plans page shows, ready to render (no streamlit here): the allowance
status, the plans on offer, the per-month cost table and the break-even curves
(`pages/_charts.py` draws them).

Amounts stay Decimal until they are formatted (`common.shown`, in the display unit);
the charts receive Decimal values and Plotly serializes them for the browser.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from pricing_core.analytics.common import shown
from pricing_core.domain.forecast import PACE_WINDOW_DAYS
from pricing_core.domain.money import format_rate
from pricing_core.domain.plan_advice import CurvePoint, average_payg_price, cost_curves
from pricing_core.domain.plans import PAYG, MonthUsage, Plan
from pricing_core.plans.advice import PlanAdvice

PROJECTED = " (projected)"


@dataclass(frozen=True, slots=True)
class AllowanceStatus:
    """This month's messages against the current plan's allowance.

    `percent` is 0-100 for the progress bar, None when there is no finite allowance
    (pay-as-you-go, unlimited plans).
    """

    plan_name: str
    messages: int
    allowance: int | None
    percent: int | None
    label: str
    bill_so_far: str
    estimated_bill: str
    estimate_note: str  # why there is no estimate yet ("" when there is one)


def allowance_status(advice: PlanAdvice) -> AllowanceStatus:
    """The current plan, this month's messages vs its allowance, and the bills."""
    plan, used = advice.current, advice.month_to_date.messages
    allowance = None if plan.is_payg else plan.included_messages
    if plan.is_payg:
        label = f"{used:,} messages this month, each at its own price (no included messages)"
        percent = None
    elif allowance is None:
        label = f"{used:,} messages this month (unlimited included)"
        percent = None
    else:
        percent = 100 if allowance == 0 else min(100, used * 100 // allowance)
        beyond = max(0, used - allowance)
        label = f"{used:,} of {allowance:,} included messages used this month"
        if beyond:
            label += (
                f"; {beyond:,} beyond the allowance at {format_rate(plan.overage_rate, 'message')}"
            )
    return AllowanceStatus(
        plan_name=plan.name,
        messages=used,
        allowance=allowance,
        percent=percent,
        label=label,
        bill_so_far=shown(advice.this_month.total + advice.month_to_date.other_cost),
        estimated_bill="n/a" if advice.estimated_bill is None else shown(advice.estimated_bill),
        estimate_note=""
        if advice.estimated_bill is not None
        else f"Too little history to project: {advice.history_days} complete day"
        f"{'' if advice.history_days == 1 else 's'} of usage, {PACE_WINDOW_DAYS} needed.",
    )


def describe_plan(plan: Plan) -> dict[str, str]:
    """One row of the plans-on-offer table (formatted strings)."""
    if plan.is_payg:
        return {
            "Plan": plan.name,
            "Monthly fee": "none",
            "Included messages": "none",
            "Per message": "its own price",
            "Monthly cap": "none",
        }
    return {
        "Plan": plan.name,
        "Monthly fee": "talk to us"
        if plan.monthly_fee is None
        else f"{shown(plan.monthly_fee)}/month",
        "Included messages": "unlimited"
        if plan.included_messages is None
        else f"{plan.included_messages:,}",
        "Per message": "included"
        if plan.included_messages is None
        else f"{format_rate(plan.overage_rate, 'message')} beyond",
        "Monthly cap": "none" if plan.monthly_cap is None else shown(plan.monthly_cap),
    }


def column_label(advice: PlanAdvice, code: str) -> str:
    """A plan's column heading: its name, marked current and/or recommended."""
    rec = advice.recommendation
    name = rec.names[code]
    marks = [
        m for m, c in (("current", rec.current), ("recommended", rec.recommended)) if c == code
    ]
    return f"{name} ({', '.join(marks)})" if marks else name


def cost_table(advice: PlanAdvice) -> pd.DataFrame:
    """Months as rows (the projected month last, labelled), messages, and each plan's
    cost as formatted text; a last row with the period's totals."""
    rec = advice.recommendation
    codes = list(rec.totals)
    rows = [
        {"Month": month_label(m.month, m.projected), "Messages": f"{m.messages:,}"}
        | {column_label(advice, c): shown(m.costs[c]) for c in codes}
        for m in rec.months
    ]
    rows.append(
        {"Month": "Total", "Messages": f"{sum(m.messages for m in rec.months):,}"}
        | {column_label(advice, c): shown(rec.totals[c]) for c in codes}
    )
    return pd.DataFrame(rows)


def break_even_caption(advice: PlanAdvice) -> str:
    """How the break-even chart prices pay-as-you-go, in words."""
    price = average_payg_price(advice.history)
    if not price:
        return (
            "Only the plans' fees are drawn: pay-as-you-go appears at your own price per "
            "message once you have priced messages."
        )
    return (
        f"Pay-as-you-go is drawn at your average {format_rate(price, 'message')}; the "
        "diamonds are your months (this month projected). Where a plan's line is lowest, "
        "that plan is cheapest for that many messages a month."
    )


@dataclass(frozen=True, slots=True)
class BreakEven:
    """The break-even chart's data: every plan's monthly cost as a function of
    messages a month (`points`, pay-as-you-go at the account's average price per
    message) up to `top` messages, and the account's own months (`history`)."""

    points: list[CurvePoint]
    top: int
    names: dict[str, str]
    history: list[MonthUsage]


def break_even(advice: PlanAdvice) -> BreakEven:
    """The curves wide enough to show the account's months and where pay-as-you-go
    crosses each plan's fee. Exact Decimal USD."""
    history = advice.history
    price = average_payg_price(history)
    busiest = max((u.messages for u in history), default=0)
    crossings = [
        int(p.monthly_fee / price) for p in advice.plans if p.monthly_fee is not None and price > 0
    ]
    top = max(100, busiest * 2, max(crossings, default=0) * 5 // 4)
    points = list(cost_curves(advice.plans, payg_price=price, max_messages=top, points=60))
    if not price:  # no priced message yet: a $0 line would mislead, so none is drawn
        points = [replace(p, costs={c: v for c, v in p.costs.items() if c != PAYG.code})
                  for p in points]  # fmt: skip
    return BreakEven(points, top, dict(advice.recommendation.names), list(history))


def month_label(month: str, projected: bool) -> str:
    """A month's label in the plan tables and charts ("2025-03 (projected)")."""
    return month + (PROJECTED if projected else "")
