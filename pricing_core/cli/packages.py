"""`pricing-core packages ...`: credit packages."""

from __future__ import annotations

import json

import typer

from pricing_core.adapters.storage import open_database
from pricing_core.billing.packages import list_packages
from pricing_core.domain.money import format_money, usd_str

app = typer.Typer(help="Credit packages.", no_args_is_help=True)


@app.command("list")
def packages_list(
    all_versions: bool = typer.Option(
        False, "--all", help="Include inactive versions.", metavar=""
    ),
    as_json: bool = typer.Option(
        False, "--json", help="One JSON array; amounts as strings.", metavar=""
    ),
) -> None:
    """Print the credit packages: price, credit, bonus, price per $1 of credit."""

    packages = list_packages(open_database(), include_inactive=all_versions)
    if as_json:
        rows = [
            {
                "id": p.id,
                "name": p.name,
                "price": usd_str(p.price),
                "currency": p.currency,
                "credits_usd": usd_str(p.credits),
                "bonus_usd": usd_str(p.bonus),
                "price_per_credit_dollar": str(p.price_per_credit_dollar),
                "popular": p.popular,
                "active": p.active,
            }
            for p in packages
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f"{'id':<16}{'name':<12}{'price':>10}{'credit':>10}{'bonus':>9}{'per $1':>9}")
    for p in packages:
        flags = (" most popular" if p.popular else "") + ("" if p.active else " (inactive)")
        typer.echo(
            f"{p.id:<16}{p.name:<12}{format_money(p.price):>10}"
            f"{format_money(p.credits):>10}{format_money(p.bonus):>9}"
            f"{'$' + str(p.price_per_credit_dollar):>9}{flags}"
        )
