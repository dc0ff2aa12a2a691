"""The Usage page's data: daily rollups of a date range and pure aggregations of them
(series, shares, models), plus the CSV of the range's usage events."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, Engine, String, func, select, type_coerce

from pricing_core.adapters.schema import usage_daily, usage_events
from pricing_core.analytics.common import (
    _local_times,
    _target,
    day_bounds,
    nanos_str,
    shown,
)
from pricing_core.config import get_settings
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.money import ZERO, format_tokens, nanos_to_usd, round_nano
from pricing_core.domain.periods import Granularity, period_start
from pricing_core.domain.principal import Principal


class Dimension(StrEnum):
    MODEL = "model"
    OPERATION = "operation"


class Measure(StrEnum):
    COST = "cost"  # Decimal USD charged
    TOKENS = "tokens"  # input + output tokens


@dataclass(frozen=True, slots=True)
class UsageReport:
    """The daily rollups of one account over a date range (both ends included).

    `daily` columns: day (date), provider, model, operation (str), requests,
    input_tokens, output_tokens, cached_tokens (int), cost (Decimal USD); one row per
    (day, provider, model, operation), users summed.
    """

    account_id: str
    start: date
    end: date
    daily: pd.DataFrame

    @property
    def empty(self) -> bool:
        return self.daily.empty


DAILY_COLUMNS = [
    "day",
    "provider",
    "model",
    "operation",
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost",
]


def usage_range(
    engine: Engine, viewer: Principal, *, account_id: str | None = None
) -> tuple[date, date] | None:
    """(first, last) day with usage for the account, or None without usage."""
    target = _target(viewer, account_id)
    d = usage_daily.c
    with engine.connect() as conn:
        first, last = conn.execute(
            select(func.min(d.day), func.max(d.day)).where(d.account_id == target)
        ).one()
    return None if first is None else (first, last)


def usage_report(
    engine: Engine,
    viewer: Principal,
    *,
    start: date,
    end: date,
    account_id: str | None = None,
) -> UsageReport:
    """The account's daily rollups between two calendar days (both included).

    Raises: InvalidUsage if `start` is after `end`; PermissionDenied.
    """
    target = _target(viewer, account_id)
    if start > end:
        raise InvalidUsage(f"the date range starts ({start}) after it ends ({end})")
    d = usage_daily.c
    # the rows of the key's range as stored, users summed here: grouping in the
    # database sorted them first (SQLite at 10M events: 4 ms against 1.6 ms)
    query = select(
        d.day,
        d.provider,
        d.model,
        d.operation,
        d.requests,
        d.input_tokens,
        d.output_tokens,
        d.cached_tokens,
        type_coerce(d.price, BigInteger),
    ).where(d.account_id == target, d.day >= start, d.day <= end)
    with engine.connect() as conn:
        stored = conn.execute(query).all()  # one fetch: row by row cost a third more
    summed: dict[tuple[date, str, str, str], list[int]] = {}
    for row in stored:
        key, sums = tuple(row[:4]), row[4:]
        into = summed.get(key)
        if into is None:
            summed[key] = list(sums)
        else:
            for k, v in enumerate(sums):
                into[k] += v
    keys = sorted(summed)
    values = [summed[k] for k in keys]
    columns: dict[str, Any] = {n: [k[i] for k in keys] for i, n in enumerate(DAILY_COLUMNS[:4])}
    for i, name in enumerate(DAILY_COLUMNS[4:8]):
        columns[name] = np.array([v[i] for v in values], dtype=np.int64)
    columns["cost"] = [nanos_to_usd(v[4]) for v in values]
    return UsageReport(target, start, end, pd.DataFrame(columns))  # in DAILY_COLUMNS order


def filter_report(
    report: UsageReport,
    *,
    models: Sequence[str] | None = None,
    operations: Sequence[str] | None = None,
) -> UsageReport:
    """The report restricted to some models and/or operations (None/empty = all). Pure."""
    daily = report.daily
    if models:
        daily = daily[daily["model"].isin(list(models))]
    if operations:
        daily = daily[daily["operation"].isin(list(operations))]
    return UsageReport(report.account_id, report.start, report.end, daily.reset_index(drop=True))


def _values(report: UsageReport, measure: Measure) -> list:
    daily = report.daily
    if measure is Measure.TOKENS:
        return [
            int(i) + int(o)
            for i, o in zip(daily["input_tokens"], daily["output_tokens"], strict=True)
        ]
    return list(daily["cost"])


def _zero(measure: Measure) -> Decimal | int:
    return ZERO if measure is Measure.COST else 0


# The rollup frames are small (days x models x operations), so the aggregations below
# are plain dictionaries: an order of magnitude faster than pandas' groupby here.


def usage_series(
    report: UsageReport,
    *,
    granularity: Granularity = Granularity.DAY,
    by: Dimension = Dimension.MODEL,
    measure: Measure = Measure.COST,
) -> pd.DataFrame:
    """Cost (Decimal USD) or tokens (int) per period and model/operation, for a
    stacked chart. Pure (works on the report).

    Returns: DataFrame with columns period (date, the period's first day), key (str),
        value; sorted by period then key. Empty when the report is.
    """
    granularity, by, measure = Granularity(granularity), Dimension(by), Measure(measure)
    totals: dict[tuple[date, str], Decimal | int] = {}
    for day, key, value in zip(
        report.daily["day"], report.daily[str(by)], _values(report, measure), strict=True
    ):
        slot = (period_start(day, granularity), key)
        totals[slot] = totals.get(slot, _zero(measure)) + value
    rows = [(period, key, value) for (period, key), value in sorted(totals.items())]
    return pd.DataFrame(rows, columns=["period", "key", "value"])


def value_labels(values: Sequence[Decimal | int], measure: Measure) -> list[str]:
    """Display text for `usage_series` / `usage_share` values: cost in the display
    unit (USD with sub-cent digits kept, $0.00042, or credits), thousands separators
    for tokens."""
    if Measure(measure) is Measure.TOKENS:
        return [format_tokens(int(v)) for v in values]
    return [shown(Decimal(v)) for v in values]


def usage_share(
    report: UsageReport, *, by: Dimension = Dimension.MODEL, measure: Measure = Measure.COST
) -> pd.DataFrame:
    """Each model's (or operation's) share of the total. Pure.

    Returns: DataFrame with key, value (Decimal USD or int tokens) and percent
        (Decimal, 1 decimal place), largest first.
    """
    by, measure = Dimension(by), Measure(measure)
    totals: dict[str, Decimal | int] = {}
    for key, value in zip(report.daily[str(by)], _values(report, measure), strict=True):
        totals[key] = totals.get(key, _zero(measure)) + value
    total = sum(totals.values(), _zero(measure))
    rows = [
        (key, value, (Decimal(value) * 100 / total).quantize(Decimal("0.1")) if total else ZERO)
        for key, value in sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    ]
    return pd.DataFrame(rows, columns=["key", "value", "percent"])


MODEL_TABLE_COLUMNS = [
    "provider",
    "model",
    "requests",
    "input_tokens",
    "output_tokens",
    "cost",
    "avg_cost",
]


def model_table(report: UsageReport) -> pd.DataFrame:
    """Per model: requests, input and output tokens, cost and average cost per
    request (Decimal USD, half-even to the nano-USD), most expensive first. Pure.
    """
    daily = report.daily
    sums: dict[tuple[str, str], list] = {}
    for provider, model, requests, input_tokens, output_tokens, cost in zip(
        daily["provider"],
        daily["model"],
        daily["requests"],
        daily["input_tokens"],
        daily["output_tokens"],
        daily["cost"],
        strict=True,
    ):
        row = sums.setdefault((provider, model), [0, 0, 0, ZERO])
        row[0] += int(requests)
        row[1] += int(input_tokens)
        row[2] += int(output_tokens)
        row[3] += cost
    rows = [
        (provider, model, n, i, o, cost, round_nano(cost / n) if n else ZERO)
        for (provider, model), (n, i, o, cost) in sums.items()
    ]
    rows.sort(key=lambda r: (-r[5], r[1], r[0]))
    return pd.DataFrame(rows, columns=MODEL_TABLE_COLUMNS)


def report_totals(report: UsageReport) -> tuple[int, int, Decimal]:
    """(requests, tokens, cost) over the whole report."""
    daily = report.daily
    if daily.empty:
        return 0, 0, ZERO
    tokens = int(daily["input_tokens"].sum()) + int(daily["output_tokens"].sum())
    return int(daily["requests"].sum()), tokens, sum(daily["cost"], ZERO)


EXPORT_COLUMNS = [
    "request_id",
    "created_at",
    "user_id",
    "chat_id",
    "operation",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "price_usd",
]


def usage_events_csv(
    engine: Engine,
    viewer: Principal,
    *,
    start: date,
    end: date,
    models: Sequence[str] | None = None,
    operations: Sequence[str] | None = None,
    chat_id: str | None = None,
    account_id: str | None = None,
) -> str:
    """CSV of the account's usage events between two calendar days (both included),
    optionally only some models / operations, or one chat's, oldest first.

    Columns: EXPORT_COLUMNS; created_at is ISO 8601 with the configured zone's
    offset; price_usd an exact decimal string (and, in credits mode, price_credits).
    Reads usage_events through its
    (account_id, created_at) index.
    """
    target = _target(viewer, account_id)
    if start > end:
        raise InvalidUsage(f"the date range starts ({start}) after it ends ({end})")
    lo, hi = day_bounds(start, end)
    e = usage_events.c
    query = (
        select(
            e.request_id,
            type_coerce(e.created_at, String),
            e.user_id,
            e.chat_id,
            e.operation,
            e.provider,
            e.model,
            e.input_tokens,
            e.output_tokens,
            e.cached_tokens,
            type_coerce(e.price, BigInteger),
        )
        .where(e.account_id == target, e.created_at >= lo, e.created_at < hi)
        .order_by(e.created_at, e.id)
    )
    if models:
        query = query.where(e.model.in_(list(models)))
    if operations:
        query = query.where(e.operation.in_(list(operations)))
    if chat_id is not None:
        query = query.where(e.chat_id == chat_id)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    unit = get_settings().display_unit
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS + (["price_credits"] if unit.credits else []))
    if rows:
        columns = list(zip(*rows, strict=True))
        times = [t.isoformat() for t in _local_times(columns[1]).dt.to_pydatetime()]
        chat_ids = [c or "" for c in columns[3]]
        prices = [nanos_str(n) for n in columns[10]]
        extra = [[unit.plain(nanos_to_usd(n)) for n in columns[10]]] if unit.credits else []
        writer.writerows(
            zip(
                columns[0], times, columns[2], chat_ids, *columns[4:10], prices, *extra,
                strict=True,
            )
        )  # fmt: skip
    return out.getvalue()
