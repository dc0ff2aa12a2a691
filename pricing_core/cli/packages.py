"""`pricing-core packages ...`: credit packages: list, save a new version, retire,
and the credit price list preset."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pricing_core.adapters.storage import open_database
from pricing_core.admin.packages import PackTerms, retire_package, save_package
from pricing_core.admin.presets import apply_credit_preset
from pricing_core.billing.packages import list_packages, package_offers
from pricing_core.cli.common import Reason, fail, operator_principal
from pricing_core.config import get_settings
from pricing_core.domain.errors import PricingError
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
    unit = get_settings().display_unit
    per = "per credit" if unit.credits else "per $1"
    typer.echo(f"{'id':<16}{'name':<12}{'price':>10}{'credit':>18}{per:>12}  saving")
    for offer in package_offers(packages, unit):
        p = offer.package
        flags = (" most popular" if p.popular else "") + ("" if p.active else " (inactive)")
        saving = f"{offer.saving_pct}%" if offer.saving_pct else "-"
        typer.echo(
            f"{p.id:<16}{p.name:<12}{format_money(p.price):>10}"
            f"{unit.format(p.total_credit):>18}{'$' + str(offer.per_unit):>12}  {saving}{flags}"
        )


@app.command("save")
def packages_save(
    code: Annotated[str, typer.Argument(help="The pack's stable code, e.g. popular.")],
    name: Annotated[str, typer.Option("--name", help="What buyers see, e.g. Popular.")],
    price: Annotated[str, typer.Option("--price", help="USD the buyer pays, e.g. 17.99.")],
    credits: Annotated[
        str, typer.Option("--credits", help="Credit received, in the display unit.")
    ],
    reason: Reason,
    bonus: Annotated[str, typer.Option("--bonus", help="Extra credit, display unit.")] = "0",
    popular: Annotated[
        bool, typer.Option("--popular", help="Mark it most popular.", metavar="")
    ] = False,
) -> None:
    """Sell a pack on these terms from now on: a new version (past purchases keep
    theirs; the previous version is retired)."""

    try:
        saved = save_package(
            open_database(), operator_principal(), code,
            PackTerms(name, price, credits, bonus, popular), reason=reason,
        )  # fmt: skip
    except PricingError as exc:
        raise fail(exc) from None
    unit = get_settings().display_unit
    typer.echo(
        f"{saved.id}: {saved.name}, {unit.format(saved.total_credit)} for "
        f"{format_money(saved.price)}"
    )


@app.command("retire")
def packages_retire(
    code: Annotated[str, typer.Argument(help="The pack's code.")], reason: Reason
) -> None:
    """Stop selling a pack (its past purchases are unchanged)."""

    try:
        retire_package(open_database(), operator_principal(), code, reason=reason)
    except PricingError as exc:
        raise fail(exc) from None
    typer.echo(f"{code}: retired")


@app.command("preset")
def packages_preset() -> None:
    """Sell the credit price list preset: Starter 50 credits $4.99, Popular 200
    $17.99, Pro 500 $39.99, Enterprise 2,000 $139.99, and the fixed prices per image,
    edit and video (`admin.presets`), at PRICING_CREDITS_PER_USD."""

    try:
        packs, prices = apply_credit_preset(open_database(), operator_principal())
    except PricingError as exc:
        raise fail(exc) from None
    typer.echo(f"credit preset: {packs} packs on sale, {prices} fixed prices set")
