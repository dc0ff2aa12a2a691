"""`pricing-core import ...`, `pricing-core usage export` and `pricing-core ledger export`.

Registered on the main app in `cli.main`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine

from pricing_core.adapters.storage import open_database
from pricing_core.analytics.exports import ExportFormat, export_usage
from pricing_core.domain.errors import PricingError
from pricing_core.metering.importers import DEFAULT_MODEL_MIX, import_azure_trace
from pricing_core.metering.trace import TraceMapping, parse_model_mix

import_app = typer.Typer(help="Import real usage.", no_args_is_help=True)
usage_app = typer.Typer(help="Usage events: export.", no_args_is_help=True)

SHOWN_PROBLEMS = 20

FormatOption = Annotated[
    ExportFormat, typer.Option("--format", "-f", help="csv (header row) or jsonl.")
]
# An exporter: (engine, output, format) -> rows written.
ExportWriter = Callable[[Engine, TextIO, ExportFormat], int]
OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
]


def _decimal(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"{what} {text!r} is not a decimal number") from None
    if not value.is_finite():
        raise typer.BadParameter(f"{what} {text!r} must be finite")
    return value


@import_app.command("azure-trace")
def import_azure_trace_command(
    path: Annotated[Path, typer.Argument(help="An Azure LLM inference trace CSV file.")],
    operation: Annotated[
        str, typer.Option(help="Operation of every row, e.g. chat_message or code_completion.")
    ],
    seed: Annotated[int, typer.Option(help="Seed of the deterministic mapping.")] = 0,
    users: Annotated[int, typer.Option(help="Number of accounts (Zipf-skewed shares).")] = 100,
    zipf_exponent: Annotated[
        str, typer.Option(help="Skew: account k gets a share ~ 1/k**s.")
    ] = "1",
    chat_gap_seconds: Annotated[
        int, typer.Option(help="Inactivity (seconds) that ends a user's chat.")
    ] = 120,
    models: Annotated[
        str, typer.Option(help="Weighted model mix: provider:model=weight,...")
    ] = DEFAULT_MODEL_MIX,
    shift_to_now: Annotated[
        bool, typer.Option("--shift-to-now", help="Move the trace so it ends now.")
    ] = False,
    opening_balance: Annotated[
        str | None,
        typer.Option(help="USD granted to each new account (default: the welcome credit)."),
    ] = None,
    allow_overdraft: Annotated[
        bool,
        typer.Option("--allow-overdraft", help="Record events the wallet cannot pay."),
    ] = False,
) -> None:
    """Import an Azure LLM inference trace (users, chats and models mapped from the seed)."""
    engine = open_database()
    try:
        mapping = TraceMapping(
            operation=operation,
            seed=seed,
            users=users,
            zipf_exponent=_decimal(zipf_exponent, "Zipf exponent"),
            chat_gap_seconds=chat_gap_seconds,
            models=parse_model_mix(models),
        )
        balance = None if opening_balance is None else _decimal(opening_balance, "balance")
        if balance is not None and balance < 0:
            raise typer.BadParameter(f"opening balance {opening_balance} must not be negative")
        progress = Progress(
            TextColumn("importing {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
            disable=not sys.stderr.isatty(),
        )
        started = time.perf_counter()
        with progress:
            task = progress.add_task(path.name, total=None)
            summary = import_azure_trace(
                engine,
                path,
                mapping,
                opening_balance=balance,
                allow_overdraft=allow_overdraft,
                shift_to_now=shift_to_now,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    except PricingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for problem in summary.problems[:SHOWN_PROBLEMS]:
        typer.echo(f"line {problem.line}: {problem.outcome}: {problem.message}", err=True)
    hidden = summary.skipped + summary.rejected - min(len(summary.problems), SHOWN_PROBLEMS)
    if hidden > 0:
        typer.echo(f"... and {hidden} more reported rows", err=True)
    typer.echo(
        f"{summary.rows} rows: {summary.imported} imported, {summary.skipped} skipped (bad rows), "
        f"{summary.rejected} rejected (insufficient balance), "
        f"{summary.already_present} already present; "
        f"{summary.accounts_created} accounts created; charged {summary.charged_usd} USD"
    )
    elapsed = time.perf_counter() - started
    rate = f" ({summary.imported / elapsed:,.0f} events/s)" if summary.imported else ""
    typer.echo(f"took {elapsed:.1f} s{rate}", err=True)


def write_export(write: ExportWriter, fmt: ExportFormat, output: Path | None) -> None:
    """Run an exporter (`export_usage`, `export_ledger`) to `output` or stdout."""
    engine = open_database()
    if output is None:
        count = write(engine, sys.stdout, fmt)
    else:
        with output.open("w", newline="", encoding="utf-8") as out:
            count = write(engine, out, fmt)
        typer.echo(f"wrote {count} rows to {output}", err=True)


@usage_app.command("export")
def usage_export(fmt: FormatOption = ExportFormat.CSV, output: OutputOption = None) -> None:
    """Export one row per usage event (amounts as exact decimal strings, UTC times)."""
    write_export(export_usage, fmt, output)
