"""`pricing-core accounts ...`: find accounts (as the operator)."""

from __future__ import annotations

from typing import Annotated

import typer

from pricing_core.adapters.storage import open_database
from pricing_core.analytics.accounts import search_accounts
from pricing_core.cli.common import operator_principal
from pricing_core.domain.money import format_usd

app = typer.Typer(help="Find accounts.", no_args_is_help=True)


@app.command("list")
def list_command(
    search: Annotated[str, typer.Option(help="Part of an id, a name or an email.")] = "",
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many.")] = 50,
) -> None:
    """Accounts by name (numbers in names compared as numbers): id, name, balance,
    available balance, spend this month and plan."""
    found = search_accounts(open_database(), operator_principal(), search, limit=limit)
    if not found:
        typer.echo("no account matches" if search else "no accounts yet")
    for a in found:
        typer.echo(
            f"{a.account_id}\t{a.name}\tbalance {format_usd(a.balance, total=True)}"
            f"\tavailable {format_usd(a.available, total=True)}"
            f"\tthis month {format_usd(a.spend_this_month, total=True)}\t{a.plan}"
        )
