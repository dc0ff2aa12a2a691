"""The ClickHouse copy of the usage events, and the revenue rollups read from it.

With `PRICING_ANALYTICS_URL` set, the admin figures built on the platform and
account rollups (revenue report, breakdowns, series, top accounts, revenue by plan,
usage span, high-cost accounts, spend anomalies, models in use) are summed by ClickHouse instead
of the system of record's rollups; the ledger, wallets and holds are always read where
they live.

The copy (`sync`): events are folded in blocks of `BLOCK` consecutive event ids. A
block is read whole from the system of record; its events are inserted (the table
keeps one row per (account_id, request_id), however often an event is copied) and its
rollup rows are written under the block's number, replacing the block's earlier rows.
Then the watermark moves past the block ("events up to id N are folded"). A sync that
dies anywhere is simply run again: re-folding a block writes the same rows.

Each sync starts `REWIND` ids below the watermark, so a charge whose transaction
committed after a later id had already been copied is still folded; and it re-folds
the blocks of copied events that were unpriced then, since pricing one later changes
its row. Reads add the events past the watermark from the system of record, so the
figures are never older than the last committed charge.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from sqlalchemy import BigInteger, Engine, func, select, type_coerce

from pricing_core.adapters.schema import accounts, usage_events, wallets
from pricing_core.adapters.warehouse import DATABASE, Warehouse, WarehouseError, open_warehouse
from pricing_core.config import get_settings
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.money import nanos_to_usd

BLOCK = 65_536
REWIND = 1_000
SUMS = ("requests", "input_tokens", "output_tokens", "cached_tokens", "provider_cost", "price")
_EVENT_COLUMNS = (
    "id", "account_id", "request_id", "user_id", "chat_id", "operation", "provider",
    "model", "input_tokens", "output_tokens", "cached_tokens", "provider_cost", "price",
    "charge_basis", "status", "day", "created_at",
)  # fmt: skip
EVER = (date(1970, 1, 1), date(2149, 6, 6))  # the days ClickHouse's Date can hold
_KEYS = {"platform_daily": ("provider", "model", "operation"), "account_daily": ("account_id",)}


def configured() -> Warehouse | None:
    """The warehouse `PRICING_ANALYTICS_URL` names, or None when it is unset."""
    url = get_settings().analytics_url
    return open_warehouse(url) if url else None


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one sync folded: blocks, events read, and the watermark after it."""

    blocks: int
    events: int
    watermark: int


def watermark(wh: Warehouse) -> int:
    """The highest event id folded into the warehouse (0 before the first sync)."""
    return _state(wh)[0]


def _state(wh: Warehouse) -> tuple[int, int | None]:
    """(watermark, block size) of the warehouse; (0, None) before the first sync."""
    frame = wh.frame(
        f"SELECT watermark, block FROM {DATABASE}.sync_state FINAL WHERE name = 'usage_events'"
    )
    return (
        (int(frame["watermark"].iloc[0]), int(frame["block"].iloc[0])) if len(frame) else (0, None)
    )


def sync(
    engine: Engine,
    wh: Warehouse,
    *,
    block: int | None = None,
    full: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SyncResult:
    """Fold every event recorded since the last sync (and the blocks that need it
    again) into the warehouse. Idempotent; safe to kill and run again. One sync at a
    time per warehouse (the `analytics-sync` job claims its slot). `block`: event ids
    per block, fixed by the first sync (default BLOCK), since rollup rows are keyed
    by block. `full`: re-fold every block (after a charge that committed more than
    REWIND ids late). `progress(done, total)` is called after each block.
    Returns: SyncResult. Raises: InvalidUsage (a block size other than the warehouse's).
    """
    mark, fixed = _state(wh)
    if block is not None and fixed is not None and block != fixed:
        raise InvalidUsage(f"this warehouse folds blocks of {fixed} event ids, not {block}")
    block = fixed or block or BLOCK
    with engine.connect() as conn:
        top = conn.execute(select(func.max(usage_events.c.id))).scalar() or 0
    unpriced = wh.frame(
        f"SELECT DISTINCT intDiv(id, {block}) AS b FROM {DATABASE}.usage_events FINAL "
        "WHERE status = 'unpriced'"
    )
    # from REWIND ids back, even with nothing new: a late commit lands below the top
    first = 0 if full else max(mark - REWIND, 0) // block
    forward = range(first, top // block + 1) if top else range(0)
    blocks = sorted({int(b) for b in unpriced["b"]} | set(forward))
    version = time.time_ns()
    events = 0
    for done, b in enumerate(blocks, 1):
        # never past `top`: the watermark says so, and reads add what came after it
        events += _fold(engine, wh, b, b * block, min((b + 1) * block, top + 1), version)
        if b in forward:
            _set_state(wh, max(mark, min((b + 1) * block - 1, top)), block, version)
        if progress is not None:
            progress(done, len(blocks))
    return SyncResult(len(blocks), events, max(mark, top))


def _read_events(engine: Engine, lo: int, hi: int) -> pd.DataFrame:
    """The events with lo <= id < hi, in the warehouse's column types. Read through the
    driver, not SQLAlchemy rows (5x faster): COPY on PostgreSQL, sqlite3 on SQLite."""
    query = (
        f"SELECT {', '.join(_EVENT_COLUMNS)} FROM usage_events "
        f"WHERE id >= {int(lo)} AND id < {int(hi)}"
    )
    raw = engine.raw_connection()
    try:
        if engine.dialect.name == "postgresql":
            data = io.BytesIO()
            copy_sql = f"COPY ({query}) TO STDOUT WITH (FORMAT csv, NULL '\\N')"
            with raw.cursor().copy(copy_sql) as copy:  # type: ignore[attr-defined]
                for chunk in copy:
                    data.write(chunk)
            data.seek(0)
            text = {c: str for c in _EVENT_COLUMNS if c not in (*SUMS, "id", "created_at")}
            frame = pd.read_csv(
                data, names=list(_EVENT_COLUMNS), dtype=text, keep_default_na=False,
                na_values={"chat_id": ["\\N"]},
            )  # fmt: skip
        else:
            frame = pd.read_sql_query(query, raw.driver_connection)  # type: ignore[arg-type]
    finally:
        raw.close()
    frame["day"] = pd.to_datetime(frame["day"], format="ISO8601")
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="ISO8601")
    for name in ("id", *SUMS[1:]):
        frame[name] = frame[name].astype("int64")
    frame["chat_id"] = frame["chat_id"].astype(object).where(frame["chat_id"].notna(), None)
    return frame


def _fold(engine: Engine, wh: Warehouse, b: int, lo: int, hi: int, version: int) -> int:
    """Stage the events lo <= id < hi (the whole block up to the sync's top id, each
    once), copy them, and write block b's rollup rows from them. Returns: their count."""
    staging = f"{DATABASE}.staging"
    wh.command(f"TRUNCATE TABLE {staging}")
    source = _source(engine) if wh.embedded else None
    if source is not None:  # ClickHouse reads the database itself: no rows through Python
        try:
            wh.command(
                f"INSERT INTO {staging} SELECT {', '.join(_EVENT_COLUMNS[:-2])}, toDate(day), "
                f"toDateTime64(created_at, 6, 'UTC'), {version} "
                f"FROM {source} WHERE id >= {lo} AND id < {hi}"
            )
        except WarehouseError as exc:  # its text may quote the statement, password and all
            secret = engine.url.password
            raise WarehouseError(str(exc).replace(secret, "***") if secret else str(exc)) from None
    else:
        wh.insert(staging, _read_events(engine, lo, hi).assign(synced=version))
    wh.command(f"INSERT INTO {DATABASE}.usage_events SELECT * FROM {staging}")
    for table, keys in _KEYS.items():
        group = ", ".join(["day", *keys])
        sums = ", ".join(["count()", *(f"sum({s})" for s in SUMS[1:])])
        wh.command(
            f"INSERT INTO {DATABASE}.{table} SELECT {group}, {b}, {sums}, {version} "
            f"FROM {staging} GROUP BY {group}"
        )
    return int(wh.frame(f"SELECT count() AS n FROM {staging}")["n"].iloc[0])


def _source(engine: Engine) -> str | None:
    """The ClickHouse table function that reads `usage_events` from PostgreSQL as the
    app connects to it, or None (read rows through Python). Never SQLite's file: a
    second SQLite library in this process would release the app's file locks
    (seen as "disk I/O error"), so SQLite is read through the app's own driver."""
    url = engine.url
    if url.get_backend_name() != "postgresql" or not url.database:
        return None
    where = f"{url.host or 'localhost'}:{url.port or 5432}"
    login = ", ".join(_literal(v or "") for v in (url.username, url.password))
    return f"postgresql({_literal(where)}, {_literal(url.database)}, 'usage_events', {login})"


def _set_state(wh: Warehouse, mark: int, block: int, version: int) -> None:
    state = {"name": ["usage_events"], "watermark": [mark], "block": [block], "synced": [version]}
    wh.insert(f"{DATABASE}.sync_state", pd.DataFrame(state))


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
        listed = ", ".join(_literal(a) for a in accounts) or "''"
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
    late = ", ".join(_literal(a) for a in sorted(set(tail["account_id"]))) or "''"
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


def _literal(text: str) -> str:
    """A ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


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
