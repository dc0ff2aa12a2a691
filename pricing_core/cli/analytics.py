"""`pricing-core analytics ...`: the ClickHouse copy behind the revenue analytics."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from pricing_core.adapters.storage import open_database
from pricing_core.analytics import warehouse, warehouse_sync
from pricing_core.cli.common import fail, progress_bar
from pricing_core.domain.errors import ConfigurationError, PricingError

app = typer.Typer(help="The ClickHouse copy of the usage events.", no_args_is_help=True)


@app.command("sync")
def sync_command(
    block: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Event ids per block (one read and one fold each), fixed by the first "
            f"sync ({warehouse_sync.BLOCK:,} unless given).",
        ),
    ] = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Fold every block again (after a charge that committed very late).",
            metavar="",
        ),
    ] = False,
) -> None:
    """Copy the events recorded since the last sync to PRICING_ANALYTICS_URL and fold
    them into its rollups. Safe to interrupt and run again: nothing is counted twice."""
    try:
        wh = warehouse.configured()
        if wh is None:
            raise ConfigurationError("PRICING_ANALYTICS_URL is not set: no warehouse to sync")
        progress = progress_bar("folding blocks")
        started = time.perf_counter()
        with progress:
            task = progress.add_task("sync", total=None)
            result = warehouse_sync.sync(
                open_database(),
                wh,
                block=block,
                full=full,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    except PricingError as exc:
        raise fail(exc) from None
    seconds = time.perf_counter() - started
    typer.echo(
        f"{result.events} events read in {result.blocks} blocks in {seconds:.1f} s; "
        f"events up to id {result.watermark} are folded"
    )


@app.command("status")
def status_command() -> None:
    """Where the copy stands: the watermark and the events recorded since."""
    try:
        status = warehouse.sync_status(open_database())
    except PricingError as exc:
        raise fail(exc) from None
    if status is None:
        typer.echo("PRICING_ANALYTICS_URL is not set: the analytics read the database")
        return
    typer.echo(
        f"{status.where}: events up to id {status.watermark} copied; "
        f"{status.behind} recorded since (read from the database until the next sync)"
    )
