"""`pricing-core import ...`: real usage (the Azure trace), with per-row reports."""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer

from pricing_core.adapters.storage import open_database
from pricing_core.cli.common import fail, progress_bar
from pricing_core.domain.errors import PricingError
from pricing_core.metering.importers import DEFAULT_MODEL_MIX, import_azure_trace
from pricing_core.metering.trace import TraceMapping, parse_model_mix

app = typer.Typer(help="Import real usage.", no_args_is_help=True)


SHOWN_PROBLEMS = 20


def _decimal(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"{what} {text!r} is not a decimal number") from None
    if not value.is_finite():
        raise typer.BadParameter(f"{what} {text!r} must be finite")
    return value


@app.command("azure-trace")
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
        bool, typer.Option("--shift-to-now", help="Move the trace so it ends now.", metavar="")
    ] = False,
    opening_balance: Annotated[
        str | None,
        typer.Option(help="USD granted to each new account (default: the welcome credit)."),
    ] = None,
    allow_overdraft: Annotated[
        bool,
        typer.Option("--allow-overdraft", help="Record events the wallet cannot pay.", metavar=""),
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
        progress = progress_bar("importing {task.description}")
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
        raise fail(exc) from None
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
