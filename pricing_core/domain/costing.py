"""Pure pricing: token counts and rates -> a `Quote` that says how it was computed.

No database, no clock. Rates are USD per million tokens (`*_mtok`, as in
genai-prices) and are never rounded; the price charged is rounded once, half-even to
the nano-USD (`money.round_nano`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache

import numpy as np
import pandas as pd

from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.money import (
    MTOK,
    USD,
    ZERO,
    DisplayUnit,
    format_tokens,
    round_nano,
)


class ChargeBasis(StrEnum):
    """Why a usage event was charged what it was."""

    PAYG = "payg"  # tokens x rate x markup, from the prepaid wallet
    FIXED = "fixed"  # a fixed price per call for the operation
    INCLUDED = "included"  # inside a plan's included messages: charged 0
    OVERAGE = "overage"  # beyond a plan's included messages: the overage rate
    FREE = "free"  # anonymous / free tier: recorded, never debited
    UNPRICED = "unpriced"  # no price known yet; queued for an admin


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """Tokens of one model call. `cached_tokens` (read from the provider's prompt
    cache) and `cache_write_tokens` (written to it) are parts of `input_tokens`."""

    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0

    def __post_init__(self) -> None:
        for name in ("input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidUsage(f"{name} must be an integer, got {value!r}")
            if value < 0:
                raise InvalidUsage(f"{name} must not be negative, got {value!r}")
        if self.cached_tokens + self.cache_write_tokens > self.input_tokens:
            raise InvalidUsage(
                f"cached_tokens ({self.cached_tokens}) and cache_write_tokens "
                f"({self.cache_write_tokens}) exceed input_tokens ({self.input_tokens})"
            )


@dataclass(frozen=True, slots=True)
class TokenRates:
    """USD per million tokens. `cache_read_mtok` / `cache_write_mtok` None means
    cached input / cache writes cost the input rate."""

    input_mtok: Decimal
    output_mtok: Decimal
    cache_read_mtok: Decimal | None = None
    cache_write_mtok: Decimal | None = None


@dataclass(frozen=True, slots=True)
class QuoteLine:
    """One term of a quote: `tokens x rate_mtok / 1e6 = amount` (amount unrounded)."""

    label: str
    tokens: int
    rate_mtok: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Quote:
    """The price of one usage event.

    Attributes:
        provider_cost: Decimal USD, what the provider charges the operator, rounded to nano.
        price: Decimal USD charged to the wallet, rounded to nano.
        basis: how the price was decided.
        markup: the multiplier applied (1 for fixed prices).
        lines: the token terms (empty for fixed prices).
        price_version: which price book entries were used, e.g. "genai-prices;mp:12".
        explanation: one sentence for the account's people, e.g.
            "1,020 input tokens x $0.15/MTok + 129 output tokens x $0.60/MTok =
            $0.0002304 at the provider's price; our price $0.000288". The markup is the
            operator's business: `admin_explanation` names it.
    """

    provider_cost: Decimal
    price: Decimal
    basis: ChargeBasis
    markup: Decimal
    lines: tuple[QuoteLine, ...]
    price_version: str
    explanation: str

    @property
    def admin_explanation(self) -> str:
        """`explanation` with the markup named, for admins ("...; markup x1.25")."""
        if self.markup == 1 or self.basis is not ChargeBasis.PAYG:
            return self.explanation
        return f"{self.explanation}; markup x{self.markup.normalize():f}"


def token_lines(counts: TokenCounts, rates: TokenRates) -> tuple[QuoteLine, ...]:
    """Split a call into priced terms. Amounts are exact (unrounded) Decimal USD."""
    lines = []
    uncached = counts.input_tokens - counts.cached_tokens - counts.cache_write_tokens
    if uncached or not (counts.cached_tokens or counts.cache_write_tokens):
        lines.append(_line("input", uncached, rates.input_mtok))
    if counts.cached_tokens:
        cache_rate = rates.input_mtok if rates.cache_read_mtok is None else rates.cache_read_mtok
        lines.append(_line("cached input", counts.cached_tokens, cache_rate))
    if counts.cache_write_tokens:
        write_rate = rates.input_mtok if rates.cache_write_mtok is None else rates.cache_write_mtok
        lines.append(_line("cache write", counts.cache_write_tokens, write_rate))
    lines.append(_line("output", counts.output_tokens, rates.output_mtok))
    return tuple(lines)


def _line(label: str, tokens: int, rate_mtok: Decimal) -> QuoteLine:
    return QuoteLine(label, tokens, rate_mtok, tokens * rate_mtok / MTOK)


def quote_tokens(
    counts: TokenCounts,
    *,
    provider_cost: Decimal,
    provider_rates: TokenRates,
    markup: Decimal,
    override: TokenRates | None = None,
    price_version: str,
    rule: str = "",
    factor: Decimal = Decimal(1),
    unit: DisplayUnit = USD,
) -> Quote:
    """Price a token-metered call: (tokens x rate) x markup.

    Args:
        counts: the call's tokens.
        provider_cost: exact (unrounded) Decimal USD the provider charges, from the catalog.
        provider_rates: the provider's rates (shown in the explanation).
        markup: operator multiplier (>= 0).
        override: operator rates that replace the provider's for the charged price.
        price_version: provenance string stored with the event.
        rule: which price rule applied, said first in the explanation (e.g. "batch
            tier: the provider's 50% batch discount"); "" for the standard rates.
        factor: a multiplier of the override's rates (the batch discount), exact.
        unit: the unit the explanation states amounts and rates in (USD or credits).
    Returns: a Quote with provider_cost and price rounded half-even to the nano-USD.
    """
    if markup < 0:
        raise InvalidUsage(f"markup must not be negative, got {markup}")
    rates = override or provider_rates
    lines = token_lines(counts, rates)
    base = sum((line.amount for line in lines), ZERO) * factor if override else provider_cost
    price = round_nano(base * markup)
    terms = " + ".join(
        f"{format_tokens(line.tokens)} {line.label} tokens x {unit.rate(line.rate_mtok, 'MTok')}"
        for line in lines
    )
    if factor != 1:
        terms = f"({terms}) x {factor.normalize():f}"
    explanation = f"{terms} = {unit.exact(base)}"
    if markup != 1:
        explanation += f" at the provider's price; our price {unit.exact(price)}"
    if rule:
        explanation = f"{rule}: {explanation}"
    return Quote(
        provider_cost=round_nano(provider_cost),
        price=price,
        basis=ChargeBasis.PAYG,
        markup=markup,
        lines=lines,
        price_version=price_version,
        explanation=explanation,
    )


def quote_fixed(
    operation: str,
    *,
    price: Decimal,
    provider_cost: Decimal,
    price_version: str,
    quantity: int = 1,
    model: str = "",
    unit: DisplayUnit = USD,
) -> Quote:
    """Price `quantity` units of an operation that has a fixed price per unit (`price`
    and `provider_cost`: Decimal USD per unit; `model`: the model the price is set for,
    "" for the operation-wide price); the explanation reads in `unit`."""
    each = round_nano(price)
    subject = f"{operation} ({model})" if model else operation
    rate = unit.rate(each, "call" if quantity == 1 else "unit")
    total = each * quantity
    times = "" if quantity == 1 else f" x {quantity:,} = {unit.exact(total)}"
    return Quote(
        provider_cost=round_nano(provider_cost) * quantity,
        price=total,
        basis=ChargeBasis.FIXED,
        markup=Decimal(1),
        lines=(),
        price_version=price_version,
        explanation=f"fixed price for {subject}: {rate}{times}",
    )


# ---------------------------------------------------------------- vectorized pricing
#
# `price_frame` prices a DataFrame of events and gives, per row, exactly the integers
# (nano-USD) that `price_book.PriceBook.quote` gives for that row, without a Python call
# per row. Within one group of rows that share a model, an operation, the operator's
# price rows in effect, the genai-prices price period and the tier segment, a charge
# is linear in the token counts:
#     constant + uncached x a + cached x d + output x b      (exact Decimal USD per token)
# The coefficients are measured from `genai_prices.calc_price` itself (a few probes
# per group, then verified at other points), scaled to integers, and applied to the
# token arrays with integer arithmetic; rounding is ROUND_HALF_EVEN, done exactly on
# integers. Groups whose numbers could overflow int64 use Python integers; groups
# that are not linear (or whose Decimal arithmetic could have rounded in the per-event
# path: more than 27 digits) are priced row by row with `PriceBook.quote`.

FRAME_COLUMNS = ("provider", "model", "operation", "input_tokens", "output_tokens", "created_at")
EXACT_DIGITS = 27  # the per-event path is exact Decimal arithmetic below 28 digits
_INT64_SAFE = 2**62


def special_rows(frame: pd.DataFrame) -> np.ndarray:
    """Rows of a frame of events that are priced and recorded one by one, not by the
    vectorized and set-based paths: cache writes, a service tier other than
    "standard", or a quantity other than 1 (missing columns: the UsageEvent defaults)."""
    index = frame.index
    writes = frame.get("cache_write_tokens", pd.Series(0, index=index)).fillna(0)
    tiers = frame.get("service_tier", pd.Series("standard", index=index)).fillna("standard")
    quantity = frame.get("quantity", pd.Series(1, index=index)).fillna(1)
    special = (writes.to_numpy() != 0) | (tiers.to_numpy() != "standard")
    return np.asarray(special | (quantity.to_numpy() != 1), dtype=bool)


@dataclass(frozen=True, slots=True)
class LinearCharge:
    """A charge linear in a call's token counts, exact Decimal USD (per token)."""

    constant: Decimal
    uncached: Decimal
    cached: Decimal
    output: Decimal

    def times(self, factor: Decimal) -> LinearCharge:
        """Every coefficient multiplied by `factor` (e.g. a markup); exact."""
        return LinearCharge(
            self.constant * factor,
            self.uncached * factor,
            self.cached * factor,
            self.output * factor,
        )

    def at(self, uncached: int, cached: int, output: int) -> Decimal:
        """The exact (unrounded) charge of one call."""
        return (
            self.constant + self.uncached * uncached + self.cached * cached + self.output * output
        )

    def exact_at(self, uncached: int, cached: int, output: int) -> Decimal | None:
        """`at`, or None where the per-event Decimal path (28 digits) could have rounded:
        as `linear_nanos`, when a partial sum reaches `EXACT_DIGITS` digits."""
        exponent, ints = _integer_coefficients(self)
        counts = (1, uncached, cached, output)
        if sum(abs(k) * n for k, n in zip(ints, counts, strict=True)) >= 10**EXACT_DIGITS:
            return None
        return Decimal(sum(k * n for k, n in zip(ints, counts, strict=True))).scaleb(-exponent)


@lru_cache(maxsize=1024)  # a charge is measured once per price and tier segment
def _integer_coefficients(charge: LinearCharge) -> tuple[int, tuple[int, ...]]:
    """(e, [constant, uncached, cached, output] * 10**e as ints), e the least exponent
    at which every coefficient is an integer."""
    coefs = (charge.constant, charge.uncached, charge.cached, charge.output)
    exponent = max(0, *(-c.normalize().as_tuple().exponent for c in coefs))  # type: ignore[operator]
    return exponent, tuple(int(c.scaleb(exponent)) for c in coefs)


def linear_nanos(
    charge: LinearCharge, uncached: np.ndarray, cached: np.ndarray, output: np.ndarray
) -> np.ndarray | None:
    """Exact nano-USD, rounded half-even, of `charge` for arrays of token counts.

    Args:
        uncached, cached, output: non-negative integer arrays of equal length.
    Returns: an int64 array (or an object array of Python ints when int64 could
        overflow), or None when a row's exact value has more than `EXACT_DIGITS`
        digits (the per-event Decimal path could have rounded: price those per row).
    """
    exponent, ints = _integer_coefficients(charge)
    tops = [1] + [int(a.max()) if len(a) else 0 for a in (uncached, cached, output)]
    bound = sum(abs(k) * t for k, t in zip(ints, tops, strict=True))
    if bound >= 10**EXACT_DIGITS:
        return None
    up = 10 ** max(0, 9 - exponent)
    exact_int64 = bound * up < _INT64_SAFE
    dtype = np.int64 if exact_int64 else object
    arrays = [np.asarray(a, dtype=np.int64).astype(dtype) for a in (uncached, cached, output)]
    num = ints[0] + ints[1] * arrays[0] + ints[2] * arrays[1] + ints[3] * arrays[2]
    if not isinstance(num, np.ndarray):  # no rows
        num = np.zeros(len(uncached), dtype=dtype) + num
    if exponent <= 9:
        scaled: np.ndarray = num * up
        return scaled
    return _div_half_even(num, 10 ** (exponent - 9))


def _div_half_even(num: np.ndarray, divisor: int) -> np.ndarray:
    """num / divisor rounded half to even, exactly, elementwise (any sign)."""
    quotient = num // divisor
    twice_rest = 2 * (num - quotient * divisor)
    up = (twice_rest > divisor) | ((twice_rest == divisor) & (quotient % 2 == 1))
    rounded: np.ndarray = quotient + up.astype(
        quotient.dtype if quotient.dtype != object else np.int64
    )
    return rounded
