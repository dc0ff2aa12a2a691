"""What the plans page shows, ready to render (no streamlit here): the allowance
status, the plans on offer, the per-month cost table and the two Plotly charts.

Amounts stay Decimal until they are formatted (`money.format_usd`); the charts
receive Decimal values and Plotly serializes them for the browser.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

from pricing_core.domain.money import format_usd
from pricing_core.domain.plans import Plan, average_payg_price, cost_curves
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
            label += f"; {beyond:,} beyond the allowance at {format_usd(plan.overage_rate)} each"
    return AllowanceStatus(
        plan_name=plan.name,
        messages=used,
        allowance=allowance,
        percent=percent,
        label=label,
        bill_so_far=format_usd(
            advice.this_month.total + advice.month_to_date.other_cost, total=True
        ),
        estimated_bill=format_usd(advice.estimated_bill, total=True),
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
        else f"{format_usd(plan.monthly_fee, total=True)}/month",
        "Included messages": "unlimited"
        if plan.included_messages is None
        else f"{plan.included_messages:,}",
        "Per message": "included"
        if plan.included_messages is None
        else f"{format_usd(plan.overage_rate)} beyond",
        "Monthly cap": "none"
        if plan.monthly_cap is None
        else format_usd(plan.monthly_cap, total=True),
    }


def _column(advice: PlanAdvice, code: str) -> str:
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
        {"Month": m.month + (PROJECTED if m.projected else ""), "Messages": f"{m.messages:,}"}
        | {_column(advice, c): format_usd(m.costs[c], total=True) for c in codes}
        for m in rec.months
    ]
    rows.append(
        {"Month": "Total", "Messages": f"{sum(m.messages for m in rec.months):,}"}
        | {_column(advice, c): format_usd(rec.totals[c], total=True) for c in codes}
    )
    return pd.DataFrame(rows)


def cost_chart(advice: PlanAdvice) -> go.Figure:
    """Grouped bars: what each plan would have cost in each month (USD)."""
    rec = advice.recommendation
    months = [m.month + (PROJECTED if m.projected else "") for m in rec.months]
    fig = go.Figure(
        [
            go.Bar(
                name=_column(advice, code),
                x=months,
                y=[m.costs[code] for m in rec.months],
                text=[format_usd(m.costs[code], total=True) for m in rec.months],
                hovertemplate="%{x}: %{text}<extra>" + rec.names[code] + "</extra>",
            )
            for code in rec.totals
        ]
    )
    fig.update_layout(
        barmode="group", yaxis_title="USD per month", xaxis_title=None, legend_title="Plan"
    )
    fig.update_xaxes(type="category")  # "2025-03" is a month, not a date
    return fig


def break_even_caption(advice: PlanAdvice) -> str:
    """How the break-even chart prices pay-as-you-go, in words."""
    price = average_payg_price(advice.history)
    return (
        f"Pay-as-you-go is drawn at your average {format_usd(price)} per message; the "
        "diamonds are your months (this month projected). Where a plan's line is lowest, "
        "that plan is cheapest for that many messages a month."
    )


def break_even_chart(advice: PlanAdvice) -> go.Figure:
    """Monthly cost as a function of messages per month for every plan (pay-as-you-go
    at this account's average price per message), with the account's months marked."""
    history = advice.history
    price = average_payg_price(history)
    busiest = max((u.messages for u in history), default=0)
    # wide enough to show the user's months and where pay-as-you-go crosses each fee
    crossings = [
        int(p.monthly_fee / price) for p in advice.plans if p.monthly_fee is not None and price > 0
    ]
    top = max(100, busiest * 2, max(crossings, default=0) * 5 // 4)
    points = cost_curves(advice.plans, payg_price=price, max_messages=top, points=60)
    names = advice.recommendation.names
    fig = go.Figure(
        [
            go.Scatter(
                name=names.get(code, code),
                x=[p.messages for p in points],
                y=[p.costs[code] for p in points],
                mode="lines",
            )
            for code in points[0].costs
        ]
    )
    fig.add_trace(
        go.Scatter(
            name="Your months (pay-as-you-go cost)",
            x=[u.messages for u in history],
            y=[u.payg_cost for u in history],
            text=[u.month + (PROJECTED if u.projected else "") for u in history],
            customdata=[format_usd(u.payg_cost, total=True) for u in history],
            hovertemplate="%{text}: %{x:,} messages, %{customdata}<extra></extra>",
            mode="markers",
            marker={"symbol": "diamond", "size": 11, "color": "black"},
        )
    )
    fig.update_layout(
        xaxis_title="messages per month", yaxis_title="USD per month", legend_title="Plan"
    )
    fig.update_xaxes(range=[0, top])
    return fig
