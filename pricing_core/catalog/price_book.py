"""The price book.

- Provider prices come from `genai-prices` (its bundled snapshot; no network).
- Operator markups and rate overrides (`model_prices`) and fixed per-call prices
  (`operation_prices`) live in the database, each with an `effective_from`: the row
  in effect at the event's timestamp applies.
- Custom models (`custom_models`, `catalog.custom`) price a model before the
  catalog does, per service tier; a loaded genai-prices data file
  (`catalog.snapshots`) replaces the bundled snapshot.
- Service tiers: the catalog's tier rates where it has them (genai-prices price
  variants: `processing=batch`, `service_tier=flex|priority`); without one, batch is
  the providers' documented 50% batch discount (`BATCH_DISCOUNT`) and flex and priority
  the standard rates. The explanation names the rule.
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
from genai_prices.types import ModelPrice, TieredPrices
from sqlalchemy import Engine, select

from pricing_core.adapters.schema import model_prices, operation_prices
from pricing_core.adapters.schema_prices import custom_models
from pricing_core.catalog.custom import CustomModelRow, row_of
from pricing_core.catalog.linear import provider_cost, standard_cost, usage_of
from pricing_core.catalog.snapshots import active_sha256, sync_catalog
from pricing_core.config import get_settings
from pricing_core.domain.costing import Quote, TokenCounts, TokenRates, quote_fixed, quote_tokens
from pricing_core.domain.errors import UnknownModel

CATALOG_VERSION = f"genai-prices {version('genai-prices')}"
# OpenAI's, Anthropic's and Google's batch APIs each cost half the standard rates.
BATCH_DISCOUNT = Decimal("0.5")
# A service tier as genai-prices' price variants name it (`price_context`).
TIER_CONTEXT = {
    "batch": {"processing": "batch"},
    "flex": {"service_tier": "flex"},
    "priority": {"service_tier": "priority"},
}


def catalog_version() -> str:
    """The catalog in use: the bundled genai-prices snapshot, or a loaded data file."""
    sha = active_sha256()
    return CATALOG_VERSION if sha is None else f"{CATALOG_VERSION}+data:{sha[:12]}"


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


def _base(value: object, input_tokens: int = 0) -> Decimal | None:
    """A rate per MTok; of tiered prices, the tier that `input_tokens` reach
    (genai-prices' rule: past a tier's start, the whole request pays its rate)."""
    if value is None:
        return None
    if not isinstance(value, TieredPrices):
        return value  # type: ignore[return-value]
    reached = [t.price for t in value.tiers if input_tokens > t.start]
    return reached[-1] if reached else value.base


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
    return _listed(
        found_provider.id,  # type: ignore[attr-defined]
        model_info.id,  # type: ignore[attr-defined]
        model_info.get_prices(at),  # type: ignore[attr-defined]
    )


def _listed(provider: str, model: str, price: ModelPrice, input_tokens: int = 0) -> ProviderPrice:
    if price.input_mtok is None or price.output_mtok is None:
        raise UnknownModel(f"model {model!r} of {provider!r} is not priced per token")
    return ProviderPrice(
        provider=provider,
        model=model,
        rates=TokenRates(
            _required(_base(price.input_mtok, input_tokens)),
            _required(_base(price.output_mtok, input_tokens)),
            _base(price.cache_read_mtok, input_tokens),
            _base(price.cache_write_mtok, input_tokens),
        ),
        tiered=any(
            isinstance(v, TieredPrices)
            for v in (price.input_mtok, price.output_mtok, price.cache_read_mtok)
        ),
    )


def _has_tier(info: object, context: dict[str, str], at: datetime) -> bool:
    """Whether the catalog has its own rates for this tier at `at`."""
    return any(
        dict(v.when) == context and (v.constraint is None or v.constraint.active(at))
        for v in getattr(info, "price_variants", None) or ()
    )


@dataclass(frozen=True, slots=True)
class ProviderTerms:
    """What the provider charges for one call, and how it was decided."""

    cost: Decimal  # exact Decimal USD
    rates: TokenRates  # the rates shown in the explanation (USD per MTok)
    version: str  # the price source, e.g. "custom:3" or the catalog version
    rule: str  # "" for standard rates, else which tier rule applied
    factor: Decimal  # the batch discount when the catalog has no batch rate, else 1


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
    """A fixed price per unit (Decimal USD) of an operation, for one model or, with
    `model` "", for every model without its own row."""

    id: int
    effective_from: datetime
    price: Decimal
    provider_cost: Decimal
    model: str = ""


@dataclass(slots=True)
class PriceBook:
    """The operator's price rows, in memory, sorted by `effective_from`."""

    default_markup: Decimal
    models: dict[tuple[str, str], list[ModelPriceRow]] = field(default_factory=dict)
    # (operation, model) -> rows; model "" is the operation-wide price
    operations: dict[tuple[str, str], list[OperationPriceRow]] = field(default_factory=dict)
    custom: dict[tuple[str, str], list[CustomModelRow]] = field(default_factory=dict)

    def custom_row(
        self, provider: str, model: str, at: datetime, tier: str = "standard"
    ) -> CustomModelRow | None:
        """The custom-model row of this tier in effect at `at`, or None."""
        rows = [r for r in self.custom.get((provider, model), []) if r.service_tier == tier]
        return _in_effect(rows, at)  # type: ignore[no-any-return]

    def listed(self, provider: str, model: str, at: datetime) -> ProviderPrice:
        """The standard provider rates at `at`: a custom row's, else the catalog's.
        Raises: UnknownModel."""
        row = self.custom_row(provider, model, at)
        if row is not None:
            return ProviderPrice(provider, model, row.rates, bool(row.tiers))
        return provider_price(provider, model, at)

    def provider_terms(
        self, provider: str, model: str, counts: TokenCounts, at: datetime, tier: str
    ) -> ProviderTerms:
        """What the provider charges for this call in this service tier (see the
        module docstring for the rules). Raises: UnknownModel."""
        one = Decimal(1)
        row = self.custom_row(provider, model, at, tier)
        if row is not None:
            rule = "" if tier == "standard" else f"{tier} tier, the operator's {tier} rates"
            cost = row.prices.calc_price(usage_of(counts))["total_price"]
            rates = _listed(provider, model, row.prices, counts.input_tokens).rates
            return ProviderTerms(cost, rates, f"custom:{row.id}", rule, one)
        context = TIER_CONTEXT.get(tier)
        row = self.custom_row(provider, model, at)
        if row is not None:
            cost, rates, source, own = (
                row.prices.calc_price(usage_of(counts))["total_price"],
                _listed(provider, model, row.prices, counts.input_tokens).rates,
                f"custom:{row.id}", False,
            )  # fmt: skip
        else:
            found, info = _find(provider, model)
            own = context is not None and _has_tier(info, context, at)
            prices = info.get_prices(at, context if own else None)  # type: ignore[attr-defined]
            listed = _listed(found.id, info.id, prices, counts.input_tokens)  # type: ignore[attr-defined]
            rates = listed.rates
            cost = (
                provider_cost(provider, model, counts, at, context=context)
                if own
                else standard_cost(provider, model, counts, at, prices)
            )
            source = catalog_version()
        if context is None:
            return ProviderTerms(cost, rates, source, "", one)
        if own:
            return ProviderTerms(
                cost, rates, source, f"{tier} tier, the catalog's {tier} rates", one
            )
        if tier == "batch":
            rule = "batch tier, the providers' 50% batch discount (no batch rate listed)"
            return ProviderTerms(cost * BATCH_DISCOUNT, rates, source, rule, BATCH_DISCOUNT)
        return ProviderTerms(cost, rates, source, f"{tier} tier, standard rates (none listed)", one)

    def model_row(self, provider: str, model: str, at: datetime) -> ModelPriceRow | None:
        """The markup/override row in effect at `at`, or None (default markup)."""
        return _in_effect(self.models.get((provider, model), []), at)

    def operation_row(
        self, operation: str, at: datetime, model: str = ""
    ) -> OperationPriceRow | None:
        """The fixed price in effect for `operation` of `model` at `at`: the model's own
        row, else the operation-wide one, else None (token-priced)."""
        own = _in_effect(self.operations.get((operation, model), []), at) if model else None
        return own or _in_effect(self.operations.get((operation, ""), []), at)  # type: ignore[no-any-return]

    def quote(
        self,
        *,
        provider: str,
        model: str,
        operation: str,
        counts: TokenCounts,
        at: datetime,
        service_tier: str = "standard",
        quantity: int = 1,
    ) -> Quote:
        """Price one call at the prices in effect at `at`, in its service tier: a fixed
        price (`operation_row`) times `quantity`, else by its tokens.

        Returns: Quote. Raises: UnknownModel (never a silent $0).
        """
        fixed = self.operation_row(operation, at, model)
        if fixed is not None:
            return quote_fixed(
                operation,
                price=fixed.price,
                provider_cost=fixed.provider_cost,
                price_version=f"op:{fixed.id}",
                quantity=quantity,
                model=fixed.model,
                unit=get_settings().display_unit,
            )
        terms = self.provider_terms(provider, model, counts, at, service_tier)
        row = self.model_row(provider, model, at)
        return quote_tokens(
            counts,
            provider_cost=terms.cost,
            provider_rates=terms.rates,
            markup=row.markup if row else self.default_markup,
            override=row.override if row else None,
            price_version=f"{terms.version};mp:{row.id}" if row else terms.version,
            rule=terms.rule,
            factor=terms.factor,
            unit=get_settings().display_unit,
        )


def _in_effect(rows: list, at: datetime):  # type: ignore[no-untyped-def]
    index = bisect_right([r.effective_from for r in rows], at)
    return rows[index - 1] if index else None


def load_price_book(engine: Engine) -> PriceBook:
    """Read the operator's price rows from the database (uncached), after making its
    newest loaded catalog the one in use (`snapshots.sync_catalog`)."""
    book = PriceBook(default_markup=get_settings().default_markup)
    with engine.connect() as conn:
        if sync_catalog(conn):
            provider_price.cache_clear()
        for r in conn.execute(
            select(custom_models).order_by(custom_models.c.effective_from, custom_models.c.id)
        ):
            book.custom.setdefault((r.provider, r.model), []).append(row_of(r))
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
            book.operations.setdefault((r.operation, r.model), []).append(
                OperationPriceRow(r.id, r.effective_from, r.price, r.provider_cost, r.model)
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
    """Forget cached price books and provider rates (call after editing prices)."""
    with _cache_lock:
        _cache.clear()
    provider_price.cache_clear()
