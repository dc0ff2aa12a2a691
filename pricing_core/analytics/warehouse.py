"""The ClickHouse warehouse's reads: the rollups it keeps, plus the events past its
watermark from the system of record (`analytics.warehouse_sync` keeps the copy).

With `PRICING_ANALYTICS_URL` set, the admin figures built on the platform and
account rollups (revenue report, breakdowns, series, top accounts, revenue by plan,
usage span, high-cost accounts, spend anomalies, models in use) are summed by
ClickHouse instead of the system of record's rollups; the ledger, wallets and holds
are always read where they live. Adding the events past the watermark keeps every
figure up to the last committed charge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from sqlalchemy import BigInteger, Engine, func, select, type_coerce

from pricing_core.adapters.schema import accounts, usage_events, wallets
from pricing_core.adapters.warehouse import DATABASE, Warehouse, literal, open_warehouse
from pricing_core.config import get_settings
from pricing_core.domain.money import nanos_to_usd

SUMS = ("requests", "input_tokens", "output_tokens", "cached_tokens", "provider_cost", "price")
EVER = (date(1970, 1, 1), date(2149, 6, 6))  # the days ClickHouse's Date can hold
ROLLUP_KEYS = {
    "platform_daily": ("provider", "model", "operation"),
    "account_daily": ("account_id",),
}


def configured() -> Warehouse | None:
    """The warehouse `PRICING_ANALYTICS_URL` names, or None when it is unset."""
    url = get_settings().analytics_url
    return open_warehouse(url) if url else None


def watermark(wh: Warehouse) -> int:
    """The highest event id folded into the warehouse (0 before the first sync)."""
    return state(wh)[0]


def state(wh: Warehouse) -> tuple[int, int | None]:
    """(watermark, block size) of the warehouse; (0, None) before the first sync."""
    frame = wh.frame(
        f"SELECT watermark, block FROM {DATABASE}.sync_state FINAL WHERE name = 'usage_events'"
    )
    return (
        (int(frame["watermark"].iloc[0]), int(frame["block"].iloc[0])) if len(frame) else (0, None)
    )


def rollup_sums(
    engine: Engine,
    wh: Warehouse,
    *,
    table: str,
    keys: Sequence[str],
    start: date,
    end: date,
    per_day: bool,
) -> list[tuple[Any, ...]]:
    """Sums of a rollup over [start, end] grouped by `keys` (and the day when
    `per_day`), from the warehouse plus the system of record's events past its
    watermark. `table`: "platform_daily" or "account_daily" (keys from its columns).
    Returns: rows ([day], *keys, requests, input_tokens, output_tokens, price,
    provider_cost), money as Decimal USD, in no particular order."""
    group = ["day", *keys] if per_day else list(keys)
    frame = rollup_frame(engine, wh, table=table, group=group, start=start, end=end)
    n = len(group)
    return [
        (*r[:n], int(r[n]), int(r[n + 1]), int(r[n + 2]), nanos_to_usd(int(r[n + 5])),
         nanos_to_usd(int(r[n + 4])))
        for r in frame[[*group, *SUMS]].itertuples(index=False, name=None)
    ]  # fmt: skip


def rollup_frame(
    engine: Engine,
    wh: Warehouse,
    *,
    table: str,
    group: Sequence[str],
    start: date,
    end: date,
    accounts: Sequence[str] | None = None,
    excluding: bool = False,
) -> pd.DataFrame:
    """`rollup_sums` as a frame: the `group` columns ("day" a date) and SUMS as int64
    (money in nano-USD), a row per group value. `accounts` (with "account_id" in
    `group`): only these accounts, or all but these when `excluding`."""
    where = f"day >= '{start.isoformat()}' AND day <= '{end.isoformat()}'"
    if accounts is not None:
        listed = ", ".join(literal(a) for a in accounts) or "''"
        where += f" AND account_id {'NOT IN' if excluding else 'IN'} ({listed})"
    sums = ", ".join(f"sum({s}) AS {s}" for s in SUMS)
    copied = wh.frame(
        f"SELECT {', '.join(group)}, {sums} FROM {DATABASE}.{table} FINAL WHERE {where} "
        f"GROUP BY {', '.join(group)}"
    )
    if copied.empty:  # an empty answer may come without its columns
        copied = pd.DataFrame(columns=[*group, *SUMS])
    tail = _tail(engine, watermark(wh), start, end, list(group))
    if accounts is not None:
        tail = tail[tail["account_id"].isin(set(accounts)) != excluding].copy()
    for part in (copied, tail):
        if "day" in group:
            part["day"] = pd.to_datetime(part["day"]).dt.date
    frame = pd.concat([copied[[*group, *SUMS]], tail], ignore_index=True)
    return (
        frame.groupby(list(group), as_index=False)[list(SUMS)]
        .sum()
        .astype(dict.fromkeys(SUMS, "int64"))
    )


def top_spenders(
    engine: Engine, wh: Warehouse, *, start: date, end: date, limit: int
) -> list[tuple[Any, ...]]:
    """The `limit` accounts with the largest price sum over [start, end], ranked by
    ClickHouse: its top `limit` and, for the accounts with events past the
    watermark, their copied sums, added to those events. Returns: `rollup_sums` rows
    (account_id, requests, input_tokens, output_tokens, price, provider_cost), largest
    first, ties by account id."""
    tail = _tail(engine, watermark(wh), start, end, ["account_id"])
    late = ", ".join(literal(a) for a in sorted(set(tail["account_id"]))) or "''"
    sums = ", ".join(f"sum({s}) AS {s}" for s in SUMS)
    head = (
        f"SELECT account_id, {sums} FROM {DATABASE}.account_daily FINAL "
        f"WHERE day >= '{start.isoformat()}' AND day <= '{end.isoformat()}'"
    )
    copied = wh.frame(
        f"{head} GROUP BY account_id ORDER BY price DESC, account_id LIMIT {int(limit)} "
        f"UNION DISTINCT {head} AND account_id IN ({late}) GROUP BY account_id"
    )
    if copied.empty:
        copied = pd.DataFrame(columns=["account_id", *SUMS])
    frame = pd.concat([copied[["account_id", *SUMS]], tail], ignore_index=True)
    frame = frame.groupby("account_id", as_index=False)[list(SUMS)].sum()
    frame = frame.sort_values(["price", "account_id"], ascending=[False, True]).head(limit)
    return [
        (a, int(n), int(i), int(o), nanos_to_usd(int(p)), nanos_to_usd(int(c)))
        for a, n, i, o, _, c, p in frame[["account_id", *SUMS]].itertuples(index=False, name=None)
    ]


def _tail(engine: Engine, mark: int, start: date, end: date, group: list[str]) -> pd.DataFrame:
    """The events past the watermark, as rollup rows (one request each)."""
    e = usage_events.c
    query = select(
        *(e[g] for g in group),
        *(type_coerce(e[s], BigInteger).label(s) for s in SUMS[1:]),
    ).where(e.id > mark, e.day >= start, e.day <= end)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(rows, columns=[*group, *SUMS[1:]])
    frame.insert(len(group), "requests", 1)
    return frame


def window_sums(
    engine: Engine,
    wh: Warehouse,
    *,
    table: str,
    keys: Sequence[str],
    column: str,
    windows: Mapping[str, tuple[date, date]],
) -> pd.DataFrame:
    """Per value of `keys`: the sum of `column` (one of SUMS: nano-USD or a count) over
    each named window of days [first, last], from the warehouse plus the events past
    its watermark, in one pass. Returns: a DataFrame of the keys and one int64 column
    per window, a row per key value with rollup rows in the windows' span."""
    lo, hi = min(a for a, _ in windows.values()), max(b for _, b in windows.values())
    sums = ", ".join(
        f"sumIf({column}, day >= '{a.isoformat()}' AND day <= '{b.isoformat()}') AS {name}"
        for name, (a, b) in windows.items()
    )
    copied = wh.frame(
        f"SELECT {', '.join(keys)}, {sums} FROM {DATABASE}.{table} FINAL "
        f"WHERE day >= '{lo.isoformat()}' AND day <= '{hi.isoformat()}' GROUP BY {', '.join(keys)}"
    )
    if copied.empty:
        copied = pd.DataFrame(columns=[*keys, *windows])
    tail = _tail(engine, watermark(wh), lo, hi, ["day", *keys])
    for name, (a, b) in windows.items():
        tail[name] = tail[column].where((tail["day"] >= a) & (tail["day"] <= b), 0)
    frame = pd.concat([copied[[*keys, *windows]], tail[[*keys, *windows]]], ignore_index=True)
    return (
        frame.groupby(list(keys), as_index=False)[list(windows)]
        .sum()
        .astype(dict.fromkeys(windows, "int64"))
    )


def day_span(engine: Engine, wh: Warehouse) -> tuple[date, date] | None:
    """(first, last) day with usage, from the warehouse and the events past its
    watermark; None without usage."""
    copied = wh.frame(
        f"SELECT min(day) AS first, max(day) AS last, count() AS n FROM {DATABASE}.platform_daily"
    )
    days = []
    if int(copied["n"].iloc[0]):
        days += [
            pd.Timestamp(copied["first"].iloc[0]).date(),
            pd.Timestamp(copied["last"].iloc[0]).date(),
        ]
    e = usage_events.c
    with engine.connect() as conn:
        first, last = conn.execute(
            select(func.min(e.day), func.max(e.day)).where(e.id > watermark(wh))
        ).one()
    days += [d for d in (first, last) if d is not None]
    return (min(days), max(days)) if days else None


def names_and_balances(engine: Engine, ids: Sequence[str]) -> dict[str, tuple[str, Decimal]]:
    """account id -> (name, wallet balance USD) of the few accounts a warehouse ranking
    picked, from the system of record (the warehouse has no names or balances)."""
    query = (
        select(accounts.c.id, accounts.c.name, wallets.c.balance)
        .join(wallets, wallets.c.account_id == accounts.c.id)
        .where(accounts.c.id.in_(list(ids)))
    )
    with engine.connect() as conn:
        return {a: (name, balance) for a, name, balance in conn.execute(query)}


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """Where the copy stands: the warehouse (its URL without credentials), the
    watermark, and how many events were recorded past it (read from the database
    until the next sync)."""

    where: str
    watermark: int
    behind: int


def sync_status(engine: Engine) -> SyncStatus | None:
    """The configured warehouse's SyncStatus; None when `PRICING_ANALYTICS_URL` is
    unset. Raises: WarehouseError when it cannot be read."""
    wh = configured()
    if wh is None:
        return None
    mark = watermark(wh)
    e = usage_events.c
    with engine.connect() as conn:
        behind = conn.execute(select(func.count()).where(e.id > mark)).scalar_one()
    parts = urlsplit(wh.url)
    where = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
    return SyncStatus(where + parts.path, mark, int(behind))
