"""Presets: the credit price list of an image- and video-generator, from the source
material (`../shared` brief), in credits; applied at the configured
`PRICING_CREDITS_PER_USD` (10: 1 credit = $0.10).

Fixed prices are per (operation, model or style); "" is every other model of the
operation. Provider costs are not in the source: they are set to 0, for the operator
to set (`pricing-core prices set-operation --provider-cost`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Engine

from pricing_core.admin.packages import PackTerms, save_package
from pricing_core.admin.prices import set_operation_price
from pricing_core.catalog.price_book import load_price_book
from pricing_core.config import get_settings
from pricing_core.domain.money import DisplayUnit
from pricing_core.domain.principal import Principal, require_admin

# (operation, model or style, credits per unit)
CREDIT_PRICES = (
    ("image_generation", "dall-e-3", 10),
    ("image_generation", "gemini-pro-vision", 8),
    ("image_generation", "stable-diffusion", 3),
    ("image_editing", "", 15),
    ("video_generation", "", 50),
    ("meme_generation", "", 5),
    ("style_transfer", "ghibli", 8),
    ("style_transfer", "cartoon", 6),
)
# (code, name, price USD, credits, most popular)
CREDIT_PACKS = (
    ("starter", "Starter", "4.99", 50, False),
    ("popular", "Popular", "17.99", 200, True),
    ("pro", "Pro", "39.99", 500, False),
    ("enterprise", "Enterprise", "139.99", 2000, False),
)
REASON = "credit price list preset"


def apply_credit_preset(
    engine: Engine, principal: Principal, *, now: datetime | None = None
) -> tuple[int, int]:
    """Sell the preset's four packs and charge its fixed prices, in credits at the
    configured rate. Idempotent: a pack or price already on these terms is left as it
    is. Returns: (packs saved or kept, prices set now). Raises: PermissionDenied."""
    require_admin(principal)
    at = now or datetime.now(UTC)
    unit = DisplayUnit(get_settings().credits_per_usd)
    for code, name, price, credits, popular in CREDIT_PACKS:
        terms = PackTerms(name, price, credits, 0, popular)
        save_package(engine, principal, code, terms, reason=REASON, unit=unit, now=at)
    return len(CREDIT_PACKS), apply_credit_prices(engine, principal, now=at)


def apply_credit_prices(
    engine: Engine, principal: Principal, *, now: datetime | None = None
) -> int:
    """The preset's fixed prices only (`CREDIT_PRICES` at the configured rate), from
    `now` on; a price already in effect on these terms is left as it is (the demo
    data uses them). Returns: prices set. Raises: PermissionDenied."""
    require_admin(principal)
    at = now or datetime.now(UTC)
    unit = DisplayUnit(get_settings().credits_per_usd)
    book = load_price_book(engine)
    changed = 0
    for operation, model, credits in CREDIT_PRICES:
        usd = unit.to_usd(Decimal(credits))
        row = book.operation_row(operation, at, model)
        if row is not None and row.model == model and row.price == usd:
            continue
        set_operation_price(
            engine, principal, operation, price=usd, provider_cost=0, effective_from=at,
            reason=REASON, model=model, now=at,
        )  # fmt: skip
        changed += 1
    return changed
