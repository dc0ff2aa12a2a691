"""The price list every signed-in user may see: what a call costs them, never what it
costs the operator. Token prices per model in use (effective rates: the provider's
list price, or the operator's override, times the markup; USD per million tokens),
fixed prices per unit in effect, the packs on sale and the plans on offer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Engine

from pricing_core.analytics.prices import daily_ranking, model_views
from pricing_core.billing.packages import PackageOffer, list_packages, package_offers
from pricing_core.catalog.price_book import get_price_book
from pricing_core.config import get_settings
from pricing_core.domain.costing import TokenRates
from pricing_core.domain.plans import Plan
from pricing_core.domain.principal import Principal
from pricing_core.plans.subscriptions import account_plans


@dataclass(frozen=True, slots=True)
class ModelRate:
    """A model's token prices charged now (USD per MTok, markup included)."""

    provider: str
    model: str
    rates: TokenRates


@dataclass(frozen=True, slots=True)
class FixedPrice:
    """A fixed price per unit in effect now: Decimal USD; `model` "" = every model of
    the operation without its own price."""

    operation: str
    model: str
    price: Decimal


@dataclass(frozen=True, slots=True)
class PriceList:
    models: list[ModelRate]
    fixed: list[FixedPrice]
    packs: list[PackageOffer]
    plans: list[Plan]


def fixed_prices(engine: Engine, *, now: datetime | None = None) -> list[FixedPrice]:
    """Fixed prices per unit in effect at `now`, by operation then model ("" first).
    Source: `operation_prices` through the price book."""
    at = now or datetime.now(UTC)
    book = get_price_book(engine)
    out = []
    for operation, model in book.operations:
        row = book.operation_row(operation, at, model)
        if row is not None and row.model == model:
            out.append(FixedPrice(operation, model, row.price))
    return sorted(out, key=lambda f: (f.operation, f.model))


def price_list(engine: Engine, viewer: Principal, *, now: datetime | None = None) -> PriceList:
    """What the viewer's account pays: token prices of the models in use (busiest
    first over the 30 whole days before today, `daily_ranking`; models the catalog
    cannot price are left out), fixed prices, the packs on sale (`package_offers` in
    the display unit) and the plans the account may choose. Any signed-in viewer;
    nothing here is another account's."""
    at = now or datetime.now(UTC)
    ranking = daily_ranking(engine, at.date())
    models = [
        ModelRate(v.provider, v.model, v.effective)
        for v in model_views(engine, at, requests=ranking)
        if v.effective is not None
    ]
    packs = package_offers(list_packages(engine), get_settings().display_unit)
    plans = account_plans(engine, viewer.account_id, now=at) if viewer.account_id else []
    return PriceList(models, fixed_prices(engine, now=at), packs, plans)
