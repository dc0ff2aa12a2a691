"""`pricing-core revenue ...`: revenue, provider cost and margin, as on the Revenue page."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from pricing_core.adapters.storage import open_database
from pricing_core.analytics.revenue import PeriodFigures, RevenueReport, revenue_report
from pricing_core.cli.common import fail, operator_principal
from pricing_core.domain.errors import PricingError
from pricing_core.domain.money import format_money, usd_str
from pricing_core.domain.periods import Granularity, parse_day

app = typer.Typer(help="Revenue, provider cost and margin.", no_args_is_help=True)


@app.command("report")
def revenue_report_command(
    start: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD (configured zone).")],
    end: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD (inclusive).")],
    granularity: Annotated[Granularity, typer.Option(help="Period length.")] = Granularity.DAY,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object.", metavar="")
    ] = False,
) -> None:
    """Cash in, usage revenue, provider cost and margin per period, as on the Revenue page."""

    try:
        report = revenue_report(
            open_database(),
            operator_principal(),
            start=parse_day(start),
            end=parse_day(end),
            granularity=granularity,
        )
    except PricingError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps(report_json(report), indent=2))
        return
    typer.echo(
        f"{'period':<12}{'cash in':>14}{'usage revenue':>16}{'provider cost':>16}"
        f"{'margin':>14}{'margin %':>10}"
    )
    for p in (*report.periods, report.totals):
        label = p.period.isoformat() if p.period else "total"
        pct = "-" if p.margin_pct is None else f"{p.margin_pct}%"
        typer.echo(
            f"{label:<12}{format_money(p.cash_in):>14}"
            f"{format_money(p.usage_revenue):>16}"
            f"{format_money(p.provider_cost):>16}"
            f"{format_money(p.margin):>14}{pct:>10}"
        )
    typer.echo(f"outstanding prepaid liability: {format_money(report.outstanding_liability)}")


def _figures_json(f: PeriodFigures) -> dict[str, Any]:
    pct = f.margin_pct
    return {
        "cash_in_usd": usd_str(f.cash_in),
        "usage_revenue_usd": usd_str(f.usage_revenue),
        "provider_cost_usd": usd_str(f.provider_cost),
        "margin_usd": usd_str(f.margin),
        "margin_pct": None if pct is None else format(pct, "f"),
    }


def report_json(report: RevenueReport) -> dict[str, Any]:
    """The CLI's JSON object: periods (named by their first day), totals and the
    outstanding liability. Amounts are decimal strings; `margin_pct` is a decimal
    string with 2 places, or null when there is no usage revenue."""
    return {
        "periods": [
            {"period": p.period.isoformat(), **_figures_json(p)}  # type: ignore[union-attr]
            for p in report.periods
        ],
        "totals": _figures_json(report.totals),
        "outstanding_liability_usd": usd_str(report.outstanding_liability),
    }
