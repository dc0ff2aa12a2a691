"""`pricing-core jobs ...`: the scheduled jobs (expire holds, deliver notifications,
the daily high-cost report, the nightly ledger check)."""

from __future__ import annotations

from typing import Annotated

import typer

from pricing_core.adapters.storage import open_database
from pricing_core.cli.common import fail
from pricing_core.domain.errors import PricingError
from pricing_core.jobs.scheduler import JOBS, job, job_statuses, run_once, scheduler

app = typer.Typer(help="Scheduled jobs: run them, or one now.", no_args_is_help=True)


@app.command("run")
def run_command() -> None:
    """Run the scheduler in this process until stopped (Ctrl-C). Several schedulers
    side by side run each job once per schedule."""
    engine = open_database()
    typer.echo("jobs: " + ", ".join(f"{j.name} ({j.schedule})" for j in JOBS.values()))
    try:
        scheduler(engine).start()
    except (KeyboardInterrupt, SystemExit):
        typer.echo("stopped")


@app.command("run-once")
def run_once_command(
    name: Annotated[
        str, typer.Argument(help="; ".join(f"{j.name}: {j.description}" for j in JOBS.values()))
    ],  # fmt: skip
) -> None:
    """Run one job now and print its outcome (exit 1 if it failed)."""
    try:
        job(name)
    except PricingError as exc:
        raise fail(exc) from None
    outcome = run_once(open_database(), name)
    typer.echo(outcome)
    if outcome.startswith("failed"):
        raise typer.Exit(1)


@app.command("list")
def list_command() -> None:
    """Each job, its schedule, and its last run and outcome."""
    for s in job_statuses(open_database()):
        last = (
            f"last run {s.last_started_at:%Y-%m-%d %H:%M} UTC: {s.last_outcome} ({s.last_detail})"
            if s.last_started_at
            else "never run"
        )
        typer.echo(f"{s.name}\t{s.schedule}\t{last}")
