"""The operator's price book, read-only: models in use with their list and effective
prices (per million tokens), fixed operation prices, the history of price changes,
and how old the genai-prices snapshot is. Writes are `admin.prices`'."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import genai_prices
from genai_prices.types import StartDateConstraint
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import model_prices, operation_prices, platform_daily
from pricing_core.adapters.schema_prices import models_in_use
from pricing_core.analytics import warehouse
from pricing_core.analytics.warehouse import EVER
from pricing_core.catalog.price_book import CATALOG_VERSION, get_price_book
from pricing_core.domain.costing import TokenRates
from pricing_core.domain.errors import UnknownModel
from pricing_core.domain.money import format_rate
from pricing_core.domain.principal import Principal, require_admin


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


def requests_by_model(
    conn: Connection, since: date, until: date | None = None
) -> dict[tuple[str, str], int]:
    """(provider, model) -> requests of the days [since, until] (None: to the latest),
    summed by the warehouse when one is configured, else from `platform_daily`."""
    wh = warehouse.configured()
    if wh is not None:
        sums = warehouse.window_sums(
            conn.engine, wh, table="platform_daily", keys=["provider", "model"],
            column="requests", windows={"recent": (since, until or EVER[1])},
        )  # fmt: skip
        rows: Any = sums[["provider", "model", "recent"]].itertuples(index=False, name=None)
    else:
        d = platform_daily.c
        # the window's rows only: the key leads with the day
        query = select(d.provider, d.model, func.sum(d.requests)).where(d.day >= since)
        if until is not None:
            query = query.where(d.day <= until)
        rows = conn.execute(query.group_by(d.provider, d.model))
    return {(provider, model): int(n or 0) for provider, model, n in rows}


_rankings: dict[tuple[str, date], dict[tuple[str, str], int]] = {}


def daily_ranking(engine: Engine, today: date) -> dict[tuple[str, str], int]:
    """`requests_by_model` over the 30 whole days before `today`, summed once a day per
    process: the order of the public price list, which shows no counts (at 10M
    events the 30 days' rollup rows took 6 ms of its 7 on PostgreSQL)."""
    key = (str(engine.url), today)
    ranking = _rankings.get(key)
    if ranking is None:
        with engine.connect() as conn:
            ranking = requests_by_model(conn, today - timedelta(days=30), today - timedelta(days=1))
        _rankings.clear()  # yesterday's are never asked again
        _rankings[key] = ranking
    return ranking


def _models_in_use(
    conn: Connection, requests: dict[tuple[str, str], int]
) -> dict[tuple[str, str], int]:
    """Every model in the rollups (`models_in_use`, kept by a trigger on
    `platform_daily`) or with an operator row -> its count in `requests` (0 if none)."""
    used: dict[tuple[str, str], int] = {}
    for query in (
        select(models_in_use.c.provider, models_in_use.c.model),
        select(model_prices.c.provider, model_prices.c.model),
    ):
        for provider, model in conn.execute(query):
            used[provider, model] = requests.get((provider, model), 0)
    return used


def price_book(
    engine: Engine, principal: Principal, *, now: datetime | None = None
) -> list[ModelPriceView]:
    """Every model in use (in the rollups) or with an operator row, busiest first.

    Raises: PermissionDenied. Sources: platform_daily, model_prices, genai-prices.
    """
    require_admin(principal)
    return model_views(engine, now or datetime.now(UTC))


def model_views(
    engine: Engine, at: datetime, *, requests: dict[tuple[str, str], int] | None = None
) -> list[ModelPriceView]:
    """`price_book` without the admin check, for the public price list
    (`analytics.public_prices`), which shows only the effective rates. Rates from the
    price book charges are priced by (`get_price_book`: cached, cleared on edits).
    `requests`: the counts to rank by (default: `requests_by_model` of the 30 days
    to `at`)."""
    book = get_price_book(engine)
    with engine.connect() as conn:
        if requests is None:
            requests = requests_by_model(conn, (at - timedelta(days=30)).date())
        used = _models_in_use(conn, requests)
    out = []
    for (provider, model), count in used.items():
        try:
            listed = book.listed(provider, model, at)  # a custom model's rates first
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
                count,
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


@dataclass(frozen=True, slots=True)
class OperationPriceView:
    operation: str
    price: Decimal  # USD per unit (per call for quantity 1)
    provider_cost: Decimal  # USD per unit
    effective_from: datetime
    actor: str | None
    scheduled: bool
    model: str = ""  # "" = every model of the operation without its own price


def operation_price_list(
    engine: Engine, principal: Principal, *, now: datetime | None = None
) -> list[OperationPriceView]:
    """Fixed prices per unit: the one in effect now per (operation, model) and any
    scheduled later, by operation then model ("" first). Raises: PermissionDenied."""
    require_admin(principal)
    at = now or datetime.now(UTC)
    o = operation_prices.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(operation_prices).order_by(o.operation, o.model, o.effective_from, o.id)
        ).all()
    current: dict[tuple[str, str], OperationPriceView] = {}
    later: list[OperationPriceView] = []
    for r in rows:
        view = OperationPriceView(
            r.operation, r.price, r.provider_cost, r.effective_from, r.actor,
            r.effective_from > at, r.model,
        )  # fmt: skip
        if view.scheduled:
            later.append(view)
        else:
            current[(r.operation, r.model)] = view
    return sorted(
        [*current.values(), *later], key=lambda v: (v.operation, v.model, v.effective_from)
    )


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
                f"; override {format_rate(r.input_mtok, 'MTok')} in"
                f" / {format_rate(r.output_mtok, 'MTok')} out"
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
            f"operation:{r.operation}" + (f" ({r.model})" if r.model else ""),
            f"fixed {format_rate(r.price, 'unit')} (provider cost"
            f" {format_rate(r.provider_cost, 'unit')})",
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
