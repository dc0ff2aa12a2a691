"""`pricing-core prices ...`: custom models, catalog updates, the unpriced queue,
and reprices applied to past charges; `pricing-core reconcile provider`: our provider
cost against the provider's own bill."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

from pricing_core.adapters.storage import open_database
from pricing_core.admin import catalog
from pricing_core.admin.prices import propose_price, set_operation_price
from pricing_core.admin.provider_bills import (
    DEFAULT_TOLERANCE_PCT,
    BillFormat,
    import_bill,
    reconcile,
)
from pricing_core.admin.reprice import apply_reprice
from pricing_core.cli.common import Reason, fail, operator_principal, parse_moment
from pricing_core.domain.errors import PricingError
from pricing_core.domain.money import format_money, format_rate
from pricing_core.domain.periods import parse_day

app = typer.Typer(help="Prices: custom models, catalog updates, corrections.", no_args_is_help=True)
reconcile_app = typer.Typer(help="Reconcile against a provider's bill.", no_args_is_help=True)


def _tier(text: str) -> tuple[int, str, str]:
    try:
        start, rates = text.split(":", 1)
        input_mtok, output_mtok = rates.split("/", 1)
        return int(start), input_mtok, output_mtok
    except ValueError:
        raise typer.BadParameter(
            f"a tier is START:INPUT/OUTPUT, e.g. 200000:2.5/15, got {text!r}"
        ) from None


@app.command("add-model")
def add_model(
    provider: Annotated[str, typer.Option("--provider", help="e.g. openai")],
    model: Annotated[str, typer.Option("--model", help="The model name the app reports.")],
    input_mtok: Annotated[str, typer.Option("--input", help="Input USD per million tokens.")],
    output_mtok: Annotated[str, typer.Option("--output", help="Output USD per million tokens.")],
    reason: Reason,
    cache_read: Annotated[
        str | None, typer.Option("--cache-read", help="Cached input USD per MTok.")
    ] = None,
    cache_write: Annotated[
        str | None, typer.Option("--cache-write", help="Cache write USD per MTok.")
    ] = None,
    tier: Annotated[
        list[str] | None,
        typer.Option("--tier", help="Context tier START:INPUT/OUTPUT (repeatable)."),
    ] = None,
    service_tier: Annotated[
        str, typer.Option("--service-tier", help="standard, batch, flex or priority.")
    ] = "standard",
    effective_from: Annotated[
        str | None, typer.Option("--effective-from", help="ISO timestamp (default: now).")
    ] = None,
    allow_retroactive: Annotated[
        bool,
        typer.Option("--allow-retroactive", help="Allow a past start (queued usage).", metavar=""),
    ] = False,
) -> None:
    """Price a model the catalog lacks (it prices before the catalog)."""

    try:
        row = catalog.add_custom_model(
            open_database(), operator_principal(), provider, model,
            input_mtok=input_mtok, output_mtok=output_mtok, cache_read_mtok=cache_read,
            cache_write_mtok=cache_write, tiers=[_tier(t) for t in tier or ()],
            service_tier=service_tier, effective_from=parse_moment(effective_from),
            reason=reason, allow_retroactive=allow_retroactive,
        )  # fmt: skip
    except PricingError as exc:
        raise fail(exc) from None
    typer.echo(f"custom model {provider}/{model} ({service_tier}) saved as row {row}")


@app.command("set-operation")
def set_operation(
    operation: Annotated[str, typer.Argument(help="e.g. image_generation")],
    price: Annotated[str, typer.Option("--price", help="USD per unit (an image, a video).")],
    reason: Reason,
    model: Annotated[
        str, typer.Option("--model", help="Only calls of this model (default: any model).")
    ] = "",
    provider_cost: Annotated[
        str, typer.Option("--provider-cost", help="What one unit costs you, USD.")
    ] = "0",
    effective_from: Annotated[
        str | None, typer.Option("--effective-from", help="ISO timestamp (default: now).")
    ] = None,
) -> None:
    """Charge an operation a fixed price per unit instead of by tokens: for one model,
    or for every model without its own price."""

    try:
        row = set_operation_price(
            open_database(), operator_principal(), operation, price=price,
            provider_cost=provider_cost, effective_from=parse_moment(effective_from),
            reason=reason, model=model,
        )  # fmt: skip
    except PricingError as exc:
        raise fail(exc) from None
    subject = f"{operation} ({model})" if model else f"{operation} (any model)"
    typer.echo(
        f"fixed price of {subject}: {format_rate(Decimal(price), 'unit')}, saved as row {row}"
    )


def _rates(rates: tuple[Decimal | None, Decimal | None] | None) -> str:
    if rates is None:
        return "-"
    return " / ".join("-" if r is None else format_rate(r, "MTok") for r in rates)


@app.command("update")
def update(
    source: Annotated[Path, typer.Option("--from", help="A genai-prices data.json file.")],
    yes: Annotated[bool, typer.Option("--yes", help="Load without asking.", metavar="")] = False,
) -> None:
    """Load a newer genai-prices data file: validated, its diff shown, then applied."""

    try:
        text = source.read_text(encoding="utf-8")
        checked = catalog.check_catalog_file(text)
    except (OSError, UnicodeDecodeError) as exc:
        typer.echo(f"error: cannot read {source}: {exc}", err=True)
        raise typer.Exit(2) from None
    except PricingError as exc:
        raise fail(exc) from None
    typer.echo(
        f"{source}: {checked.models:,} models; {len(checked.diff)} differ from the catalog in use"
    )
    order = {"added": 0, "changed": 1, "removed": 2}
    shown = sorted(checked.diff, key=lambda d: order[d.change])
    for d in shown[:200]:
        typer.echo(
            f"  {d.change:<8} {d.provider}/{d.model}: {_rates(d.before)} -> {_rates(d.after)}"
        )
    if len(shown) > 200:
        typer.echo(f"  ... and {len(shown) - 200} more")
    if not yes and not typer.confirm("Load it?"):
        typer.echo("not loaded")
        raise typer.Exit(1)
    try:
        catalog.load_catalog_file(open_database(), operator_principal(), text, source=str(source))
    except PricingError as exc:
        raise fail(exc) from None
    typer.echo("loaded: every process prices with it from its next price-book refresh")


@app.command("price-queue")
def price_queue(
    provider: Annotated[str | None, typer.Option("--provider")] = None,
    model: Annotated[str | None, typer.Option("--model")] = None,
) -> None:
    """Price the queued (unpriced) usage that the price book now knows."""

    try:
        result = catalog.price_unpriced(
            open_database(), operator_principal(), provider=provider, model=model
        )
    except PricingError as exc:
        raise fail(exc) from None
    typer.echo(
        f"priced {result.priced} queued event(s) for {format_money(result.amount)}; "
        f"{result.still_unpriced} still unpriced"
    )


@app.command("reprice")
def reprice(
    provider: Annotated[str, typer.Option("--provider")],
    model: Annotated[str, typer.Option("--model")],
    markup: Annotated[str, typer.Option("--markup", help="The corrected markup (x).")],
    reason: Reason,
    input_mtok: Annotated[str | None, typer.Option("--input", help="Override $/MTok.")] = None,
    output_mtok: Annotated[str | None, typer.Option("--output", help="Override $/MTok.")] = None,
    days: Annotated[int, typer.Option("--days", min=1, max=366)] = 30,
) -> None:
    """Correct the last days' charges of a model to a corrected price (one correcting
    ledger entry per event, never an edit; applying it twice posts once)."""

    try:
        change = propose_price(
            provider, model, markup=markup, input_mtok=input_mtok, output_mtok=output_mtok
        )
        done = apply_reprice(
            open_database(), operator_principal(), [change], reason=reason, days=days
        )
    except PricingError as exc:
        raise fail(exc) from None
    if done.reprice_id is None:
        typer.echo("nothing to correct: every charge in the window is at that price")
        return
    typer.echo(
        f"reprice {done.reprice_id}: {done.events} event(s) corrected by "
        f"{format_money(done.amount)} in total"
    )


@reconcile_app.command("provider")
def reconcile_provider(
    path: Annotated[Path, typer.Argument(help="The provider's cost export.")],
    fmt: Annotated[BillFormat, typer.Option("--format", help="openai, anthropic or csv.")],
    provider: Annotated[
        str | None, typer.Option("--provider", help="Default: the format's provider.")
    ] = None,
    tolerance: Annotated[
        str, typer.Option("--tolerance", help="Flag days off by more than this %.")
    ] = str(DEFAULT_TOLERANCE_PCT),
) -> None:
    """Import a provider's bill and print our provider cost against it per day; days
    over the tolerance are flagged (exit 1 if any)."""

    name = provider or (fmt.value if fmt is not BillFormat.CSV else None)
    if name is None:
        raise typer.BadParameter("--provider is required with --format csv")
    engine, principal = open_database(), operator_principal()
    try:
        import_bill(
            engine, principal, name, fmt, path.read_text(encoding="utf-8"), source=str(path)
        )
        days, rows = reconcile(
            engine, principal, name, start=parse_day("2000-01-01"),
            end=parse_day("2999-12-31"), tolerance_pct=tolerance,
        )  # fmt: skip
    except (OSError, UnicodeDecodeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except PricingError as exc:
        raise fail(exc) from None
    typer.echo(f"{'day':<12}{'ours':>14}{'billed':>14}{'drift':>14}{'drift %':>9}")
    for d in days:
        pct = "-" if d.drift_pct is None else f"{d.drift_pct}%"
        flag = "  FLAGGED" if d.flagged else ""
        typer.echo(
            f"{d.day.isoformat():<12}{format_money(d.ours):>14}"
            f"{format_money(d.billed):>14}{format_money(d.drift):>14}{pct:>9}{flag}"
        )
    flagged = [d for d in days if d.flagged]
    typer.echo(
        f"{len(flagged)} of {len(days)} day(s) over {tolerance}%; {len(rows)} day-model rows"
    )
    if flagged:
        raise typer.Exit(1)
