"""The `pricing-core` command (Typer).

Every command opens the database from `PRICING_DATABASE_URL` (migrating an empty one).
"""

from __future__ import annotations

import typer

from pricing_core.cli import (
    accounts,
    alerts,
    analytics,
    api,
    apikeys,
    billing,
    db,
    demo,
    holds,
    imports,
    jobs,
    ledger,
    limits,
    packages,
    plans,
    prices,
    revenue,
    stripe,
    usage,
    users,
)
from pricing_core.config import get_settings
from pricing_core.domain.errors import PricingError
from pricing_core.safety import (
    UnsafeConfiguration,
    ensure_safe_to_start,
    install_log_redaction,
    load_auth_section,
    secret_values,
)

app = typer.Typer(
    help="Exact prepaid billing for AI applications.", no_args_is_help=True, add_completion=False
)

# Every command group (one module each), registered one way: `pricing-core <name> ...`.
GROUPS: dict[str, typer.Typer] = {
    "accounts": accounts.app,
    "db": db.app,
    "ledger": ledger.app,
    "import": imports.app,
    "usage": usage.app,
    "packages": packages.app,
    "billing": billing.app,
    "stripe": stripe.app,
    "holds": holds.app,
    "limits": limits.app,
    "alerts": alerts.app,
    "revenue": revenue.app,
    "plans": plans.app,
    "demo": demo.app,
    "users": users.app,
    "apikeys": apikeys.app,
    "api": api.app,
    "jobs": jobs.app,
    "prices": prices.app,
    "reconcile": prices.reconcile_app,
    "analytics": analytics.app,
}
for name, group in GROUPS.items():
    app.add_typer(group, name=name)


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


def main() -> None:
    """Entry point: errors the user should act on are one line, never a traceback."""

    try:
        app(standalone_mode=True)
    except PricingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
