"""Admin usage explorer: who is spending fast, whose spend jumped, what is unpriced.

All figures come from the account-day rollup (`account_daily`; ClickHouse's copy of it
with `PRICING_ANALYTICS_URL`, see `analytics.warehouse`), except the unpriced-usage
queue, which lists the `usage_events` with `status = 'unpriced'` (a partial index
keeps that cheap: it only holds the queue).

Anomaly rule (`spend_anomalies`): an account's spend rate jumped when, over the
`recent_days` days ending on `as_of` (inclusive; today counts as far as it has
gone), it spent at least `min_spend` USD and its daily rate is at least `factor`
times its own daily rate over the `baseline_days` days before that. An account with
no spend in the baseline but at least `min_spend` recently is reported as new
spend (ratio None). Defaults: 1 recent day, 14 baseline days, factor 3, $1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from sqlalchemy import Engine, func, literal, select

from pricing_core.adapters.schema import account_daily, accounts, usage_events, wallets
from pricing_core.adapters.types import NanoUSD
from pricing_core.adapters.warehouse import Warehouse
from pricing_core.analytics import warehouse
from pricing_core.config import get_settings
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.forecast import project_month_end
from pricing_core.domain.money import ZERO, nanos_to_usd, round_nano, usd_to_nanos
from pricing_core.domain.periods import Granularity, next_period
from pricing_core.domain.principal import Principal, require_admin

RATIO = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class HighCostAccount:
    """An account's spend on `as_of` and this month, with the month-end projection
    (linear run rate, `forecast.project_month_end`). USD."""

    account_id: str
    name: str
    spend_today: Decimal
    month_to_date: Decimal
    projected_month_end: Decimal
    balance: Decimal


@dataclass(frozen=True, slots=True)
class SpendAnomaly:
    """An account whose daily spend rate jumped against its own baseline. USD."""

    account_id: str
    name: str
    recent_spend: Decimal
    recent_daily: Decimal
    baseline_daily: Decimal
    ratio: Decimal | None  # recent / baseline daily rate, 2 places; None: no baseline


def _moment(as_of: date | None, now: datetime | None) -> tuple[date, datetime]:
    """(local day, moment): the moment is now, or the end of `as_of` if it is past."""
    tz = get_settings().tz
    real = now or datetime.now(UTC)
    if as_of is None:
        return real.astimezone(tz).date(), real
    end_of_day = datetime.combine(as_of + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
    return as_of, min(real, end_of_day)


def high_cost_accounts(
    engine: Engine,
    principal: Principal,
    *,
    as_of: date | None = None,
    limit: int = 10,
    min_spend: Decimal | None = None,
    now: datetime | None = None,
) -> list[HighCostAccount]:
    """The accounts that spent at least `min_spend` USD on `as_of` (default today,
    configured zone; default `PRICING_HIGH_COST_USD`, $5), most first, with their
    month-to-date spend and projected month-end spend. Raises: PermissionDenied.
    Source: account_daily.
    """
    require_admin(principal)
    tz = get_settings().tz
    floor = get_settings().high_cost_usd if min_spend is None else min_spend
    day, moment = _moment(as_of, now)
    month_first = day.replace(day=1)
    month_start = datetime.combine(month_first, time(), tzinfo=tz)
    month_end = datetime.combine(next_period(month_first, Granularity.MONTH), time(), tzinfo=tz)
    limit = max(1, min(int(limit), 500))
    wh = warehouse.configured()
    rows = (
        _high_cost_of(engine, wh, day, month_first, floor, limit)
        if wh is not None
        else _high_cost_rows(engine, day, month_first, floor, limit)
    )
    return [
        HighCostAccount(
            a,
            name,
            _usd(spent_today),
            _usd(mtd),
            round_nano(
                project_month_end(
                    _usd(mtd), month_start=month_start, month_end=month_end, now=moment
                )
            ),
            balance,
        )
        for a, name, spent_today, mtd, balance in rows
    ]


def _high_cost_of(
    engine: Engine, wh: Warehouse, day: date, month_first: date, floor: Decimal, limit: int
) -> list[tuple[str, str, Decimal, Decimal, Decimal]]:
    """`_high_cost_rows` summed by the warehouse."""
    sums = warehouse.window_sums(
        engine, wh, table="account_daily", keys=["account_id"], column="price",
        windows={"today": (day, day), "mtd": (month_first, day)},
    )  # fmt: skip
    hot = sums[(sums["today"] > 0) & (sums["today"] >= usd_to_nanos(round_nano(floor)))]
    hot = hot.sort_values(["today", "account_id"], ascending=[False, True]).head(limit)
    known = warehouse.names_and_balances(engine, list(hot["account_id"]))
    return [
        (a, known[a][0], nanos_to_usd(t), nanos_to_usd(m), known[a][1])
        for a, t, m in hot[["account_id", "today", "mtd"]].itertuples(index=False, name=None)
        if a in known
    ]


def _high_cost_rows(
    engine: Engine, day: date, month_first: date, floor: Decimal, limit: int
) -> list[tuple[str, str, Decimal, Decimal, Decimal]]:
    """(account, name, spent on `day`, month to date, balance) of the top spenders of
    `day` at or over `floor` USD, from the rollup."""
    d = account_daily.c
    # rank the day's rows first (one per account), then sum the month to date of the
    # few winners only, and join them to their names and balances
    ranked = (
        select(d.account_id, d.price.label("today"))
        .where(d.day == day, d.price > 0, d.price >= literal(floor, NanoUSD))
        .order_by(d.price.desc(), d.account_id)
        .limit(limit)
        .subquery()
    )
    mtd = (
        select(d.account_id, func.sum(d.price).label("mtd"))
        .where(d.account_id.in_(select(ranked.c.account_id)), d.day >= month_first, d.day <= day)
        .group_by(d.account_id)
        .subquery()
    )
    query = (
        select(ranked.c.account_id, accounts.c.name, ranked.c.today, mtd.c.mtd, wallets.c.balance)
        .join(mtd, mtd.c.account_id == ranked.c.account_id)
        .join(accounts, accounts.c.id == ranked.c.account_id)
        .join(wallets, wallets.c.account_id == ranked.c.account_id)
        .order_by(ranked.c.today.desc(), ranked.c.account_id)
    )
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]  # type: ignore[misc]


def _usd(value: Decimal | None) -> Decimal:
    return ZERO if value is None else value


def spend_anomalies(
    engine: Engine,
    principal: Principal,
    *,
    as_of: date | None = None,
    recent_days: int = 1,
    baseline_days: int = 14,
    factor: Decimal = Decimal(3),
    min_spend: Decimal = Decimal(1),
    now: datetime | None = None,
) -> list[SpendAnomaly]:
    """Accounts whose spend rate jumped against their own baseline (see the module
    docstring for the rule), largest jump first, new spenders first.

    Raises: PermissionDenied, InvalidUsage (bad window or factor). Source: account_daily.
    """
    require_admin(principal)
    if not (1 <= recent_days <= 31 and 1 <= baseline_days <= 366):
        raise InvalidUsage(
            f"windows must be 1-31 recent and 1-366 baseline days: {recent_days}/{baseline_days}"
        )
    if factor <= 1 or min_spend < 0:
        raise InvalidUsage(f"factor must be above 1 and min_spend >= 0, got {factor} / {min_spend}")
    day, _ = _moment(as_of, now)
    recent_first = day - timedelta(days=recent_days - 1)
    baseline_first = recent_first - timedelta(days=baseline_days)
    wh = warehouse.configured()
    rows: list[tuple[str, str, Decimal | None, Decimal | None]]
    if wh is not None:
        sums = warehouse.window_sums(
            engine, wh, table="account_daily", keys=["account_id"], column="price",
            windows={"recent": (recent_first, day),
                     "baseline": (baseline_first, recent_first - timedelta(days=1))},
        )  # fmt: skip
        sums = sums[sums["recent"] >= max(usd_to_nanos(round_nano(min_spend)), 1)]
        known = warehouse.names_and_balances(engine, list(sums["account_id"]))
        rows = [
            (a, known[a][0], nanos_to_usd(r), nanos_to_usd(b))
            for a, r, b in sums[["account_id", "recent", "baseline"]].itertuples(index=False)
            if a in known
        ]
    else:
        rows = _anomaly_rows(engine, day, recent_first, baseline_first, min_spend)
    out = []
    for account_id, name, recent_raw, baseline_raw in rows:
        spent, before = _usd(recent_raw), _usd(baseline_raw)
        if spent < min_spend or spent == 0:
            continue
        recent_daily = spent / recent_days
        baseline_daily = before / baseline_days
        if baseline_daily == 0:
            ratio = None
        else:
            ratio = (recent_daily / baseline_daily).quantize(RATIO, rounding=ROUND_HALF_EVEN)
            if recent_daily < factor * baseline_daily:
                continue
        out.append(
            SpendAnomaly(
                account_id, name, spent, round_nano(recent_daily), round_nano(baseline_daily), ratio
            )
        )
    return sorted(out, key=lambda a: (a.ratio is not None, -(a.ratio or 0), -a.recent_spend))


def _anomaly_rows(
    engine: Engine, day: date, recent_first: date, baseline_first: date, min_spend: Decimal
) -> list[tuple[str, str, Decimal | None, Decimal | None]]:
    """(account, name, spend in [recent_first, day], spend in [baseline_first,
    recent_first)) of every account that spent at least `min_spend` (rounded down to
    the nano, so the caller's exact test decides) in the recent days, from the rollup."""
    d = account_daily.c
    recent = func.sum(d.price).label("recent")
    floor = min_spend.quantize(Decimal("1e-9"), rounding=ROUND_FLOOR)
    # the recent spenders first (the recent days' rows of the day index, filtered in
    # the database), then the baseline of those few only (their primary-key ranges)
    spenders = (
        select(d.account_id, recent)
        .where(d.day >= recent_first, d.day <= day)
        .group_by(d.account_id)
        .having(recent > 0, recent >= literal(floor, NanoUSD))
        .subquery()
    )
    b = account_daily.alias("b")
    baseline = (
        select(func.coalesce(func.sum(b.c.price), 0))
        .where(
            b.c.account_id == spenders.c.account_id,
            b.c.day >= baseline_first,
            b.c.day < recent_first,
        )
        .scalar_subquery()
    )
    with engine.connect() as conn:
        rows = conn.execute(
            select(spenders.c.account_id, accounts.c.name, spenders.c.recent, baseline).join(
                accounts, accounts.c.id == spenders.c.account_id
            )
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class UnpricedGroup:
    """Unpriced events of one provider/model/operation, waiting for a price."""

    provider: str
    model: str
    operation: str
    events: int
    accounts: int
    input_tokens: int
    output_tokens: int
    first_at: datetime
    last_at: datetime


def unpriced_queue(engine: Engine, principal: Principal) -> list[UnpricedGroup]:
    """The unpriced-usage queue (events recorded with no known price, under the
    `unpriced_policy=queue` setting), grouped by provider, model and operation, most
    events first. Raises: PermissionDenied. Source: usage_events (status 'unpriced').
    """
    require_admin(principal)
    e = usage_events.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                e.provider,
                e.model,
                e.operation,
                func.count(),
                func.count(func.distinct(e.account_id)),
                func.sum(e.input_tokens),
                func.sum(e.output_tokens),
                func.min(e.created_at),
                func.max(e.created_at),
            )
            .where(e.status == "unpriced")
            .group_by(e.provider, e.model, e.operation)
        ).all()
    groups = [
        UnpricedGroup(p, m, o, int(n), int(a), int(i or 0), int(out or 0), first, last)
        for p, m, o, n, a, i, out, first, last in rows
    ]
    return sorted(groups, key=lambda g: (-g.events, g.provider, g.model, g.operation))
