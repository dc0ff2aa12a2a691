"""`pricing-core ledger ...`: verify and export the ledger."""

from __future__ import annotations

import typer

from pricing_core.adapters.storage import open_database
from pricing_core.analytics.exports import ExportFormat, export_ledger
from pricing_core.cli.common import FormatOption, OutputOption, write_export
from pricing_core.ledger.integrity import verify_ledger

app = typer.Typer(help="The ledger: export and verify.", no_args_is_help=True)


@app.command("verify")
def ledger_verify() -> None:
    """Check every ledger and rollup invariant; exit 1 listing violations."""

    report = verify_ledger(open_database())
    typer.echo(
        f"checked {report.wallets} wallets, {report.entries} ledger entries, "
        f"{report.events} usage events"
    )
    if not report.ok:
        for violation in report.violations:
            typer.echo(f"VIOLATION: {violation}", err=True)
        raise typer.Exit(1)
    typer.echo("ledger OK")


@app.command("export")
def ledger_export(fmt: FormatOption = ExportFormat.CSV, output: OutputOption = None) -> None:
    """Export one row per ledger entry (amounts as exact decimal strings, UTC times)."""
    write_export(export_ledger, fmt, output)
