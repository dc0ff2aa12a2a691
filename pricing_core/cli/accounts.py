"""`pricing-core accounts ...`: find accounts and set a balance (as the operator)."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from pricing_core.adapters.storage import open_database
from pricing_core.admin.accounts import set_balance
from pricing_core.analytics.accounts import search_accounts
from pricing_core.cli.common import fail, operator_principal
from pricing_core.domain.errors import PricingError
from pricing_core.domain.money import format_money

app = typer.Typer(help="Find accounts; set a balance.", no_args_is_help=True)


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
            f"{a.account_id}\t{a.name}\tbalance {format_money(a.balance)}"
            f"\tavailable {format_money(a.available)}"
            f"\tthis month {format_money(a.spend_this_month)}\t{a.plan}"
        )


@app.command("set-balance")
def set_balance_command(
    account: Annotated[str, typer.Argument(help="The account id.")],
    target: Annotated[str, typer.Argument(help="The new balance in USD, e.g. 50.00.")],
    reason: Annotated[str, typer.Option(help="Why (required; kept in the audit log).")],
    key: Annotated[
        str | None,
        typer.Option(help="Idempotency key: re-running with it changes nothing. Default: new."),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm a large difference.", metavar="")
    ] = False,
) -> None:
    """Set an account's balance to USD: posts the difference as one audited adjustment,
    computed under the wallet's lock (safe while charges run)."""
    try:
        posting = set_balance(
            open_database(),
            operator_principal(),
            account,
            target,
            reason=reason,
            idempotency_key=key or uuid.uuid4().hex,
            confirmed=yes,
        )
    except PricingError as exc:
        raise fail(exc) from None
    entry = posting.entry
    typer.echo(
        f"{'already applied: ' if posting.replayed else ''}adjustment "
        f"{format_money(entry.amount)} (ledger entry {entry.id}); "
        f"balance {format_money(entry.balance_after)}"
    )
