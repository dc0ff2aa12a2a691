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

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import genai_prices
import pandas as pd
from genai_prices.types import StartDateConstraint
from sqlalchemy import BigInteger, Engine, and_, case, func, insert, or_, select, type_coerce
from sqlalchemy.engine import Connection

from pricing_core.adapters.audit import actor_of, write_audit
from pricing_core.adapters.schema import model_prices, operation_prices, usage_daily, usage_events
from pricing_core.adapters.storage import run_write
from pricing_core.catalog.price_book import (
    CATALOG_VERSION,
    ModelPriceRow,
    PriceBook,
    clear_price_cache,
    load_price_book,
    provider_price,
)
from pricing_core.catalog.vectorized import price_frame
from pricing_core.domain.costing import TokenRates
from pricing_core.domain.errors import InvalidUsage, UnknownModel
from pricing_core.domain.money import ZERO, nanos_to_usd, round_nano, to_usd
from pricing_core.domain.principal import Principal, require_admin
from pricing_core.domain.usage_event import EARLIEST, check_name

MAX_MARKUP = Decimal(100)
MAX_RATE_MTOK = Decimal(100_000)  # USD per million tokens
MAX_FIXED_PRICE = Decimal(1_000)  # USD per call
MAX_REASON = 1000


@dataclass(frozen=True, slots=True)
class ScheduledPrice:
    """An operator row that takes effect later."""

    effective_from: datetime
    markup: Decimal
    override: TokenRates | None


@dataclass(frozen=True, slots=True)
class ModelPriceView:
    """One model of the price book. Rates: USD per million tokens.

    `listed` is the provider's price from the catalog (None if the catalog does not
    know the model: its usage cannot be priced). `effective` = (override or listed)
    x markup. `effective_from` is None while the default markup applies.
    """

    provider: str
    model: str
    requests_30d: int
    listed: TokenRates | None
    tiered: bool
    markup: Decimal
    override: TokenRates | None
    effective_from: datetime | None
    effective: TokenRates | None
    scheduled: tuple[ScheduledPrice, ...] = field(default=())


def _scaled(rates: TokenRates | None, markup: Decimal) -> TokenRates | None:
    if rates is None:
        return None
    cached = None if rates.cache_read_mtok is None else rates.cache_read_mtok * markup
    return TokenRates(rates.input_mtok * markup, rates.output_mtok * markup, cached)


def _models_in_use(conn: Connection, since: date) -> dict[tuple[str, str], int]:
    """(provider, model) -> requests since `since`, for every model in the rollups or
    with an operator row."""
    d = usage_daily.c
    recent = func.sum(case((d.day >= since, d.requests), else_=0))
    used = {
        (provider, model): int(requests or 0)
        for provider, model, requests in conn.execute(
            select(d.provider, d.model, recent).group_by(d.provider, d.model)
        )
    }
    for provider, model in conn.execute(select(model_prices.c.provider, model_prices.c.model)):
        used.setdefault((provider, model), 0)
    return used


def price_book(
    engine: Engine, principal: Principal, *, now: datetime | None = None
) -> list[ModelPriceView]:
    """Every model in use (in the rollups) or with an operator row, busiest first.

    Raises: PermissionDenied. Sources: usage_daily, model_prices, genai-prices.
    """
    require_admin(principal)
    at = now or datetime.now(UTC)
    book = load_price_book(engine)
    with engine.connect() as conn:
        used = _models_in_use(conn, (at - timedelta(days=30)).date())
    out = []
    for (provider, model), requests in used.items():
        try:
            listed = provider_price(provider, model, at)
            rates, tiered = listed.rates, listed.tiered
        except UnknownModel:
            rates, tiered = None, False
        row = book.model_row(provider, model, at)
        markup = row.markup if row else book.default_markup
        override = row.override if row else None
        scheduled = tuple(
            ScheduledPrice(r.effective_from, r.markup, r.override)
            for r in book.models.get((provider, model), [])
            if r.effective_from > at
        )
        out.append(
            ModelPriceView(
                provider,
                model,
                requests,
                rates,
                tiered,
                markup,
                override,
                row.effective_from if row else None,
                _scaled(override or rates, markup),
                scheduled,
            )
        )
    return sorted(out, key=lambda v: (-v.requests_30d, v.provider, v.model))


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
    kw = {"low": ZERO, "high": MAX_RATE_MTOK}
    return TokenRates(
        _decimal(input_mtok, "input rate per MTok", **kw),
        _decimal(output_mtok, "output rate per MTok", **kw),
        None
        if cache_read_mtok in (None, "")
        else _decimal(cache_read_mtok, "cached input rate per MTok", **kw),
    )


def _reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidUsage("a reason is required")
    if len(reason.strip()) > MAX_REASON:
        raise InvalidUsage(f"the reason is longer than {MAX_REASON} characters")
    return reason.strip()


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
    text = _reason(reason)
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


@dataclass(frozen=True, slots=True)
class OperationPriceView:
    operation: str
    price: Decimal  # USD per call
    provider_cost: Decimal  # USD per call
    effective_from: datetime
    actor: str | None
    scheduled: bool


def operation_price_list(
    engine: Engine, principal: Principal, *, now: datetime | None = None
) -> list[OperationPriceView]:
    """Fixed per-call prices: the one in effect now per operation and any scheduled
    later. Raises: PermissionDenied."""
    require_admin(principal)
    at = now or datetime.now(UTC)
    o = operation_prices.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(operation_prices).order_by(o.operation, o.effective_from, o.id)
        ).all()
    current: dict[str, OperationPriceView] = {}
    later: list[OperationPriceView] = []
    for r in rows:
        view = OperationPriceView(
            r.operation, r.price, r.provider_cost, r.effective_from, r.actor, r.effective_from > at
        )
        if view.scheduled:
            later.append(view)
        else:
            current[r.operation] = view
    return sorted([*current.values(), *later], key=lambda v: (v.operation, v.effective_from))


def set_operation_price(
    engine: Engine,
    principal: Principal,
    operation: str,
    *,
    price: object,
    provider_cost: object,
    effective_from: datetime | None,
    reason: str,
    allow_retroactive: bool = False,
    now: datetime | None = None,
) -> int:
    """Charge `operation` a fixed `price` USD per call (costing the operator
    `provider_cost`) from `effective_from` on (None: now). Row + audit in one transaction, then
    the price cache is cleared. Returns: the row id.
    Raises: PermissionDenied, InvalidUsage.
    """
    require_admin(principal)
    at = now or datetime.now(UTC)

    check_name("operation", operation)
    start = _effective_from(effective_from, at, allow_retroactive)
    text = _reason(reason)
    kw = {"low": ZERO, "high": MAX_FIXED_PRICE}
    amount = _decimal(price, "price per call", **kw)
    cost = _decimal(provider_cost, "provider cost per call", **kw)
    for value, what in ((amount, "price"), (cost, "provider cost")):
        if value != round_nano(value):
            raise InvalidUsage(f"the {what} {value} is finer than a nano-USD")
    previous = load_price_book(engine).operation_row(operation, start)
    actor = actor_of(principal)

    def work(conn: Connection) -> int:
        row_id = conn.execute(
            insert(operation_prices)
            .values(
                operation=operation,
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
            target=operation,
            before=None
            if previous is None
            else {"price": previous.price, "provider_cost": previous.provider_cost},
            after={
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


# ---------------------------------------------------------------- reprice preview


@dataclass(frozen=True, slots=True)
class RepriceRow:
    """One model over the window: what its pay-as-you-go events were charged and
    what they would have been charged under the proposed price. USD."""

    provider: str
    model: str
    requests: int
    current: Decimal
    proposed: Decimal

    @property
    def delta(self) -> Decimal:
        return self.proposed - self.current


@dataclass(frozen=True, slots=True)
class RepricePreview:
    since: datetime
    until: datetime
    rows: tuple[RepriceRow, ...]

    @property
    def current(self) -> Decimal:
        return sum((r.current for r in self.rows), ZERO)

    @property
    def proposed(self) -> Decimal:
        return sum((r.proposed for r in self.rows), ZERO)

    @property
    def delta(self) -> Decimal:
        return self.proposed - self.current


def reprice_preview(
    engine: Engine,
    principal: Principal,
    changes: Sequence[PriceChange],
    *,
    days: int = 30,
    now: datetime | None = None,
) -> RepricePreview:
    """What the pay-as-you-go usage of the last `days` days would have cost under the
    proposed prices, per model and in total, next to what it was charged.

    Exact: every event of the edited models in the window is re-priced as
    `record_usage` would price it (`costing.price_frame`, which equals
    `PriceBook.quote` per event, rounded per event), with the proposed row in effect
    over the whole window. Rollups cannot give this exactly because prices are rounded
    per event, so only the edited models' events are read. Events charged by a plan
    (included / overage), a fixed operation price, or not priced are unaffected and
    left out.
    Raises: PermissionDenied, InvalidUsage.
    """
    require_admin(principal)
    if not 1 <= int(days) <= 366:
        raise InvalidUsage(f"the preview window must be 1-366 days, got {days}")
    until = now or datetime.now(UTC)
    since = until - timedelta(days=int(days))
    book = load_price_book(engine)
    models = dict(book.models)
    for change in changes:
        models[(change.provider, change.model)] = [
            ModelPriceRow(-1, EARLIEST, change.markup, change.override)
        ]
    proposed_book = PriceBook(book.default_markup, models, book.operations)
    frame = _window_events(engine, changes, since, until)
    rows = []
    if len(frame):
        frame["proposed"] = price_frame(frame, proposed_book)["price"].to_numpy()
        for (provider, model), group in frame.groupby(["provider", "model"], sort=True):
            rows.append(
                RepriceRow(
                    str(provider),
                    str(model),
                    len(group),
                    nanos_to_usd(sum(int(v) for v in group["price"])),
                    nanos_to_usd(sum(int(v) for v in group["proposed"])),
                )
            )
    seen = {(r.provider, r.model) for r in rows}
    rows += [
        RepriceRow(c.provider, c.model, 0, ZERO, ZERO)
        for c in changes
        if (c.provider, c.model) not in seen
    ]
    return RepricePreview(since, until, tuple(rows))


def _window_events(
    engine: Engine, changes: Sequence[PriceChange], since: datetime, until: datetime
) -> pd.DataFrame:
    e = usage_events.c
    columns = [
        "provider",
        "model",
        "operation",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "created_at",
        "price",
    ]
    if not changes:
        return pd.DataFrame(columns=columns)
    query = select(
        e.provider,
        e.model,
        e.operation,
        e.input_tokens,
        e.output_tokens,
        e.cached_tokens,
        e.created_at,
        type_coerce(e.price, BigInteger).label("price"),  # nano-USD integers
    ).where(
        e.created_at >= since,
        e.created_at < until,
        e.status == "priced",
        e.charge_basis == "payg",
        or_(*(and_(e.provider == c.provider, e.model == c.model) for c in changes)),
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


# ---------------------------------------------------------------- history


@dataclass(frozen=True, slots=True)
class PriceHistoryRow:
    """One price change, newest first: what, from when, who, why."""

    created_at: datetime
    effective_from: datetime
    subject: str  # "provider/model" or "operation:<name>"
    change: str  # human summary, e.g. "markup 1.3; override $2.00 / $8.00 per MTok"
    actor: str | None
    reason: str | None


def price_history(
    engine: Engine, principal: Principal, *, limit: int = 200
) -> list[PriceHistoryRow]:
    """Every markup / override / fixed-price row, newest first. Raises: PermissionDenied."""
    require_admin(principal)
    m, o = model_prices.c, operation_prices.c
    n = max(1, min(int(limit), 5000))
    with engine.connect() as conn:
        models = conn.execute(
            select(model_prices).order_by(m.created_at.desc(), m.id.desc()).limit(n)
        ).all()
        ops = conn.execute(
            select(operation_prices).order_by(o.created_at.desc(), o.id.desc()).limit(n)
        ).all()
    rows = [
        PriceHistoryRow(
            r.created_at,
            r.effective_from,
            f"{r.provider}/{r.model}",
            f"markup {r.markup}"
            + (
                f"; override ${r.input_mtok} in / ${r.output_mtok} out per MTok"
                if r.input_mtok is not None
                else ""
            ),
            r.actor,
            r.reason,
        )
        for r in models
    ] + [
        PriceHistoryRow(
            r.created_at,
            r.effective_from,
            f"operation:{r.operation}",
            f"fixed ${r.price} per call (provider cost ${r.provider_cost})",
            r.actor,
            r.reason,
        )
        for r in ops
    ]
    return sorted(rows, key=lambda r: r.created_at, reverse=True)[:n]


@dataclass(frozen=True, slots=True)
class CatalogStaleness:
    """How fresh the prices are.

    `snapshot_prices_as_of`: the newest price change (start date) in the bundled
    genai-prices snapshot that is not in the future: the snapshot knows prices at least
    up to that day. `snapshot_file_date`: when the snapshot's data file was written
    (the package records no build date). `scheduled_changes`: dated price changes in
    the snapshot after today. `last_override_at`: the last operator price change.
    """

    catalog_version: str
    snapshot_prices_as_of: date | None
    snapshot_file_date: date | None
    scheduled_changes: int
    last_override_at: datetime | None


def catalog_staleness(
    engine: Engine, principal: Principal, *, now: datetime | None = None
) -> CatalogStaleness:
    """The genai-prices snapshot's dates and the last operator price change.

    Raises: PermissionDenied.
    """
    require_admin(principal)
    today = (now or datetime.now(UTC)).date()
    with engine.connect() as conn:
        last_model = conn.execute(select(func.max(model_prices.c.created_at))).scalar_one()
        last_op = conn.execute(select(func.max(operation_prices.c.created_at))).scalar_one()
    last = max((t for t in (last_model, last_op) if t is not None), default=None)
    dates = _snapshot_start_dates()
    past = [d for d in dates if d <= today]
    return CatalogStaleness(
        CATALOG_VERSION,
        max(past, default=None),
        _snapshot_file_date(),
        sum(1 for d in dates if d > today),
        last,
    )


def _snapshot_start_dates() -> list[date]:

    out: list[date] = []
    for provider in genai_prices.data_snapshot.get_snapshot().providers:
        for model in provider.models:
            for conditional in model.prices if isinstance(model.prices, list) else []:
                constraint = getattr(conditional, "constraint", None)
                if isinstance(constraint, StartDateConstraint):
                    day = constraint.start_date
                    out.append(day.date() if isinstance(day, datetime) else day)
    return out


def _snapshot_file_date() -> date | None:

    try:
        path = distribution("genai-prices").locate_file("genai_prices/data.py")
        return datetime.fromtimestamp(Path(str(path)).stat().st_mtime, UTC).date()
    except (PackageNotFoundError, OSError):
        return None
