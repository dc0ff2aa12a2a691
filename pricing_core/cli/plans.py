"""`pricing-core plans ...`: plan recommendations from real usage."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pricing_core.adapters.storage import open_database
from pricing_core.cli.common import operator_principal, parse_moment
from pricing_core.domain.errors import PricingError
from pricing_core.domain.money import format_money
from pricing_core.plans.advice import advise_plan, recommendation_json

app = typer.Typer(help="Plans: recommendations from real usage.", no_args_is_help=True)


@app.command("recommend")
def recommend(
    account: Annotated[str, typer.Option("--account", help="The account id.")],
    months: Annotated[
        int | None, typer.Option("--months", min=0, max=120, help="Past months to replay.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object.", metavar="")
    ] = False,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Take 'now' at this ISO timestamp (replaying the past)."),
    ] = None,
) -> None:
    """Replay the account's last months and this month's projection under every plan,
    and print the cheapest with the savings (the same as the plans page)."""

    try:
        advice = advise_plan(
            open_database(),
            operator_principal(),
            account_id=account,
            months=months,
            now=parse_moment(as_of),
        )
    except PricingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(recommendation_json(advice), indent=2))
        return
    rec = advice.recommendation
    typer.echo(f"account {account}: on {advice.current.name}")
    for month in rec.months:
        label = f"{month.month}{' (projected)' if month.projected else ''}"
        costs = ", ".join(f"{code} {format_money(cost)}" for code, cost in month.costs.items())
        typer.echo(f"  {label}: {month.messages:,} messages; {costs}")
    typer.echo(rec.sentence)
