"""The `pricing-core` command (Typer).

Every command opens the database from `PRICING_DATABASE_URL` (migrating an empty one).
"""

from __future__ import annotations

import typer

from pricing_core.adapters.storage import make_engine, open_database, upgrade
from pricing_core.cli import api as _api_cli
from pricing_core.cli.access import apikeys_app, users_app
from pricing_core.cli.admin import revenue_app
from pricing_core.cli.checkout import packages_app, stripe_app
from pricing_core.cli.data import import_app, ledger_export, usage_app
from pricing_core.cli.demo import demo_app
from pricing_core.cli.plans import plans_app
from pricing_core.config import get_settings
from pricing_core.domain.errors import PricingError
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.safety import (
    UnsafeConfiguration,
    ensure_safe_to_start,
    install_log_redaction,
    load_auth_section,
    secret_values,
)

app = typer.Typer(help="Exact prepaid billing for AI applications.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
ledger_app = typer.Typer(help="The ledger: export and verify.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(ledger_app, name="ledger")
app.add_typer(packages_app, name="packages")
app.add_typer(stripe_app, name="stripe")
_api_cli.register(app)  # holds, limits, alerts
app.add_typer(revenue_app, name="revenue")

app.add_typer(plans_app, name="plans")
app.add_typer(demo_app, name="demo")
app.add_typer(users_app, name="users")
app.add_typer(apikeys_app, name="apikeys")


@app.callback()
def _refuse_unsafe_production() -> None:
    """Every command first checks that production is configured safely."""

    section = load_auth_section()
    install_log_redaction(secret_values(get_settings(), section))
    try:
        ensure_safe_to_start(get_settings(), section)
    except UnsafeConfiguration as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


app.add_typer(import_app, name="import")
app.add_typer(usage_app, name="usage")
ledger_app.command("export")(ledger_export)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations to the configured database."""

    upgrade(make_engine())
    typer.echo("database is at the latest schema")


@ledger_app.command("verify")
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


def main() -> None:
    """Entry point: errors the user should act on are one line, never a traceback."""

    try:
        app(standalone_mode=True)
    except PricingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
