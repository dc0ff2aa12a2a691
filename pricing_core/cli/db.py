"""`pricing-core db ...`: the database schema."""

from __future__ import annotations

import typer

from pricing_core.adapters.storage import make_engine, upgrade

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations to the configured database."""

    upgrade(make_engine())
    typer.echo("database is at the latest schema")
