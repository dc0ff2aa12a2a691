"""`pricing-core api serve`: the REST API `/api/v1`, `/stripe/webhook` and `/healthz`
under uvicorn with worker processes, for the host app's traffic. `streamlit run app.py`
serves the same routes next to the dashboard, for small deployments."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

app = typer.Typer(help="Serve the REST API on its own.", no_args_is_help=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="worker processes")] = 1,
) -> None:
    """Serve until interrupted. Every worker opens the database from
    PRICING_DATABASE_URL; the production check has run before this starts."""
    uvicorn.run(
        "pricing_core.api.http:asgi_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )
