"""`pricing-core holds ...`: holds placed by authorizations."""

from __future__ import annotations

import typer

from pricing_core.adapters.storage import open_database
from pricing_core.ledger.holds import expire_holds

app = typer.Typer(help="Holds placed by authorizations.", no_args_is_help=True)


@app.command("expire")
def holds_expire() -> None:
    """Expire every active hold past its timeout and free its money."""

    count = expire_holds(open_database())
    typer.echo(f"expired {count} hold{'s' if count != 1 else ''}")
