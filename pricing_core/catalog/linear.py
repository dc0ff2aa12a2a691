"""Provider cost from genai-prices, measured once per price and tier segment.

`genai_prices.calc_price` is the source of every provider cost. Per call it costs
~0.15 ms (usage decomposition and validation), more than the rest of a charge's
Python. Within one price period (a `ModelPrice`) and one tier segment of the input
tokens, a per-token price is linear in the token counts, so the cost there is a
`LinearCharge` measured from `calc_price` at a few points and verified at others
(`linear_charge`). The single charge (`PriceBook.quote`) and the vectorized pricer
(`catalog.vectorized`) both use it; anything not linear, or with cache writes, goes
through `calc_price` itself.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import datetime
from decimal import Decimal

import genai_prices
from genai_prices import Usage
from genai_prices.types import ModelPrice, TieredPrices

from pricing_core.domain.costing import LinearCharge, TokenCounts
from pricing_core.domain.errors import UnknownModel

PROBE_LIMIT = 10**9  # the last tier segment is verified up to this many input tokens

# (provider, model, id(price), segment) -> (the price measured, its charge or None);
# the price object is kept so that an id reused after a catalog reload never matches
_charges: dict[tuple[str, str, int, int], tuple[ModelPrice, LinearCharge | None]] = {}
_bounds: dict[int, tuple[ModelPrice, tuple[int, ...]]] = {}


def usage_of(counts: TokenCounts) -> Usage:
    """genai-prices' Usage of a call's token counts."""
    return Usage(
        input_tokens=counts.input_tokens,
        output_tokens=counts.output_tokens,
        cache_read_tokens=counts.cached_tokens,
        cache_write_tokens=counts.cache_write_tokens,
    )


def provider_cost(
    provider: str,
    model: str,
    counts: TokenCounts,
    at: datetime,
    *,
    context: dict[str, str] | None = None,
) -> Decimal:
    """Exact (unrounded) Decimal USD the provider charges for this call; `context` is a
    genai-prices price context (a service tier's `TIER_CONTEXT`).

    Raises: UnknownModel. Prices: `genai_prices.calc_price` on the catalog in use.
    """
    try:
        result = genai_prices.calc_price(
            usage_of(counts),
            model,
            provider_id=provider,
            genai_request_timestamp=at,
            price_context=context,
        )
    except LookupError:
        raise UnknownModel(f"unknown model {model!r} for provider {provider!r}") from None
    return result.total_price


def standard_cost(
    provider: str, model: str, counts: TokenCounts, at: datetime, price: ModelPrice
) -> Decimal:
    """`provider_cost(provider, model, counts, at)` at standard rates, where `price` is
    the catalog's price in effect at `at`: from the measured `linear_charge` where the
    price is linear and the Decimal arithmetic exact, else `calc_price` itself.

    Returns: exact Decimal USD, numerically equal to `provider_cost`'s. Raises:
    UnknownModel.
    """
    if counts.cache_write_tokens == 0:
        bounds = tier_starts(price)
        segment = bisect_left(bounds, counts.input_tokens)
        charge = linear_charge(provider, model, at, price, bounds, segment)
        if charge is not None:
            cached = counts.cached_tokens
            cost = charge.exact_at(counts.input_tokens - cached, cached, counts.output_tokens)
            if cost is not None:
                return cost
    return provider_cost(provider, model, counts, at)


def tier_starts(price: ModelPrice) -> tuple[int, ...]:
    """The input-token counts where `price`'s tiers start, ascending (none: ())."""
    hit = _bounds.get(id(price))
    if hit is not None and hit[0] is price:
        return hit[1]
    starts = tuple(
        sorted(
            {
                tier.start
                for value in price.__dict__.values()
                if isinstance(value, TieredPrices)
                for tier in value.tiers
            }
        )
    )
    _bounds[id(price)] = (price, starts)
    return starts


def linear_charge(
    provider: str,
    model: str,
    at: datetime,
    price: ModelPrice,
    bounds: tuple[int, ...],
    segment: int,
) -> LinearCharge | None:
    """The provider cost of calls whose input tokens fall in tier `segment` (of
    `bounds`, from `tier_starts(price)`) while `price` is in effect (`at` is such a
    moment), as a LinearCharge measured from `calc_price` and verified at other
    points; None if the price is not linear there. Measured once per price and
    segment."""
    key = (provider, model, id(price), segment)
    hit = _charges.get(key)
    if hit is not None and hit[0] is price:
        return hit[1]
    lo = bounds[segment - 1] + 1 if segment > 0 else 0
    hi = bounds[segment] if segment < len(bounds) else PROBE_LIMIT
    charge = _measure(provider, model, at, lo, hi)
    _charges[key] = (price, charge)
    return charge


def _measure(provider: str, model: str, at: datetime, lo: int, hi: int) -> LinearCharge | None:
    def cost(input_tokens: int, output_tokens: int, cached_tokens: int) -> Decimal:
        return provider_cost(
            provider, model, TokenCounts(input_tokens, output_tokens, cached_tokens), at
        )

    base = cost(lo, 0, 0)
    per_input = cost(lo + 1, 0, 0) - base if hi > lo else Decimal(0)
    per_output = cost(lo, 1, 0) - base
    with_cache = max(lo, 1)
    per_cached = (
        cost(with_cache, 0, 1) - cost(with_cache, 0, 0) + per_input
        if with_cache <= hi
        else per_input
    )
    charge = LinearCharge(base - per_input * lo, per_input, per_cached, per_output)
    mid = (lo + hi) // 2
    checks = [(hi, 104_729, hi // 2), (mid, 7_919, mid // 3), (lo, 1_000_003, 0), (hi, 0, hi)]
    for i, o, c in checks:
        if cost(i, o, c) != charge.at(i - c, c, o):
            return None
    return charge
