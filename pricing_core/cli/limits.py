"""`pricing-core limits ...`: per-operation token limits and cost caps."""

from __future__ import annotations

from typing import Annotated

import typer

from pricing_core.adapters.storage import open_database
from pricing_core.cli.common import fail
from pricing_core.domain.errors import PricingError
from pricing_core.limits.presets import PRESETS, apply_preset
from pricing_core.limits.rules import SpendingLimits, describe_limits, list_limits, set_limits

app = typer.Typer(help="Per-operation token limits and cost caps.", no_args_is_help=True)


@app.command("set")
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
        raise fail(exc) from None
    typer.echo("limits removed" if stored is None else f"stored: {describe_limits(stored)}")


@app.command("list")
def limits_list(account: Annotated[str | None, typer.Option()] = None) -> None:
    """Show stored limits (of one account plus operator defaults, or all)."""

    rows = list_limits(open_database(), account)
    if not rows:
        typer.echo("no limits stored")
    for row in rows:
        typer.echo(describe_limits(row))


@app.command("preset")
def limits_preset(
    name: Annotated[
        str,
        typer.Argument(help="; ".join(f"{p.name}: {p.description}" for p in PRESETS.values())),
    ],
    account: Annotated[
        str, typer.Option(help='account id (its budget alert too); "" = operator default')
    ] = "",
) -> None:
    """Apply a named set of limits to every operation of the operator defaults or of
    one account."""

    try:
        stored = apply_preset(open_database(), name, account_id=account, actor="cli")
    except PricingError as exc:
        raise fail(exc) from None
    typer.echo(f"{name}: " + ("limits removed" if stored is None else describe_limits(stored)))
