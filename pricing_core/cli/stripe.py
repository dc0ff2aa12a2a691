"""`pricing-core stripe ...`: reconciliation of Checkout Sessions with the ledger."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

from pricing_core.adapters.storage import open_database
from pricing_core.billing.reconcile import reconcile
from pricing_core.cli.common import fail
from pricing_core.domain.errors import PricingError

app = typer.Typer(help="Stripe: reconciliation.", no_args_is_help=True)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not a date (YYYY-MM-DD): {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command("reconcile")
def stripe_reconcile(
    since: str | None = typer.Option(
        None, "--since", help="Only sessions created since (YYYY-MM-DD, UTC)."
    ),
    fix: bool = typer.Option(
        False, "--fix", help="Fulfil paid sessions that were never credited.", metavar=""
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.", metavar=""),
) -> None:
    """Compare Stripe's Checkout Sessions with the ledger; exit 1 if problems remain."""

    try:
        report = reconcile(open_database(), since=_since(since), fix=fix)
    except PricingError as exc:
        raise fail(exc) from None
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
