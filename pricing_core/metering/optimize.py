"""Cost optimization under budget pressure (`PRICING_OPTIMIZATION`).

When a request would cross a blocking budget or a cost cap, or the account's budget
has reached an alert threshold, `cheaper_fit` looks for a way to run it that fits
what is left: the operator's cheaper models for the operation
(`PRICING_OPTIMIZATION_FALLBACKS`, in order) at the requested output length, then
the fewest-cut output length (at least `PRICING_OPTIMIZATION_MIN_OUTPUT_TOKENS`),
and finally, for a refusal, the requested model with fewer output tokens. Every
price is `estimate_cost`'s: the same price book as the charge.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Engine

from pricing_core.config import get_settings
from pricing_core.domain.errors import PricingError
from pricing_core.ledger.holds import Hold
from pricing_core.limits.rules import ALL_OPERATIONS
from pricing_core.metering.estimate import DEFAULT_OPERATION, Estimate, estimate_cost


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A cheaper way to run a request: `model` (of `provider`) with at most
    `max_output_tokens`, estimated at `price` (Decimal USD), which fits `headroom`."""

    model: str
    provider: str
    max_output_tokens: int
    price: Decimal
    headroom: Decimal

    def applied_to(self, hold: Hold) -> Hold:
        """`hold` for this suggestion instead, remembering the model asked for."""
        return replace(
            hold,
            model=self.model,
            provider=self.provider,
            max_output_tokens=self.max_output_tokens,
            amount=self.price,
            substituted_for=hold.model if self.model != hold.model else None,
        )


def fallbacks(operation: str) -> list[str]:
    """The operator's cheaper models for `operation`, then those for every operation."""
    table = get_settings().optimization_fallbacks
    return [*table.get(operation, []), *table.get(ALL_OPERATIONS, [])]


def cheaper_fit(
    engine: Engine, wanted: Hold, *, headroom: Decimal, now: datetime, trim_requested: bool
) -> Suggestion | None:
    """The first way to run `wanted` whose estimate is at most `headroom` USD, or None.

    Tries each cheaper fallback model at the requested output length, then with
    fewer output tokens; with `trim_requested`, finally the requested model with
    fewer output tokens. A fallback that is not cheaper than `wanted` is skipped."""
    if headroom <= 0 or wanted.model is None or wanted.max_output_tokens is None:
        return None
    floor = get_settings().optimization_min_output_tokens
    candidates = [m for m in dict.fromkeys(fallbacks(wanted.operation or DEFAULT_OPERATION))]
    candidates = [m for m in candidates if m != wanted.model]
    if trim_requested:
        candidates.append(wanted.model)

    def estimate(model: str, output: int) -> Estimate | None:
        try:
            return estimate_cost(
                engine,
                model=model,
                max_output_tokens=output,
                prompt_tokens=wanted.input_tokens or 0,
                provider=wanted.provider if model == wanted.model else None,
                operation=wanted.operation or DEFAULT_OPERATION,
                now=now,
            )
        except PricingError:  # a fallback the price book does not know
            return None

    for model in candidates:
        full = estimate(model, wanted.max_output_tokens)
        if full is None or (model != wanted.model and full.price >= wanted.amount):
            continue
        if full.price <= headroom:
            return Suggestion(model, full.provider, full.max_output_tokens, full.price, headroom)
        low, high = floor, wanted.max_output_tokens - 1  # the longest output that fits
        shortest = estimate(model, low) if low <= high else None
        if shortest is None or shortest.price > headroom:
            continue
        best = shortest
        while low < high:
            middle = (low + high + 1) // 2
            tried = estimate(model, middle)
            if tried is not None and tried.price <= headroom:
                low, best = middle, tried
            else:
                high = middle - 1
        return Suggestion(model, best.provider, best.max_output_tokens, best.price, headroom)
    return None
