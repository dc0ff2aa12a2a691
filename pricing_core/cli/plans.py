"""`pricing-core plans ...`: plan recommendations from real usage."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pricing_core.adapters.storage import open_database
from pricing_core.admin.plans import publish_plan, set_enterprise_fee
from pricing_core.cli.common import Reason, fail, operator_principal, parse_moment
from pricing_core.domain.errors import PricingError
from pricing_core.domain.money import format_money
from pricing_core.plans.advice import advise_plan, recommendation_json

app = typer.Typer(
    help="Plans: recommendations from real usage; new versions; account fees.",
    no_args_is_help=True,
)


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


@app.command("publish")
def publish(
    code: Annotated[str, typer.Argument(help="The plan's code, e.g. starter.")],
    name: Annotated[str, typer.Option("--name", help="What people see, e.g. Starter.")],
    reason: Reason,
    fee: Annotated[str, typer.Option("--fee", help="USD a month; empty: agreed per account.")] = "",
    included: Annotated[
        int | None, typer.Option("--included", min=0, help="Messages a month; none: unlimited.")
    ] = None,
    overage: Annotated[str, typer.Option("--overage", help="USD per message beyond.")] = "0",
    cap: Annotated[str, typer.Option("--cap", help="USD a month at most; empty: none.")] = "",
    effective_from: Annotated[
        str | None, typer.Option("--effective-from", help="ISO timestamp (default: now).")
    ] = None,
) -> None:
    """Publish a new version of a plan's terms (current subscribers keep theirs)."""

    try:
        plan = publish_plan(
            open_database(), operator_principal(), code, name=name, monthly_fee=fee,
            included_messages=included, overage_rate=overage, monthly_cap=cap,
            reason=reason, effective_from=parse_moment(effective_from),
        )  # fmt: skip
    except PricingError as exc:
        raise fail(exc) from None
    shown = "agreed per account" if plan.monthly_fee is None else format_money(plan.monthly_fee)
    typer.echo(f"{plan.code} v{plan.version}: {plan.name}, {shown} a month")


@app.command("set-fee")
def set_fee(
    account: Annotated[str, typer.Argument(help="The account id.")],
    code: Annotated[str, typer.Argument(help="The plan's code, e.g. enterprise.")],
    fee: Annotated[str, typer.Argument(help="USD a month.")],
    reason: Reason,
) -> None:
    """Set an account's own monthly fee for a plan (Enterprise)."""

    try:
        amount = set_enterprise_fee(
            open_database(), operator_principal(), account, code, fee, reason=reason
        )
    except PricingError as exc:
        raise fail(exc) from None
    typer.echo(f"{account}: {code} at {format_money(amount)} a month")
