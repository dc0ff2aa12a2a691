"""What the command groups share: the operator principal, one way to fail, and the
export options."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine

from pricing_core.adapters.storage import open_database
from pricing_core.analytics.exports import ExportFormat
from pricing_core.domain.errors import PricingError
from pricing_core.domain.principal import Principal


def operator_principal() -> Principal:
    """The admin principal of whoever runs the command line."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        name = "unknown"
    return Principal(user_id=f"operator:{name}", account_id="", role="admin")


# the reason an audited change is made, required by every command that makes one
Reason = Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")]

FormatOption = Annotated[
    ExportFormat, typer.Option("--format", "-f", help="csv (header row) or jsonl.")
]


ExportWriter = Callable[[Engine, TextIO, ExportFormat], int]


OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
]


def write_export(write: ExportWriter, fmt: ExportFormat, output: Path | None) -> None:
    """Run an exporter (`export_usage`, `export_ledger`) to `output` or stdout."""
    engine = open_database()
    if output is None:
        count = write(engine, sys.stdout, fmt)
    else:
        with output.open("w", newline="", encoding="utf-8") as out:
            count = write(engine, out, fmt)
        typer.echo(f"wrote {count} rows to {output}", err=True)


def parse_moment(text: str | None) -> datetime | None:
    """An option's ISO 8601 timestamp with its offset (None stays None).
    Raises: typer.BadParameter."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 timestamp: {text!r}") from None
    if moment.tzinfo is None:
        raise typer.BadParameter(f"give a time zone offset, e.g. {text}+00:00")
    return moment


def fail(exc: PricingError) -> typer.Exit:
    """Print the error in one line and exit with status 2 (never a traceback)."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


def progress_bar(label: str) -> Progress:
    """A bar with done/total and elapsed time on stderr, shown only on a terminal."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        disable=not sys.stderr.isatty(),
    )
