"""Admin revenue and margin: what came in, what was earned, what it cost.

Definitions (all Decimal USD, exact):
- **cash in**: money received from customers, net of refunds: credit pack sales at
  the price paid, refunds and disputes, plan fees per billing cycle; dated when
  received, in the configured time zone (see `analytics.sales` for the exact rules).
- **usage revenue recognised**: what was charged to wallets for usage, dated by the
  usage event's day (the day of the rollups: `platform_daily`, `account_daily`, both
  `usage_daily` regrouped). Each priced event's charge equals its `usage` ledger
  entry (an invariant `verify_ledger` checks), so per-day usage revenue equals the
  sum of the ledger's usage entries for that day's events.
- **provider cost**: what the providers charge the operator (the same rollups).
- **margin**: usage revenue - provider cost; `margin_pct` = margin / usage revenue x
  100, rounded half-even to 0.01 (None when there is no revenue).
- **outstanding liability**: the sum of positive wallet balances: prepaid money not
  used yet.

Every function checks the admin role and reads rollups and the ledger, never
`usage_events` (with `PRICING_ANALYTICS_URL`, ClickHouse sums the usage figures, and
only the events past its watermark are read here, by id: `analytics.warehouse`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, func, select

from pricing_core.adapters.schema import account_daily, accounts, platform_daily, wallets
from pricing_core.analytics import warehouse
from pricing_core.analytics.account_ranges import account_totals
from pricing_core.analytics.sales import cash_by_day
from pricing_core.domain.money import ZERO
from pricing_core.domain.periods import Granularity, check_range, period_start, period_starts
from pricing_core.domain.principal import Principal, require_admin

PCT = Decimal("0.01")


class Dimension(StrEnum):
    """What a breakdown groups usage by."""

    MODEL = "model"
    PROVIDER = "provider"
    OPERATION = "operation"
    ACCOUNT = "account"


@dataclass(frozen=True, slots=True)
class PeriodFigures:
    """Revenue figures of one period (or of a whole range: `period` None). USD."""

    period: date | None
    cash_in: Decimal
    usage_revenue: Decimal
    provider_cost: Decimal
    requests: int

    @property
    def margin(self) -> Decimal:
        return self.usage_revenue - self.provider_cost

    @property
    def margin_pct(self) -> Decimal | None:
        return margin_pct(self.usage_revenue, self.provider_cost)


@dataclass(frozen=True, slots=True)
class RevenueReport:
    """The Revenue page's headline figures over [start, end] (local days, inclusive)."""

    start: date
    end: date
    granularity: Granularity
    periods: tuple[PeriodFigures, ...]
    totals: PeriodFigures
    outstanding_liability: Decimal


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    """Usage revenue and cost of one model / provider / operation / account. USD."""

    key: str
    label: str
    requests: int
    input_tokens: int
    output_tokens: int
    usage_revenue: Decimal
    provider_cost: Decimal

    @property
    def margin(self) -> Decimal:
        return self.usage_revenue - self.provider_cost

    @property
    def margin_pct(self) -> Decimal | None:
        return margin_pct(self.usage_revenue, self.provider_cost)


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One period of one key (a stacked chart's bar segment). USD."""

    period: date
    key: str
    usage_revenue: Decimal
    provider_cost: Decimal


@dataclass(frozen=True, slots=True)
class Liability:
    """Prepaid money held for customers (positive balances) and credit owed by
    customers (negative balances, e.g. after a refund or an overdraft import). USD."""

    outstanding: Decimal
    owed_by_customers: Decimal
    accounts_in_credit: int
    accounts_owing: int


def margin_pct(revenue: Decimal, cost: Decimal) -> Decimal | None:
    """(revenue - cost) / revenue x 100, half-even to 0.01; None if revenue is 0."""
    if revenue == 0:
        return None
    return ((revenue - cost) * 100 / revenue).quantize(PCT, rounding=ROUND_HALF_EVEN)


def revenue_report(
    engine: Engine,
    principal: Principal,
    *,
    start: date,
    end: date,
    granularity: Granularity = Granularity.DAY,
) -> RevenueReport:
    """Cash in, usage revenue, provider cost and margin per period over [start, end].

    Every period touching the range is listed (zeros included), named by its first
    day; only days inside the range are counted.
    Returns: RevenueReport (Decimal USD). Raises: PermissionDenied, InvalidUsage.
    Sources: ledger_entries (cash), platform_daily (usage revenue, cost), wallets.
    """
    require_admin(principal)
    granularity = Granularity(granularity)
    starts = period_starts(start, end, granularity)
    cash = cash_by_day(engine, start, end)
    usage = _usage_by_day(engine, start, end)
    sums: dict[date, list[Any]] = {p: [ZERO, ZERO, ZERO, 0] for p in starts}
    for day, amount in cash.items():
        sums[period_start(day, granularity)][0] += amount
    for day, (revenue, cost, requests) in usage.items():
        row = sums[period_start(day, granularity)]
        row[1] += revenue
        row[2] += cost
        row[3] += requests
    periods = tuple(PeriodFigures(p, *sums[p]) for p in starts)
    totals = PeriodFigures(
        None,
        sum((p.cash_in for p in periods), ZERO),
        sum((p.usage_revenue for p in periods), ZERO),
        sum((p.provider_cost for p in periods), ZERO),
        sum(p.requests for p in periods),
    )
    return RevenueReport(
        start, end, granularity, periods, totals, liability(engine, principal).outstanding
    )


def _usage_by_day(
    engine: Engine, start: date, end: date
) -> dict[date, tuple[Decimal, Decimal, int]]:
    rows = _sums(engine, None, start, end, per_day=True)
    return {day: (price, cost, requests) for day, requests, _, _, price, cost in rows}


_KEY_COLUMNS = {
    Dimension.MODEL: (platform_daily.c.provider, platform_daily.c.model),
    Dimension.PROVIDER: (platform_daily.c.provider,),
    Dimension.OPERATION: (platform_daily.c.operation,),
    Dimension.ACCOUNT: (account_daily.c.account_id,),
}


def _rollup_of(by: Dimension) -> Any:
    """The smallest rollup that has the dimension: accounts are in `account_daily`,
    the rest in `platform_daily` (a few rows per day, stripes summed by the query)."""
    return account_daily if by is Dimension.ACCOUNT else platform_daily


def _key(values: tuple[Any, ...]) -> str:
    return "/".join(str(v) for v in values)


def _sums(
    engine: Engine, by: Dimension | None, start: date, end: date, *, per_day: bool
) -> list[tuple[Any, ...]]:
    """Rollup sums over [start, end] by the dimension's keys (none for `by` None) and,
    when `per_day`, the day: rows ([day], *keys, requests, input_tokens,
    output_tokens, price, provider_cost), money Decimal USD. From ClickHouse when
    `PRICING_ANALYTICS_URL` is set (`analytics.warehouse`), else from the rollups."""
    table = _rollup_of(by or Dimension.MODEL)
    keys = _KEY_COLUMNS[by] if by else ()
    wh = warehouse.configured()
    if wh is not None:
        return warehouse.rollup_sums(
            engine, wh, table=table.name, keys=[k.name for k in keys],
            start=start, end=end, per_day=per_day,
        )  # fmt: skip
    d = table.c
    group = [d.day, *keys] if per_day else list(keys)
    query = select(
        *group,
        *(func.sum(d[s]) for s in ("requests", "input_tokens", "output_tokens")),
        func.sum(d.price),
        func.sum(d.provider_cost),
    ).where(d.day >= start, d.day <= end)
    with engine.connect() as conn:
        rows = conn.execute(query.group_by(*group)).all()
    n = len(group)
    return [
        (*r[:n], *(int(v or 0) for v in r[n : n + 3]), r[n + 3] or ZERO, r[n + 4] or ZERO)
        for r in rows
    ]


def revenue_breakdown(
    engine: Engine, principal: Principal, *, start: date, end: date, by: Dimension
) -> list[BreakdownRow]:
    """Usage revenue, provider cost and tokens per model ("provider/model"),
    provider, operation or account over [start, end], by revenue, largest first.

    Raises: PermissionDenied, InvalidUsage. Source: platform_daily (account_daily by account).
    """
    require_admin(principal)
    check_range(start, end)
    by = Dimension(by)
    rows = _sums(engine, by, start, end, per_day=False)
    if by is Dimension.ACCOUNT:
        with engine.connect() as conn:
            names = _account_names(conn)
    else:
        names = {}
    n = len(_KEY_COLUMNS[by])
    out = [BreakdownRow(_key(r[:n]), names.get(r[0], _key(r[:n])), *r[n:]) for r in rows]
    return sorted(out, key=lambda row: (-row.usage_revenue, row.key))


def _account_names(conn: Any) -> dict[str, str]:
    return dict(conn.execute(select(accounts.c.id, accounts.c.name)).all())


def revenue_series(
    engine: Engine,
    principal: Principal,
    *,
    start: date,
    end: date,
    granularity: Granularity,
    by: Dimension,
) -> list[SeriesPoint]:
    """Usage revenue and provider cost per period and per key (for stacked charts),
    ordered by period then key. Raises: PermissionDenied, InvalidUsage.
    Source: platform_daily (account_daily by account).
    """
    require_admin(principal)
    granularity = Granularity(granularity)
    check_range(start, end)
    by = Dimension(by)
    n = len(_KEY_COLUMNS[by])
    acc: dict[tuple[date, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for r in _sums(engine, by, start, end, per_day=True):
        slot = acc[(period_start(r[0], granularity), _key(r[1 : n + 1]))]
        slot[0] += r[n + 4]
        slot[1] += r[n + 5]
    return [SeriesPoint(p, k, v[0], v[1]) for (p, k), v in sorted(acc.items())]


def liability(engine: Engine, principal: Principal) -> Liability:
    """Outstanding prepaid liability (sum of positive balances) and the credit owed by
    customers (sum of negative balances, as a positive number). USD.

    Raises: PermissionDenied. Source: wallets.
    """
    require_admin(principal)
    w = wallets.c
    with engine.connect() as conn:
        positive, n_pos = conn.execute(
            select(func.sum(w.balance), func.count()).where(w.balance > 0)
        ).one()
        negative, n_neg = conn.execute(
            select(func.sum(w.balance), func.count()).where(w.balance < 0)
        ).one()
    return Liability(positive or ZERO, -(negative or ZERO), int(n_pos), int(n_neg))


@dataclass(frozen=True, slots=True)
class TopAccount:
    account_id: str
    name: str
    spend: Decimal
    provider_cost: Decimal
    requests: int
    balance: Decimal


def top_accounts(
    engine: Engine, principal: Principal, *, start: date, end: date, limit: int = 10
) -> list[TopAccount]:
    """The accounts that spent most over [start, end], with their current balance.

    Raises: PermissionDenied, InvalidUsage. Sources: account_monthly and account_daily
    (`account_ranges`), accounts, wallets.
    """
    require_admin(principal)
    check_range(start, end)
    limit = max(1, min(int(limit), 1000))
    wh = warehouse.configured()
    if wh is not None:
        top = warehouse.top_spenders(engine, wh, start=start, end=end, limit=limit)
        known = warehouse.names_and_balances(engine, [r[0] for r in top])
        return [
            TopAccount(a, known[a][0], price, cost, requests, known[a][1])
            for a, requests, _, _, price, cost in top
            if a in known
        ]
    totals = account_totals(start, end, sums=("price", "provider_cost", "requests"))
    # rank in the rollups first, then join the few winners to their names and balances
    ranked = (
        select(
            totals.c.account_id,
            totals.c.price.label("spend"),
            totals.c.provider_cost.label("cost"),
            totals.c.requests,
        )
        .order_by(totals.c.price.desc(), totals.c.account_id)
        .limit(limit)
        .subquery()
    )
    query = (
        select(
            ranked.c.account_id,
            accounts.c.name,
            ranked.c.spend,
            ranked.c.cost,
            ranked.c.requests,
            wallets.c.balance,
        )
        .join(accounts, accounts.c.id == ranked.c.account_id)
        .join(wallets, wallets.c.account_id == ranked.c.account_id)
        .order_by(ranked.c.spend.desc(), ranked.c.account_id)
    )
    with engine.connect() as conn:
        return [
            TopAccount(a, name, s or ZERO, c or ZERO, int(n or 0), bal)
            for a, name, s, c, n, bal in conn.execute(query)
        ]


def usage_span(engine: Engine, principal: Principal) -> tuple[date, date] | None:
    """(first, last) day with usage in the rollups, or None (pages default their
    date range to end on the last day with usage). Raises: PermissionDenied."""
    require_admin(principal)
    wh = warehouse.configured()
    if wh is not None:
        return warehouse.day_span(engine, wh)
    d = platform_daily.c
    with engine.connect() as conn:
        first, last = conn.execute(select(func.min(d.day), func.max(d.day))).one()
    return None if first is None else (first, last)
