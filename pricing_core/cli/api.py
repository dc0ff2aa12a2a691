"""CLI commands of the integration surface: holds, spending limits, API keys, alerts.

Registered in `cli.main`: `pricing-core holds expire`, `pricing-core limits set|list`,
`pricing-core alerts deliver`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pricing_core.adapters.storage import open_database
from pricing_core.domain.errors import PricingError
from pricing_core.ledger.holds import expire_holds
from pricing_core.limits.alerts import deliver_alerts
from pricing_core.limits.rules import SpendingLimits, list_limits, set_limits

holds_app = typer.Typer(help="Holds placed by authorizations.", no_args_is_help=True)
limits_app = typer.Typer(help="Per-operation token limits and cost caps.", no_args_is_help=True)
alerts_app = typer.Typer(help="Budget alerts.", no_args_is_help=True)


def _fail(exc: PricingError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


@holds_app.command("expire")
def holds_expire() -> None:
    """Expire every active hold past its timeout and free its money."""

    count = expire_holds(open_database())
    typer.echo(f"expired {count} hold{'s' if count != 1 else ''}")


@limits_app.command("set")
def limits_set(
    account: Annotated[str, typer.Option(help='account id; "" = operator default')] = "",
    user: Annotated[str, typer.Option(help='user id; "" = the whole account')] = "",
    operation: Annotated[str, typer.Option(help='operation; "*" = every operation')] = "*",
    max_input_tokens: Annotated[int | None, typer.Option()] = None,
    max_output_tokens: Annotated[int | None, typer.Option()] = None,
    max_total_tokens: Annotated[int | None, typer.Option()] = None,
    daily_cost_cap: Annotated[str | None, typer.Option(help="USD, e.g. 5.00")] = None,
    monthly_cost_cap: Annotated[str | None, typer.Option(help="USD, e.g. 100")] = None,
) -> None:
    """Store limits for one scope (all omitted = remove the scope's limits)."""

    try:
        stored = set_limits(
            open_database(),
            SpendingLimits(
                account,
                user,
                operation,
                max_input_tokens,
                max_output_tokens,
                max_total_tokens,
                daily_cost_cap,  # type: ignore[arg-type]  # text, parsed exactly
                monthly_cost_cap,  # type: ignore[arg-type]
            ),
            actor="cli",
        )
    except PricingError as exc:
        raise _fail(exc) from None
    typer.echo("limits removed" if stored is None else f"stored {stored}")


@limits_app.command("list")
def limits_list(account: Annotated[str | None, typer.Option()] = None) -> None:
    """Show stored limits (of one account plus operator defaults, or all)."""

    for row in list_limits(open_database(), account):
        typer.echo(row)


@alerts_app.command("deliver")
def alerts_deliver() -> None:
    """POST un-notified budget alerts to PRICING_BUDGET_WEBHOOK_URL (retries failures)."""

    typer.echo(f"delivered {deliver_alerts(open_database())} alert(s)")
