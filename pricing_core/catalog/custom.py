"""Custom models: an operator's provider rates for a model the catalog lacks (or
its own rates for one it has), per service tier, from `effective_from` on.

A row becomes a genai-prices `ModelPrice`, so cache reads and writes and long-context
tiers price exactly as the catalog's own models do (`ModelPrice.calc_price`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from genai_prices.types import ModelPrice, Tier, TieredPrices

from pricing_core.domain.costing import TokenRates


@dataclass(frozen=True, slots=True)
class ContextTier:
    """Past `start` input tokens, the whole request costs these rates (USD per MTok)."""

    start: int
    input_mtok: Decimal
    output_mtok: Decimal

    def as_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "input_mtok": str(self.input_mtok),
            "output_mtok": str(self.output_mtok),
        }


@dataclass(frozen=True, slots=True)
class CustomModelRow:
    """One custom-model row in memory: its rates (USD per MTok) and genai-prices'
    `ModelPrice` built from them."""

    id: int
    effective_from: datetime
    service_tier: str
    rates: TokenRates
    tiers: tuple[ContextTier, ...]
    prices: ModelPrice


def model_price(rates: TokenRates, tiers: tuple[ContextTier, ...]) -> ModelPrice:
    """genai-prices' `ModelPrice` for these rates and context tiers."""

    def tiered(base: Decimal, key: str) -> Decimal | TieredPrices:
        if not tiers:
            return base
        return TieredPrices(base=base, tiers=[Tier(t.start, getattr(t, key)) for t in tiers])

    return ModelPrice(
        input_mtok=tiered(rates.input_mtok, "input_mtok"),
        output_mtok=tiered(rates.output_mtok, "output_mtok"),
        cache_read_mtok=rates.cache_read_mtok,
        cache_write_mtok=rates.cache_write_mtok,
    )


def tiers_of(value: object) -> tuple[ContextTier, ...]:
    """Context tiers from their stored JSON (a list of objects), sorted by start."""
    if not value:
        return ()
    return tuple(
        sorted(
            (
                ContextTier(int(t["start"]), Decimal(t["input_mtok"]), Decimal(t["output_mtok"]))
                for t in value  # type: ignore[attr-defined]
            ),
            key=lambda t: t.start,
        )
    )


def row_of(r: Any) -> CustomModelRow:
    """A `custom_models` database row in memory."""
    rates = TokenRates(r.input_mtok, r.output_mtok, r.cache_read_mtok, r.cache_write_mtok)
    tiers = tiers_of(r.tiers)
    return CustomModelRow(
        r.id, r.effective_from, r.service_tier, rates, tiers, model_price(rates, tiers)
    )
