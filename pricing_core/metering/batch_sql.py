"""Set-based SQL for batched ingest (`ingest.record_usage_batch`), per back end.

PostgreSQL: COPY for events and ledger entries, `unnest` arrays for upserts and the
wallet update, `SELECT ... FOR UPDATE` in account order for the wallet locks.
SQLite: `executemany` inside the caller's `BEGIN IMMEDIATE` transaction.
All amounts here are integer nano-USD and timestamps UTC, written in the exact
forms the SQLAlchemy column types write (so both paths store identical values).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import String, and_, select, text
from sqlalchemy.engine import Connection, Row

from pricing_core.adapters.schema import usage_events
from pricing_core.domain.periods import epoch_micros

EVENT_COLUMNS = (
    "account_id",
    "request_id",
    "user_id",
    "chat_id",
    "operation",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "provider_cost",
    "price",
    "price_version",
    "charge_basis",
    "status",
    "ledger_entry_id",
    "day",
    "created_at",
    "metadata",
)
LEDGER_COLUMNS = (
    "id",
    "account_id",
    "kind",
    "amount",
    "balance_after",
    "idempotency_key",
    "reference",
    "reason",
    "actor",
    "created_at",
)
_DAILY_KEYS = ("account_id", "day", "user_id", "provider", "model", "operation")
_DAILY_SUMS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "provider_cost",
    "price",
)
_CHAT_SUMS = ("requests", "input_tokens", "output_tokens", "provider_cost", "cost")


@dataclass(slots=True)
class Records:
    """Accepted events of a chunk, in event order, as arrays (money: nano-USD)."""

    account_id: np.ndarray
    request_id: np.ndarray
    user_id: np.ndarray
    chat_id: np.ndarray  # None where no chat
    operation: np.ndarray
    provider: np.ndarray
    model: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    cached_tokens: np.ndarray
    provider_cost: np.ndarray
    price: np.ndarray
    price_version: np.ndarray
    basis: np.ndarray
    balance_after: np.ndarray  # the wallet balance after each debit
    micros: np.ndarray  # created_at, UTC microseconds
    day: np.ndarray  # datetime64[D] in the configured time zone
    metadata: list[str | None]  # JSON text


def _is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _stamp(micros: np.ndarray) -> list[str]:
    """UTC microseconds -> 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's SQLite form)."""
    text_ = np.datetime_as_string(micros.astype("datetime64[us]"), unit="us")
    return [s.replace("T", " ") for s in text_.tolist()]


def _now_text(now: datetime) -> str:
    return now.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def lock_wallets(conn: Connection, account_ids: list[str]) -> dict[str, list[int]]:
    """Lock the wallets of `account_ids` (PostgreSQL: FOR UPDATE in id order).

    Returns: account id -> [balance, held, postings so far] in nano-USD; missing
    accounts are absent.
    """
    if not account_ids:
        return {}
    if _is_pg(conn):
        rows = conn.exec_driver_sql(
            "SELECT account_id, balance, held FROM wallets WHERE account_id = ANY(%s) "
            "ORDER BY account_id FOR UPDATE",
            (list(account_ids),),
        )
    else:
        rows = conn.exec_driver_sql(
            "SELECT account_id, balance, held FROM wallets "
            "WHERE account_id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(account_ids)),),
        )
    return {a: [int(b), int(h), 0] for a, b, h in rows}


def subscribed_accounts(conn: Connection, account_ids: list[str]) -> set[str]:
    """The accounts among `account_ids` that have any plan subscription row."""
    if not account_ids:
        return set()
    if _is_pg(conn):
        rows = conn.exec_driver_sql(
            "SELECT DISTINCT account_id FROM subscriptions WHERE account_id = ANY(%s)",
            (list(account_ids),),
        )
    else:
        rows = conn.exec_driver_sql(
            "SELECT DISTINCT account_id FROM subscriptions "
            "WHERE account_id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(account_ids)),),
        )
    return {r[0] for r in rows}


def update_wallets(conn: Connection, wallets: dict[str, list[int]], now: datetime) -> None:
    """Write the new balances of wallets that got postings; version += postings."""
    changed = [(a, w[0], w[2]) for a, w in wallets.items() if w[2]]
    if not changed:
        return
    accounts, balances, counts = (list(x) for x in zip(*changed, strict=True))
    if _is_pg(conn):
        conn.exec_driver_sql(
            "UPDATE wallets AS w SET balance = v.balance, version = w.version + v.n, "
            "updated_at = %s FROM unnest(%s::text[], %s::bigint[], %s::bigint[]) "
            "AS v(account_id, balance, n) WHERE w.account_id = v.account_id",
            (now, accounts, [int(b) for b in balances], counts),
        )
    else:
        stamp = _now_text(now)
        conn.exec_driver_sql(
            "UPDATE wallets SET balance = ?, version = version + ?, updated_at = ? "
            "WHERE account_id = ?",
            [(int(b), n, stamp, a) for a, b, n in changed],
        )


def existing_events(
    conn: Connection, accounts: np.ndarray, requests: np.ndarray
) -> dict[tuple[str, str], Row[Any]]:
    """Already recorded events among (account, request id) pairs, by pair."""
    if not len(accounts):
        return {}
    if _is_pg(conn):
        keys = text(
            "SELECT * FROM unnest(CAST(:a AS text[]), CAST(:r AS text[])) "
            "AS k(account_id, request_id)"
        ).bindparams(a=list(map(str, accounts)), r=list(map(str, requests)))
    else:
        keys = text(
            "SELECT json_extract(value, '$[0]') AS account_id, "
            "json_extract(value, '$[1]') AS request_id FROM json_each(:keys)"
        ).bindparams(
            keys=json.dumps([[str(a), str(r)] for a, r in zip(accounts, requests, strict=True)])
        )
    k = keys.columns(account_id=String, request_id=String).subquery("k")
    e = usage_events.c
    query = select(usage_events).join(
        k, and_(e.account_id == k.c.account_id, e.request_id == k.c.request_id)
    )
    return {(row.account_id, row.request_id): row for row in conn.execute(query)}


def write_records(conn: Connection, rec: Records, now: datetime) -> None:
    """Insert the ledger entries and events of `rec`, and upsert chats and rollups.

    Rows are written grouped by account (event order kept within an account), so
    index inserts land next to each other; ledger ids are assigned in that order,
    which keeps every account's entries in event order.
    """
    rec = _by_account(rec)
    pg = _is_pg(conn)
    if not pg:
        conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    debited = np.flatnonzero(rec.price > 0)
    ids = np.array(_ledger_ids(conn, len(debited)), dtype=np.int64)
    entry_id = np.full(len(rec.price), None, dtype=object)
    entry_id[debited] = ids.tolist()
    requests = rec.request_id[debited]
    ledger = {
        "id": ids,
        "account_id": rec.account_id[debited],
        "kind": np.full(len(debited), "usage", dtype=object),
        "amount": -rec.price[debited],
        "balance_after": rec.balance_after[debited],
        "idempotency_key": np.array(["usage:" + r for r in requests.tolist()], dtype=object),
        "reference": requests,
        "reason": None,
        "actor": None,
        "created_at": now,
    }
    status = np.where(rec.basis == "unpriced", "unpriced", "priced").astype(object)
    events = {
        **{c: getattr(rec, c) for c in EVENT_COLUMNS[:12]},
        "price_version": rec.price_version,
        "charge_basis": rec.basis,
        "status": status,
        "ledger_entry_id": entry_id,
        "day": rec.day,
        "created_at": rec.micros,
        "metadata": np.array(rec.metadata, dtype=object),
    }
    if pg:
        _copy(conn, "ledger_entries", ledger)
        _copy(conn, "usage_events", events)
    else:
        _insert_many(conn, "ledger_entries", ledger)
        _insert_many(conn, "usage_events", events)
    _upsert_chats(conn, rec, pg)
    _upsert_daily(conn, rec, pg)


SQLITE_CACHE_KIB = 256 * 1024  # page cache for bulk writes (SQLite's default is 2 MiB)


def _by_account(rec: Records) -> Records:
    codes, _ = pd.factorize(rec.account_id, sort=True)
    order = np.argsort(codes, kind="stable")
    values = {
        name: (
            [rec.metadata[i] for i in order.tolist()]
            if name == "metadata"
            else getattr(rec, name)[order]
        )
        for name in Records.__slots__  # type: ignore[attr-defined]
    }
    return Records(**values)


def _ledger_ids(conn: Connection, n: int) -> list[int]:
    """`n` new ledger entry ids, increasing."""
    if not n:
        return []
    if _is_pg(conn):
        rows = conn.exec_driver_sql(
            "SELECT nextval(pg_get_serial_sequence('ledger_entries', 'id')) "
            "FROM generate_series(1, %s)",
            (n,),
        )
        return sorted(int(r[0]) for r in rows)
    # SQLite: the write lock is ours (BEGIN IMMEDIATE); INTEGER PRIMARY KEY ids are max + 1.
    top = conn.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM ledger_entries").scalar_one()
    return list(range(int(top) + 1, int(top) + 1 + n))


# ---------------------------------------------------------------- column encodings

_TIMESTAMPS = {"created_at", "first_at", "last_at"}
_DATES = {"day"}


def _arrow(name: str, values: Any, n: int) -> pa.Array:
    """One column for COPY ... CSV: money and counts int64, timestamps UTC, days dates."""
    if values is None:
        return pa.nulls(n, pa.string())
    if isinstance(values, datetime):
        return pa.array(
            np.full(n, epoch_micros(values), dtype=np.int64), pa.timestamp("us", tz="UTC")
        )
    if name in _TIMESTAMPS:
        return pa.array(np.asarray(values, dtype=np.int64), pa.timestamp("us", tz="UTC"))
    if name in _DATES:
        return pa.array(np.asarray(values).astype("datetime64[D]").astype(np.int32), pa.date32())
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return pa.array(values, pa.int64())
    return pa.array(list(values) if not isinstance(values, list) else values)


def _python(name: str, values: Any, n: int) -> list[Any]:
    """One column for SQLite executemany, in SQLAlchemy's storage forms."""
    if values is None:
        return [None] * n
    if isinstance(values, datetime):
        return [_now_text(values)] * n
    if name in _TIMESTAMPS:
        return _stamp(np.asarray(values, dtype=np.int64))
    if name in _DATES:
        return np.datetime_as_string(np.asarray(values).astype("datetime64[D]"), unit="D").tolist()
    return values if isinstance(values, list) else values.tolist()


def _length(columns: dict[str, Any]) -> int:
    return max(len(v) for v in columns.values() if v is not None and not isinstance(v, datetime))


def _copy(conn: Connection, table: str, columns: dict[str, Any]) -> None:
    """COPY rows into `table` as CSV written by Arrow (no Python loop per row)."""
    n = _length(columns)
    if not n:
        return
    frame = pa.table({name: _arrow(name, v, n) for name, v in columns.items()})
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(frame, sink, pa_csv.WriteOptions(include_header=False))
    raw = conn.connection.driver_connection
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
    with raw.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[union-attr]
        copy.write(sink.getvalue().to_pybytes())


def _insert_many(conn: Connection, table: str, columns: dict[str, Any], suffix: str = "") -> None:
    n = _length(columns)
    if not n:
        return
    rows = list(zip(*(_python(name, v, n) for name, v in columns.items()), strict=True))
    marks = ", ".join("?" * len(columns))
    conn.exec_driver_sql(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) {suffix}", rows
    )


def _upsert_chats(conn: Connection, rec: Records, pg: bool) -> None:
    has_chat = pd.notna(rec.chat_id)
    if not has_chat.any():
        return
    frame = pd.DataFrame(
        {
            "account_id": rec.account_id[has_chat],
            "chat_id": rec.chat_id[has_chat],
            "user_id": rec.user_id[has_chat],
            "input_tokens": rec.input_tokens[has_chat],
            "output_tokens": rec.output_tokens[has_chat],
            "provider_cost": rec.provider_cost[has_chat],
            "cost": rec.price[has_chat],
            "at": rec.micros[has_chat],
        }
    )
    grouped = frame.groupby(["account_id", "chat_id"], sort=True)
    chats = grouped.agg(
        user_id=("user_id", "first"),
        requests=("user_id", "size"),
        input_tokens=("input_tokens", "sum"),
        output_tokens=("output_tokens", "sum"),
        provider_cost=("provider_cost", "sum"),
        cost=("cost", "sum"),
        first_at=("at", "min"),
        last_at=("at", "max"),
    ).reset_index()
    sets = ", ".join(f"{c} = chats.{c} + excluded.{c}" for c in _CHAT_SUMS)
    least, greatest = ("least", "greatest") if pg else ("min", "max")
    sets += (
        f", first_at = {least}(chats.first_at, excluded.first_at)"
        f", last_at = {greatest}(chats.last_at, excluded.last_at)"
    )
    columns = ("account_id", "chat_id", "user_id", *_CHAT_SUMS, "first_at", "last_at")
    _upsert(conn, "chats", _columns(chats, columns), ("account_id", "chat_id"), sets, pg)


def _upsert_daily(conn: Connection, rec: Records, pg: bool) -> None:
    frame = pd.DataFrame(
        {
            "account_id": rec.account_id,
            "day": rec.day,
            "user_id": rec.user_id,
            "provider": rec.provider,
            "model": rec.model,
            "operation": rec.operation,
            "requests": np.ones(len(rec.day), dtype=np.int64),
            "input_tokens": rec.input_tokens,
            "output_tokens": rec.output_tokens,
            "cached_tokens": rec.cached_tokens,
            "provider_cost": rec.provider_cost,
            "price": rec.price,
        }
    )
    keys = ["account_id", "day", "user_id", "provider", "model", "operation"]
    daily = frame.groupby(keys, sort=True).sum().reset_index()
    sets = ", ".join(f"{c} = usage_daily.{c} + excluded.{c}" for c in _DAILY_SUMS)
    columns = _columns(daily, (*_DAILY_KEYS, *_DAILY_SUMS))
    _upsert(conn, "usage_daily", columns, tuple(keys), sets, pg)


def _columns(frame: pd.DataFrame, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: frame[n].to_numpy() for n in names}


def _upsert(
    conn: Connection,
    table: str,
    columns: dict[str, Any],
    conflict: tuple[str, ...],
    sets: str,
    pg: bool,
) -> None:
    """Insert rows, adding to the existing row on a key conflict."""
    on_conflict = f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {sets}"
    if not pg:
        _insert_many(conn, table, columns, on_conflict)
        return
    stage = f"batch_{table}"
    names = ", ".join(columns)
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
        f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    _copy(conn, stage, columns)
    conn.exec_driver_sql(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} {on_conflict}")
    conn.exec_driver_sql(f"TRUNCATE {stage}")
