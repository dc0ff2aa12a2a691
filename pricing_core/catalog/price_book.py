"""The price book.

- Provider prices come from `genai-prices` (its bundled snapshot; no network).
- Operator markups and rate overrides (`model_prices`) and fixed per-call prices
  (`operation_prices`) live in the database, each with an `effective_from`: the row
  in effect at the event's timestamp applies.
- A TTL cache (setting `price_cache_ttl`, default 300 s) sits in front of the
  database; `clear_price_cache()` empties it after an edit.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from importlib.metadata import version

import genai_prices
from genai_prices import Usage
from genai_prices.types import TieredPrices
from sqlalchemy import Engine, select

from pricing_core.adapters.schema import model_prices, operation_prices
from pricing_core.config import get_settings
from pricing_core.domain.costing import Quote, TokenCounts, TokenRates, quote_fixed, quote_tokens
from pricing_core.domain.errors import UnknownModel

CATALOG_VERSION = f"genai-prices {version('genai-prices')}"


@dataclass(frozen=True, slots=True)
class ProviderPrice:
    """A provider's list price for a model at a moment. Rates: USD per MTok."""

    provider: str
    model: str
    rates: TokenRates
    tiered: bool


def _find(provider: str, model: str) -> tuple[object, object]:
    snapshot = genai_prices.data_snapshot.get_snapshot()
    try:
        return snapshot.find_provider_model(model, None, provider, None)
    except LookupError:
        raise UnknownModel(f"unknown model {model!r} for provider {provider!r}") from None


def _base(value: object) -> Decimal | None:
    if value is None:
        return None
    return value.base if isinstance(value, TieredPrices) else value  # type: ignore[return-value]


def _required(value: Decimal | None) -> Decimal:
    if value is None:  # checked by the caller: a rate it read is never missing here
        raise AssertionError("a per-token rate is missing")
    return value


@lru_cache(maxsize=4096)
def provider_price(provider: str, model: str, at: datetime) -> ProviderPrice:
    """The provider's rates for `model` at `at`.

    Returns: ProviderPrice (USD per MTok). Raises: UnknownModel.
    Prices: the genai-prices snapshot.
    """
    found_provider, model_info = _find(provider, model)
    price = model_info.get_prices(at)  # type: ignore[attr-defined]
    if price.input_mtok is None or price.output_mtok is None:
        raise UnknownModel(f"model {model!r} of {provider!r} is not priced per token")
    return ProviderPrice(
        provider=found_provider.id,  # type: ignore[attr-defined]
        model=model_info.id,  # type: ignore[attr-defined]
        rates=TokenRates(
            _required(_base(price.input_mtok)),
            _required(_base(price.output_mtok)),
            _base(price.cache_read_mtok),
        ),
        tiered=any(
            isinstance(v, TieredPrices)
            for v in (price.input_mtok, price.output_mtok, price.cache_read_mtok)
        ),
    )


def provider_cost(provider: str, model: str, counts: TokenCounts, at: datetime) -> Decimal:
    """Exact (unrounded) Decimal USD the provider charges for this call.

    Raises: UnknownModel. Prices: `genai_prices.calc_price` on the bundled snapshot.
    """
    usage = Usage(
        input_tokens=counts.input_tokens,
        output_tokens=counts.output_tokens,
        cache_read_tokens=counts.cached_tokens,
    )
    try:
        result = genai_prices.calc_price(
            usage, model, provider_id=provider, genai_request_timestamp=at
        )
    except LookupError:
        raise UnknownModel(f"unknown model {model!r} for provider {provider!r}") from None
    return result.total_price


def known_models() -> list[tuple[str, str]]:
    """(provider, model id) pairs of the genai-prices snapshot."""
    snapshot = genai_prices.data_snapshot.get_snapshot()
    return [(p.id, m.id) for p in snapshot.providers for m in p.models]


@dataclass(frozen=True, slots=True)
class ModelPriceRow:
    id: int
    effective_from: datetime
    markup: Decimal
    override: TokenRates | None


@dataclass(frozen=True, slots=True)
class OperationPriceRow:
    id: int
    effective_from: datetime
    price: Decimal
    provider_cost: Decimal


@dataclass(slots=True)
class PriceBook:
    """The operator's price rows, in memory, sorted by `effective_from`."""

    default_markup: Decimal
    models: dict[tuple[str, str], list[ModelPriceRow]] = field(default_factory=dict)
    operations: dict[str, list[OperationPriceRow]] = field(default_factory=dict)

    def model_row(self, provider: str, model: str, at: datetime) -> ModelPriceRow | None:
        """The markup/override row in effect at `at`, or None (default markup)."""
        return _in_effect(self.models.get((provider, model), []), at)

    def operation_row(self, operation: str, at: datetime) -> OperationPriceRow | None:
        """The fixed price in effect for `operation` at `at`, or None (token-priced)."""
        return _in_effect(self.operations.get(operation, []), at)

    def quote(
        self,
        *,
        provider: str,
        model: str,
        operation: str,
        counts: TokenCounts,
        at: datetime,
    ) -> Quote:
        """Price one call at the prices in effect at `at`.

        Returns: Quote. Raises: UnknownModel (never a silent $0).
        """
        fixed = self.operation_row(operation, at)
        if fixed is not None:
            return quote_fixed(
                operation,
                price=fixed.price,
                provider_cost=fixed.provider_cost,
                price_version=f"op:{fixed.id}",
            )
        listed = provider_price(provider, model, at)
        row = self.model_row(provider, model, at)
        return quote_tokens(
            counts,
            provider_cost=provider_cost(provider, model, counts, at),
            provider_rates=listed.rates,
            markup=row.markup if row else self.default_markup,
            override=row.override if row else None,
            price_version=f"{CATALOG_VERSION};mp:{row.id}" if row else CATALOG_VERSION,
        )


def _in_effect(rows: list, at: datetime):  # type: ignore[no-untyped-def]
    index = bisect_right([r.effective_from for r in rows], at)
    return rows[index - 1] if index else None


def load_price_book(engine: Engine) -> PriceBook:
    """Read the operator's price rows from the database (uncached)."""
    book = PriceBook(default_markup=get_settings().default_markup)
    with engine.connect() as conn:
        for r in conn.execute(
            select(model_prices).order_by(model_prices.c.effective_from, model_prices.c.id)
        ):
            override = None
            if r.input_mtok is not None and r.output_mtok is not None:
                override = TokenRates(r.input_mtok, r.output_mtok, r.cache_read_mtok)
            book.models.setdefault((r.provider, r.model), []).append(
                ModelPriceRow(r.id, r.effective_from, r.markup, override)
            )
        for r in conn.execute(
            select(operation_prices).order_by(
                operation_prices.c.effective_from, operation_prices.c.id
            )
        ):
            book.operations.setdefault(r.operation, []).append(
                OperationPriceRow(r.id, r.effective_from, r.price, r.provider_cost)
            )
    return book


_cache: dict[str, tuple[float, PriceBook]] = {}
_cache_lock = threading.Lock()


def get_price_book(engine: Engine) -> PriceBook:
    """The price book for `engine`, cached for `price_cache_ttl` seconds."""
    key = engine.url.render_as_string(hide_password=True)
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
        if hit and now - hit[0] < get_settings().price_cache_ttl:
            return hit[1]
    book = load_price_book(engine)
    with _cache_lock:
        _cache[key] = (now, book)
    return book


def clear_price_cache() -> None:
    """Forget cached price books (call after editing prices)."""
    with _cache_lock:
        _cache.clear()
