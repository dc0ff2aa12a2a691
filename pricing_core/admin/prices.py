"""The operator's price book: models in use with their list and effective prices,
markup / override edits with an `effective_from`, fixed operation prices, the reprice
preview and the history of changes.

Edits are never retroactive by default: an `effective_from` in the past is refused
unless `allow_retroactive=True`. A usage event keeps the price it was charged (it is
stored with the event), so a new row only prices events at or after its
`effective_from`. Each edit writes its price row (with the actor and reason) and an
audit row in one transaction, then clears the price cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert
from sqlalchemy.engine import Connection

from pricing_core.adapters.audit import actor_of, audit_reason, write_audit
from pricing_core.adapters.schema import model_prices, operation_prices
from pricing_core.adapters.storage import run_write
from pricing_core.catalog.price_book import (
    clear_price_cache,
    load_price_book,
    provider_price,
)
from pricing_core.domain.costing import TokenRates
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.money import ZERO, round_nano, to_usd
from pricing_core.domain.principal import Principal, require_admin
from pricing_core.domain.usage_event import EARLIEST, check_name

MAX_MARKUP = Decimal(100)
MAX_RATE_MTOK = Decimal(100_000)  # USD per million tokens
MAX_FIXED_PRICE = Decimal(1_000)  # USD per call


# ---------------------------------------------------------------- validation


def _decimal(
    value: object, what: str, *, low: Decimal, high: Decimal, positive: bool = False
) -> Decimal:
    try:
        number = to_usd(value)
    except ValueError as exc:
        raise InvalidUsage(f"{what}: {exc}") from None
    if number < low or (positive and number == 0) or number > high:
        bound = "above" if positive else "at least"
        raise InvalidUsage(f"{what} must be {bound} {low} and at most {high}, got {number}")
    return number


def _rates(input_mtok: object, output_mtok: object, cache_read_mtok: object) -> TokenRates | None:
    given = [v not in (None, "") for v in (input_mtok, output_mtok)]
    if not any(given) and cache_read_mtok in (None, ""):
        return None
    if not all(given):
        raise InvalidUsage("an override needs both an input and an output rate per MTok")
    kw: dict[str, Any] = {"low": ZERO, "high": MAX_RATE_MTOK}
    return TokenRates(
        _decimal(input_mtok, "input rate per MTok", **kw),
        _decimal(output_mtok, "output rate per MTok", **kw),
        None
        if cache_read_mtok in (None, "")
        else _decimal(cache_read_mtok, "cached input rate per MTok", **kw),
    )


def _effective_from(effective_from: object, now: datetime, allow_retroactive: bool) -> datetime:
    if effective_from is None:
        return now
    if not isinstance(effective_from, datetime) or effective_from.tzinfo is None:
        raise InvalidUsage(
            f"effective_from must be a timezone-aware datetime, got {effective_from!r}"
        )
    if effective_from < now and not allow_retroactive:
        raise InvalidUsage(
            f"effective_from {effective_from.isoformat()} is in the past: price changes are "
            "not retroactive (pass allow_retroactive to override)"
        )
    if effective_from < EARLIEST or effective_from > now + timedelta(days=3660):
        raise InvalidUsage(f"effective_from {effective_from.isoformat()} is out of range")
    return effective_from.astimezone(UTC)


def _rates_json(rates: TokenRates | None) -> dict[str, str | None] | None:
    if rates is None:
        return None
    return {
        "input_mtok": str(rates.input_mtok),
        "output_mtok": str(rates.output_mtok),
        "cache_read_mtok": None if rates.cache_read_mtok is None else str(rates.cache_read_mtok),
    }


# ---------------------------------------------------------------- edits


@dataclass(frozen=True, slots=True)
class PriceChange:
    """A proposed markup / override for one model (rates USD per MTok)."""

    provider: str
    model: str
    markup: Decimal
    override: TokenRates | None = None


def propose_price(
    provider: str,
    model: str,
    *,
    markup: object,
    input_mtok: object = None,
    output_mtok: object = None,
    cache_read_mtok: object = None,
) -> PriceChange:
    """Validate a proposed price (markup > 0 and <= 100; override rates 0..100,000 per
    MTok, input and output together). Raises: InvalidUsage, UnknownModel (the catalog
    must know the model: its provider cost is needed either way)."""
    provider_price(provider, model, datetime.now(UTC))
    return PriceChange(
        provider,
        model,
        _decimal(markup, "markup", low=ZERO, high=MAX_MARKUP, positive=True),
        _rates(input_mtok, output_mtok, cache_read_mtok),
    )


def set_model_price(
    engine: Engine,
    principal: Principal,
    change: PriceChange,
    *,
    effective_from: datetime | None,
    reason: str,
    allow_retroactive: bool = False,
    now: datetime | None = None,
) -> int:
    """Add a markup / override row for a model from `effective_from` on (None: now).

    Writes the `model_prices` row (actor, reason) and an audit row (before: the row in
    effect at `effective_from`; after: the new one) in one transaction, then clears
    the price cache. Returns: the new row's id.
    Raises: PermissionDenied, InvalidUsage (past effective_from unless allowed, bad
    values, no reason), UnknownModel.
    """
    require_admin(principal)
    at = now or datetime.now(UTC)
    start = _effective_from(effective_from, at, allow_retroactive)
    text = audit_reason(reason)
    checked = propose_price(
        change.provider,
        change.model,
        markup=change.markup,
        input_mtok=change.override.input_mtok if change.override else None,
        output_mtok=change.override.output_mtok if change.override else None,
        cache_read_mtok=change.override.cache_read_mtok if change.override else None,
    )
    book = load_price_book(engine)
    previous = book.model_row(checked.provider, checked.model, start)
    actor = actor_of(principal)

    def work(conn: Connection) -> int:
        rates = checked.override
        row_id = conn.execute(
            insert(model_prices)
            .values(
                provider=checked.provider,
                model=checked.model,
                effective_from=start,
                markup=checked.markup,
                input_mtok=rates.input_mtok if rates else None,
                output_mtok=rates.output_mtok if rates else None,
                cache_read_mtok=rates.cache_read_mtok if rates else None,
                actor=actor,
                reason=text,
                created_at=at,
            )
            .returning(model_prices.c.id)
        ).scalar_one()
        write_audit(
            conn,
            actor=actor,
            action="price.model",
            now=at,
            target=f"{checked.provider}/{checked.model}",
            before={
                "markup": str(previous.markup if previous else book.default_markup),
                "override": _rates_json(previous.override if previous else None),
                "effective_from": previous.effective_from if previous else None,
            },
            after={
                "markup": str(checked.markup),
                "override": _rates_json(rates),
                "effective_from": start,
                "model_prices_id": row_id,
            },
            reason=text,
        )
        return row_id

    row_id = run_write(engine, work)
    clear_price_cache()
    return row_id


def set_operation_price(
    engine: Engine,
    principal: Principal,
    operation: str,
    *,
    price: object,
    provider_cost: object,
    effective_from: datetime | None,
    reason: str,
    model: str = "",
    allow_retroactive: bool = False,
    now: datetime | None = None,
) -> int:
    """Charge `operation` a fixed `price` USD per unit (costing the operator
    `provider_cost`) from `effective_from` on (None: now): for calls of `model`, or
    with `model` "", for every model without its own price. Row + audit in one
    transaction, then the price cache is cleared. Returns: the row id.
    Raises: PermissionDenied, InvalidUsage.
    """
    require_admin(principal)
    at = now or datetime.now(UTC)

    check_name("operation", operation)
    if model:
        check_name("model", model)
    start = _effective_from(effective_from, at, allow_retroactive)
    text = audit_reason(reason)
    kw: dict[str, Any] = {"low": ZERO, "high": MAX_FIXED_PRICE}
    amount = _decimal(price, "price per call", **kw)
    cost = _decimal(provider_cost, "provider cost per call", **kw)
    for value, what in ((amount, "price"), (cost, "provider cost")):
        if value != round_nano(value):
            raise InvalidUsage(f"the {what} {value} is finer than a nano-USD")
    previous = load_price_book(engine).operation_row(operation, start, model)
    actor = actor_of(principal)

    def work(conn: Connection) -> int:
        row_id = conn.execute(
            insert(operation_prices)
            .values(
                operation=operation,
                model=model,
                effective_from=start,
                price=amount,
                provider_cost=cost,
                actor=actor,
                reason=text,
                created_at=at,
            )
            .returning(operation_prices.c.id)
        ).scalar_one()
        write_audit(
            conn,
            actor=actor,
            action="price.operation",
            now=at,
            target=f"{operation}:{model}" if model else operation,
            before=None
            if previous is None
            else {
                "price": previous.price,
                "provider_cost": previous.provider_cost,
                "model": previous.model,
            },
            after={
                "model": model,
                "price": amount,
                "provider_cost": cost,
                "effective_from": start,
                "operation_prices_id": row_id,
            },
            reason=text,
        )
        return row_id

    row_id = run_write(engine, work)
    clear_price_cache()
    return row_id
