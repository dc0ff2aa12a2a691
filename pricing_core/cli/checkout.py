"""`pricing-core packages ...` and `pricing-core stripe ...` (registered in `cli.main`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

from pricing_core.adapters.storage import open_database
from pricing_core.billing.packages import list_packages
from pricing_core.billing.reconcile import reconcile
from pricing_core.domain.errors import PricingError
from pricing_core.domain.money import format_usd, usd_str

packages_app = typer.Typer(help="Credit packages.", no_args_is_help=True)
stripe_app = typer.Typer(help="Stripe: reconciliation.", no_args_is_help=True)


@packages_app.command("list")
def packages_list(
    all_versions: bool = typer.Option(False, "--all", help="Include inactive versions."),
    as_json: bool = typer.Option(False, "--json", help="One JSON array; amounts as strings."),
) -> None:
    """Print the credit packages: price, credit, bonus, price per $1 of credit."""

    packages = list_packages(open_database(), include_inactive=all_versions)
    if as_json:
        rows = [
            {
                "id": p.id,
                "name": p.name,
                "price": usd_str(p.price),
                "currency": p.currency,
                "credits_usd": usd_str(p.credits),
                "bonus_usd": usd_str(p.bonus),
                "price_per_credit_dollar": str(p.price_per_credit_dollar),
                "popular": p.popular,
                "active": p.active,
            }
            for p in packages
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f"{'id':<16}{'name':<12}{'price':>10}{'credit':>10}{'bonus':>9}{'per $1':>9}")
    for p in packages:
        flags = (" most popular" if p.popular else "") + ("" if p.active else " (inactive)")
        typer.echo(
            f"{p.id:<16}{p.name:<12}{format_usd(p.price, total=True):>10}"
            f"{format_usd(p.credits, total=True):>10}{format_usd(p.bonus, total=True):>9}"
            f"{'$' + str(p.price_per_credit_dollar):>9}{flags}"
        )


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not a date (YYYY-MM-DD): {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@stripe_app.command("reconcile")
def stripe_reconcile(
    since: str | None = typer.Option(
        None, "--since", help="Only sessions created since (YYYY-MM-DD, UTC)."
    ),
    fix: bool = typer.Option(False, "--fix", help="Fulfil paid sessions that were never credited."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Compare Stripe's Checkout Sessions with the ledger; exit 1 if problems remain."""

    try:
        report = reconcile(open_database(), since=_since(since), fix=fix)
    except PricingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "checked": report.checked,
                    "credited": report.credited,
                    "skipped": report.skipped,
                    "ok": report.ok,
                    "discrepancies": [
                        {
                            "finding": str(d.finding),
                            "session_id": d.session_id,
                            "account_id": d.account_id,
                            "detail": d.detail,
                            "fixed": d.fixed,
                        }
                        for d in report.discrepancies
                    ],
                },
                indent=2,
            )
        )
    else:
        typer.echo(
            f"checked {report.checked} credit-pack checkout sessions, {report.credited} credited"
            + (f", {report.skipped} not ours" if report.skipped else "")
        )
        for d in report.discrepancies:
            mark = "FIXED" if d.fixed else d.finding.upper()
            typer.echo(f"{mark}: {d.session_id} (account {d.account_id}): {d.detail}")
        if report.ok:
            typer.echo("Stripe and the ledger agree")
    if not report.ok:
        raise typer.Exit(1)
