"""`pricing-core demo ...`: deterministic demo data."""

from __future__ import annotations

import time

import typer

from pricing_core.adapters.storage import open_database
from pricing_core.demo.accounts import DatabaseNotEmpty
from pricing_core.demo.seed import seed_demo

app = typer.Typer(help="Deterministic demo data.", no_args_is_help=True)


@app.command("seed")
def demo_seed(
    seed: int = typer.Option(0, help="Random seed: the same seed gives the same data."),
) -> None:
    """Fill an empty database with a dozen demo accounts and ~90 days of usage."""

    started = time.perf_counter()
    try:
        summary = seed_demo(open_database(), seed=seed)
    except DatabaseNotEmpty as exc:
        typer.echo(f"not seeded: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"seeded demo data (seed {summary.seed}) in {time.perf_counter() - started:.1f} s: "
        f"{summary.accounts} accounts, {summary.users} users, {summary.chats} chats, "
        f"{summary.events:,} usage events, {summary.ledger_entries:,} ledger entries"
    )
