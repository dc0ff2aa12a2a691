"""`pricing-core usage ...`: usage events, exported."""

from __future__ import annotations

import typer

from pricing_core.analytics.exports import ExportFormat, export_usage
from pricing_core.cli.common import FormatOption, OutputOption, write_export

app = typer.Typer(help="Usage events: export.", no_args_is_help=True)


@app.command("export")
def usage_export(fmt: FormatOption = ExportFormat.CSV, output: OutputOption = None) -> None:
    """Export one row per usage event (amounts as exact decimal strings, UTC times)."""
    write_export(export_usage, fmt, output)
