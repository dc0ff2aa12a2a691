"""`pricing-core alerts ...`: budget alerts."""

from __future__ import annotations

import typer

from pricing_core.adapters.storage import open_database
from pricing_core.limits.alerts import deliver_alerts

app = typer.Typer(help="Budget alerts.", no_args_is_help=True)


@app.command("deliver")
def alerts_deliver() -> None:
    """POST un-notified budget alerts to PRICING_BUDGET_WEBHOOK_URL (retries failures)."""

    typer.echo(f"delivered {deliver_alerts(open_database())} alert(s)")
