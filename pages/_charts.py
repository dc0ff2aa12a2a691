"""Every Plotly figure of the dashboard. Figures only: the numbers arrive computed
(`pricing_core.analytics`), and the value labels are chosen there too."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import plotly.express as px
import plotly.graph_objects as go

from pricing_core import analytics
from pricing_core.analytics.common import in_unit
from pricing_core.analytics.plan_views import break_even, column_label, month_label
from pricing_core.config import get_settings
from pricing_core.domain.money import DisplayUnit, format_money
from pricing_core.plans.advice import PlanAdvice

PALETTE = (
    "#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2",
    "#B279A2", "#EECA3B", "#9D755D", "#FF9DA6", "#BAB0AC",
)  # fmt: skip


def _unit() -> DisplayUnit:
    return get_settings().display_unit


def money_axis(figure: go.Figure) -> None:
    """The value axis of a member's money chart: "$" ticks, or "credits" ones."""
    if _unit().credits:
        figure.update_yaxes(ticksuffix=" cr", tickformat=",~r")
    else:
        figure.update_yaxes(tickprefix="$")


def colors(keys: Any) -> dict[str, str]:
    """The same colour for the same model/operation in every chart of a page."""
    return {key: PALETTE[i % len(PALETTE)] for i, key in enumerate(sorted(set(keys)))}


def stacked_chart(
    series: Any, *, measure: str, title: str, palette: dict[str, str] | None = None
) -> go.Figure:
    """A stacked bar chart of `analytics.usage_series` output (period, key, value).
    Periods are calendar days, so the axis names days ("2026-11-28"), never a time of
    day, even for a single bar."""
    cost = str(measure) == "cost"
    frame = series.assign(
        label=analytics.value_labels(series["value"], measure),
        period=[p.isoformat() for p in series["period"]],
        value=in_unit(series["value"]) if cost else series["value"],
    )
    figure = px.bar(
        frame,
        x="period",
        y="value",
        color="key",
        color_discrete_map=palette or colors(frame["key"]),
        category_orders={"key": sorted(palette or colors(frame["key"]))},
        custom_data=["label", "key"],
        title=title,
        labels={"period": "", "value": _unit().name if cost else "tokens", "key": ""},
    )
    figure.update_traces(hovertemplate="%{x}<br>%{customdata[1]}: %{customdata[0]}<extra></extra>")
    figure.update_xaxes(type="category")
    figure.update_layout(
        barmode="stack",
        legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0},  # below the dates
        margin={"l": 10, "r": 10, "t": 50, "b": 60},
        height=400,
    )
    if cost:
        money_axis(figure)
    return figure


def share_chart(
    share: Any, *, measure: str, title: str, palette: dict[str, str] | None = None
) -> go.Figure:
    """A donut of `analytics.usage_share` output (key, value, percent)."""
    frame = share.assign(label=analytics.value_labels(share["value"], measure))
    figure = px.pie(
        frame, names="key", values="value", hole=0.5, title=title, custom_data=["label"]
    )
    mapping = palette or colors(frame["key"])
    figure.update_traces(
        hovertemplate="%{label}: %{customdata[0]} (%{percent})<extra></extra>",
        textinfo="percent",
        sort=False,
        marker={"colors": [mapping[k] for k in frame["key"]]},
    )
    figure.update_layout(margin={"l": 10, "r": 10, "t": 50, "b": 10}, height=320)
    return figure


def bar_chart(
    points: Iterable[Any], *, value: str, title: str, x: str = "period", key: str = "key"
) -> go.Figure:
    """Stacked bars of `value` per `x`, one trace per `key` (dataclass attributes)."""
    traces: dict[str, tuple[list[Any], list[Any]]] = {}
    for p in points:
        xs, ys = traces.setdefault(getattr(p, key), ([], []))
        xs.append(getattr(p, x))
        ys.append(getattr(p, value))
    fig = go.Figure([go.Bar(name=k, x=xs, y=ys) for k, (xs, ys) in traces.items()])
    fig.update_layout(
        barmode="stack",
        title=title,
        yaxis_tickformat="$,.2f",
        legend_orientation="h",
        margin={"t": 40, "b": 10},
        height=360,
    )
    return fig


def spend_trend_chart(days: Sequence[tuple[Any, Any]]) -> go.Figure:
    """A small bar chart of spend per day (`Overview.last_30_days`: (day, USD))."""
    xs = [d for d, _ in days]
    ys = in_unit([v for _, v in days])
    labels = [_unit().format(v) for _, v in days]
    figure = go.Figure(
        go.Bar(
            x=xs,
            y=ys,
            customdata=labels,
            marker_color=PALETTE[0],
            hovertemplate="%{x|%Y-%m-%d}: %{customdata}<extra></extra>",
        )
    )
    figure.update_layout(
        title="Spend, last 30 days",
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        height=200,
        showlegend=False,
    )
    money_axis(figure)
    return figure


def revenue_chart(periods: Sequence[Any]) -> go.Figure:
    """Usage revenue and provider cost (bars), margin and cash in (lines) per period."""
    xs = [p.period for p in periods]
    fig = go.Figure(
        [
            go.Bar(name="Usage revenue", x=xs, y=[p.usage_revenue for p in periods]),
            go.Bar(name="Provider cost", x=xs, y=[p.provider_cost for p in periods]),
            go.Scatter(name="Margin", x=xs, y=[p.margin for p in periods], mode="lines+markers"),
            go.Scatter(
                name="Cash in",
                x=xs,
                y=[p.cash_in for p in periods],
                mode="lines+markers",
                line={"dash": "dot"},
            ),
        ]
    )
    fig.update_layout(
        barmode="group",
        yaxis_tickformat="$,.2f",
        legend_orientation="h",
        height=380,
        margin={"t": 20, "b": 10},
    )
    return fig


def plan_cost_chart(advice: PlanAdvice) -> go.Figure:
    """Grouped bars: what each plan would have cost in each month (USD)."""
    rec = advice.recommendation
    months = [month_label(m.month, m.projected) for m in rec.months]
    fig = go.Figure(
        [
            go.Bar(
                name=column_label(advice, code),
                x=months,
                y=[m.costs[code] for m in rec.months],
                text=[format_money(m.costs[code]) for m in rec.months],
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


def break_even_chart(advice: PlanAdvice) -> go.Figure:
    """Monthly cost against messages per month for every plan, with the account's
    months marked (data: `plan_views.break_even`)."""
    data = break_even(advice)
    fig = go.Figure(
        [
            go.Scatter(
                name=data.names.get(code, code),
                x=[p.messages for p in data.points],
                y=[p.costs[code] for p in data.points],
                mode="lines",
            )
            for code in data.points[0].costs
        ]
    )
    fig.add_trace(
        go.Scatter(
            name="Your months (pay-as-you-go cost)",
            x=[u.messages for u in data.history],
            y=[u.payg_cost for u in data.history],
            text=[month_label(u.month, u.projected) for u in data.history],
            customdata=[format_money(u.payg_cost) for u in data.history],
            hovertemplate="%{text}: %{x:,} messages, %{customdata}<extra></extra>",
            mode="markers",
            marker={"symbol": "diamond", "size": 11, "color": "black"},
        )
    )
    fig.update_layout(
        xaxis_title="messages per month", yaxis_title="USD per month", legend_title="Plan"
    )
    fig.update_xaxes(range=[0, data.top])
    return fig


def drift_chart(days: Sequence[Any]) -> go.Figure:
    """Our provider cost against the provider's bill per day (`Drift` rows); flagged
    days are marked."""
    x = [d.day for d in days]
    fig = go.Figure(
        [
            go.Bar(name="our provider cost", x=x, y=[d.ours for d in days]),
            go.Bar(name="provider's bill", x=x, y=[d.billed for d in days]),
        ]
    )
    flagged = [d for d in days if d.flagged]
    fig.add_trace(
        go.Scatter(
            name="over tolerance",
            x=[d.day for d in flagged],
            y=[d.billed for d in flagged],
            mode="markers",
            marker={"symbol": "x", "size": 12, "color": "crimson"},
        )  # fmt: skip
    )
    fig.update_layout(
        barmode="group",
        title="Provider cost: ours against the bill",
        yaxis_tickformat="$,.2f",
        legend_orientation="h",
        margin={"t": 40, "b": 10},
        height=360,
    )
    return fig


def explore_chart(points: Any, *, money: bool, title: str) -> go.Figure:
    """Explore's answer (period, group, subgroup, value) as stacked bars, one colour per
    group (and subgroup)."""
    frame = points.assign(
        key=[
            g if not s else f"{g} · {s}"
            for g, s in zip(points["group"], points["subgroup"], strict=True)
        ],
        # plotting only; the table shows exact values
        y=[float(v) for v in (in_unit(points["value"]) if money else points["value"])],
    )
    axis = _unit().name if money else ""
    figure = px.bar(frame, x="period", y="y", color="key", title=title,
                    color_discrete_map=colors(frame["key"]),
                    labels={"period": "", "y": axis, "key": ""})  # fmt: skip
    figure.update_layout(
        barmode="stack",
        legend={"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        height=420,
    )
    if money:
        money_axis(figure)
    return figure
