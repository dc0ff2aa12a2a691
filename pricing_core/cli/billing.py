"""`pricing-core billing ...`: monthly billing records and statements, auto top-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pricing_core.adapters.storage import open_database
from pricing_core.billing.autotopup import configure_auto_topup
from pricing_core.billing.topups import run_topups
from pricing_core.cli.common import fail, operator_principal, parse_moment
from pricing_core.domain.errors import PricingError
from pricing_core.domain.money import format_money
from pricing_core.plans.records import all_billing_records, generate_billing_records
from pricing_core.plans.statements import statement_pdf, statements_csv

app = typer.Typer(help="Billing records, statements and auto top-up.", no_args_is_help=True)

Now = Annotated[str | None, typer.Option("--now", help="ISO 8601 time to act at (default: now).")]


@app.command("records")
def records(now: Now = None) -> None:
    """Write the billing record of every account and ended month that has none."""
    written = generate_billing_records(open_database(), now=parse_moment(now))
    typer.echo(f"{written} billing record(s) written")


@app.command("statements")
def statements(
    period: Annotated[str | None, typer.Option("--period", help="YYYY-MM (default: all).")] = None,
) -> None:
    """Print the billing records as CSV (exact USD)."""
    rows = all_billing_records(open_database(), operator_principal(), period=period)
    typer.echo(statements_csv(rows), nl=False)


@app.command("statement-pdf")
def statement(
    account: str,
    period: str,
    output: Annotated[Path, typer.Option("--output", "-o", help="PDF file to write.")],
) -> None:
    """Write one account's statement for a month (YYYY-MM) as a PDF."""
    found = [
        r
        for r in all_billing_records(open_database(), operator_principal(), period=period)
        if r.account_id == account
    ]
    if not found:
        typer.echo(f"error: no billing record for {account!r} in {period}", err=True)
        raise typer.Exit(2)
    output.write_bytes(statement_pdf(found[0]))
    typer.echo(f"wrote {output} (total {format_money(found[0].total)})")


@app.command("topups")
def topups(now: Now = None) -> None:
    """Charge the due auto top-ups now (the `auto-topups` job does it every minute)."""
    try:
        run = run_topups(open_database(), now=parse_moment(now))
    except PricingError as exc:
        raise fail(exc) from None
    typer.echo(f"{run.charged} charged, {run.failed} failed, {run.settled} late settled")
    for line in run.outcomes:
        typer.echo(f"  {line}")


@app.command("auto-topup")
def auto_topup(
    account: str,
    threshold: Annotated[str, typer.Option("--threshold", help="USD balance line.")],
    monthly_max: Annotated[str, typer.Option("--max", help="USD charged a month at most.")],
    amount: Annotated[str | None, typer.Option("--amount", help="USD to charge.")] = None,
    pack: Annotated[str | None, typer.Option("--pack", help="Credit pack id to buy.")] = None,
    off: Annotated[bool, typer.Option("--off", help="Turn auto top-up off.")] = False,
) -> None:
    """Set an account's auto top-up: below THRESHOLD, buy a pack or an amount."""
    try:
        saved = configure_auto_topup(
            open_database(),
            operator_principal(),
            account_id=account,
            enabled=not off,
            threshold=threshold,
            monthly_max=monthly_max,
            amount=amount,
            package_id=pack,
        )
    except PricingError as exc:
        raise fail(exc) from None
    state = "on" if saved.enabled else "off"
    typer.echo(f"auto top-up {state} for {account}: below {format_money(saved.threshold)}")
