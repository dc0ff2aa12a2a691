"""The rollups, written one way for every recording path: chat totals (`chats`) and
the daily rollup (`usage_daily`), upserted by adding to the existing row. A single
charge upserts one row; a batch aggregates its events per key first and upserts each
key once. Also the column encodings both back ends share (COPY on PostgreSQL,
`executemany` on SQLite): money and counts as integers (nano-USD), timestamps as UTC
microseconds, days as dates, in the forms SQLAlchemy's column types write.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import PLATFORM_STRIPES
from pricing_core.adapters.schema_rollups import NO_KEY
from pricing_core.domain.periods import epoch_micros, from_epoch_micros

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


def is_pg(conn: Connection) -> bool:
    """Whether the connection is PostgreSQL (else SQLite)."""
    return conn.dialect.name == "postgresql"


def _stamp(micros: np.ndarray) -> list[str]:
    """UTC microseconds -> 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's SQLite form)."""
    text_ = np.datetime_as_string(micros.astype("datetime64[us]"), unit="us")
    return [s.replace("T", " ") for s in text_.tolist()]


def now_text(now: datetime) -> str:
    """A timestamp in SQLAlchemy's SQLite storage form (UTC, microseconds)."""
    return now.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


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
        return [now_text(values)] * n
    if name in _TIMESTAMPS:
        return _stamp(np.asarray(values, dtype=np.int64))
    if name in _DATES:
        return np.datetime_as_string(np.asarray(values).astype("datetime64[D]"), unit="D").tolist()
    return values if isinstance(values, list) else values.tolist()


def length(columns: dict[str, Any]) -> int:
    """The number of rows in `columns` (a scalar column repeats on every row)."""
    return max(len(v) for v in columns.values() if v is not None and not isinstance(v, datetime))


def copy_rows(conn: Connection, table: str, columns: dict[str, Any]) -> None:
    """COPY rows into `table` as CSV written by Arrow (no Python loop per row)."""
    n = length(columns)
    if not n:
        return
    frame = pa.table({name: _arrow(name, v, n) for name, v in columns.items()})
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(frame, sink, pa_csv.WriteOptions(include_header=False))
    raw = conn.connection.driver_connection
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
    with raw.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[union-attr]
        copy.write(sink.getvalue().to_pybytes())


def _pg_python(name: str, values: Any, n: int) -> list[Any]:
    """One column for a PostgreSQL INSERT: timestamps as aware datetimes, days as dates."""
    if values is None:
        return [None] * n
    if isinstance(values, datetime):
        return [values] * n
    if name in _TIMESTAMPS:
        return [from_epoch_micros(m) for m in np.asarray(values, dtype=np.int64).tolist()]
    if name in _DATES:
        return np.asarray(values).astype("datetime64[D]").tolist()  # type: ignore[no-any-return]
    return values if isinstance(values, list) else values.tolist()


def insert_rows(conn: Connection, table: str, columns: dict[str, Any], suffix: str = "") -> None:
    """INSERT the rows of `columns` (one executemany), then `suffix` (ON CONFLICT ...)."""
    n = length(columns)
    if not n:
        return
    pg = is_pg(conn)
    encode = _pg_python if pg else _python
    rows = list(zip(*(encode(name, v, n) for name, v in columns.items()), strict=True))
    marks = ", ".join(("%s" if pg else "?") for _ in columns)
    conn.exec_driver_sql(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) {suffix}", rows
    )


ROLLUP_INPUT = (
    "account_id", "chat_id", "user_id", "provider", "model", "operation", "input_tokens",
    "output_tokens", "cached_tokens", "provider_cost", "price", "micros", "day", "api_key",
)  # fmt: skip


def upsert_rollups(conn: Connection, events: pd.DataFrame) -> None:
    """Add recorded events to the chat totals and the daily rollups (`usage_daily`,
    `platform_daily`, `account_daily`, `chat_daily`), one upsert per key.

    Args:
        events: one row per newly recorded event, columns `ROLLUP_INPUT`: ids and
            names, token counts, provider_cost and price (integer nano-USD), micros
            (created_at, UTC microseconds), day (the local calendar day, a date) and
            chat_id (None when the event has no chat), api_key ("" without one).
    """
    chats = _chat_totals(events)
    daily = _daily_totals(events)
    stripes = {a: stripe_of(a) for a in daily["account_id"].unique().tolist()}
    frames = {
        "usage_daily": daily,
        "platform_daily": _regroup(
            daily.assign(stripe=daily["account_id"].map(stripes)), "platform_daily"
        ),
        "account_daily": _regroup(daily, "account_daily"),
        "chat_daily": _chat_daily(events),
    }
    _upsert_totals(
        conn,
        _columns(chats, _CHAT_COLUMNS) if len(chats) else None,
        {t: _columns(f, (*ROLLUP_KEYS[t], *_DAILY_SUMS)) for t, f in frames.items()},
    )


def _regroup(daily: pd.DataFrame, table: str) -> pd.DataFrame:
    """`usage_daily` rows summed up to the keys of another daily rollup."""
    return daily.groupby(list(ROLLUP_KEYS[table]))[list(_DAILY_SUMS)].sum().reset_index()


def add_to_rollups(conn: Connection, event: dict[str, Any], *, requests: int = 1) -> None:
    """`upsert_rollups` for one event (a dict with the keys of `ROLLUP_INPUT`), without
    grouping: on a single charge pandas' groupby cost more than the database work.
    `requests=0` adds amounts to an event already counted (a queued event priced)."""
    one = {k: [v] for k, v in event.items()} | {"requests": [requests]}
    one["stripe"] = [stripe_of(event["account_id"])]
    keyed = one | {"chat_id": [event["chat_id"] or NO_KEY]}  # chat_daily's "" for none
    chat = None
    if event["chat_id"] is not None:
        one |= {"cost": one["price"], "first_at": one["micros"], "last_at": one["micros"]}
        chat = {c: one[c] for c in _CHAT_COLUMNS}
    rows = {
        t: {c: (keyed if t == "chat_daily" else one)[c] for c in (*keys, *_DAILY_SUMS)}
        for t, keys in ROLLUP_KEYS.items()
    }
    _upsert_totals(conn, chat, rows)


def add_usage_entries(
    conn: Connection,
    account_id: Any,
    day: Any,
    entry_id: Any,
    amount: Any,
    micros: Any,
) -> None:
    """Add usage ledger entries to `usage_entries_daily` (account x value day): one
    value per entry in each argument (sequences of equal length): the account, the
    event's local day (a date), the entry's id, its amount (nano-USD, < 0) and the
    event's created_at (UTC microseconds). A batch is summed per key first; a single
    charge skips pandas, which would cost more than the upsert."""
    if len(entry_id) == 0:
        return
    if len(entry_id) == 1:
        columns = {
            "account_id": np.asarray(account_id, dtype=object),
            "day": np.asarray(day),
            "entries": np.ones(1, dtype=np.int64),
            "amount": np.asarray(amount, dtype=np.int64),
            "last_entry_id": np.asarray(entry_id, dtype=np.int64),
            "last_at": np.asarray(micros, dtype=np.int64),
        }
    else:
        summed = (
            pd.DataFrame(
                {
                    "account_id": account_id,
                    "day": day,
                    "id": entry_id,
                    "amount": amount,
                    "at": micros,
                }
            )  # fmt: skip
            .groupby(["account_id", "day"], sort=True)
            .agg(n=("id", "size"), amount=("amount", "sum"), id=("id", "max"), at=("at", "max"))
            .reset_index()
        )
        columns = {
            "account_id": summed["account_id"].to_numpy(dtype=object),
            "day": summed["day"].to_numpy(),
            "entries": summed["n"].to_numpy(dtype=np.int64),
            "amount": summed["amount"].to_numpy(dtype=np.int64),
            "last_entry_id": summed["id"].to_numpy(dtype=np.int64),
            "last_at": summed["at"].to_numpy(dtype=np.int64),
        }
    pg = is_pg(conn)
    greatest = "greatest" if pg else "max"
    table = "usage_entries_daily"
    sets = (
        f"entries = {table}.entries + excluded.entries, "
        f"amount = {table}.amount + excluded.amount, "
        f"last_entry_id = {greatest}({table}.last_entry_id, excluded.last_entry_id), "
        f"last_at = {greatest}({table}.last_at, excluded.last_at)"
    )
    _upsert(conn, table, columns, ("account_id", "day"), sets, pg)


def stripe_of(account_id: str) -> int:
    """The `platform_daily` stripe an account's charges add to (any is exact: readers
    sum the stripes; spreading them keeps concurrent charges off one row)."""
    return zlib.crc32(account_id.encode()) % PLATFORM_STRIPES


_CHAT_COLUMNS = ("account_id", "chat_id", "user_id", *_CHAT_SUMS, "first_at", "last_at")

# The daily rollups and their keys; each adds up the same sums (`_DAILY_SUMS`).
ROLLUP_KEYS: dict[str, tuple[str, ...]] = {
    "usage_daily": _DAILY_KEYS,
    "platform_daily": ("day", "provider", "model", "operation", "stripe"),
    "account_daily": ("account_id", "day"),
    "chat_daily": ("account_id", "day", "chat_id", "api_key"),
}


def _upsert_totals(
    conn: Connection, chats: dict[str, Any] | None, daily: dict[str, dict[str, Any]]
) -> None:
    pg = is_pg(conn)
    if chats is not None:
        sets = ", ".join(f"{c} = chats.{c} + excluded.{c}" for c in _CHAT_SUMS)
        least, greatest = ("least", "greatest") if pg else ("min", "max")
        sets += (
            f", first_at = {least}(chats.first_at, excluded.first_at)"
            f", last_at = {greatest}(chats.last_at, excluded.last_at)"
        )
        _upsert(conn, "chats", chats, ("account_id", "chat_id"), sets, pg)
    for table, columns in daily.items():
        sets = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in _DAILY_SUMS)
        _upsert(conn, table, columns, ROLLUP_KEYS[table], sets, pg)


def _chat_totals(events: pd.DataFrame) -> pd.DataFrame:
    mine = events[events["chat_id"].notna()]
    grouped = mine.groupby(["account_id", "chat_id"], sort=True)
    return grouped.agg(
        user_id=("user_id", "first"),
        requests=("user_id", "size"),
        input_tokens=("input_tokens", "sum"),
        output_tokens=("output_tokens", "sum"),
        provider_cost=("provider_cost", "sum"),
        cost=("price", "sum"),
        first_at=("micros", "min"),
        last_at=("micros", "max"),
    ).reset_index()


def _daily_totals(events: pd.DataFrame) -> pd.DataFrame:
    sums = list(_DAILY_SUMS[1:])
    frame = events[[*_DAILY_KEYS, *sums]].assign(requests=1)
    return frame.groupby(list(_DAILY_KEYS), sort=True).sum().reset_index()


def _chat_daily(events: pd.DataFrame) -> pd.DataFrame:
    sums = list(_DAILY_SUMS[1:])
    frame = events[["account_id", "day", "api_key", *sums]].assign(
        chat_id=events["chat_id"].fillna(NO_KEY), requests=1
    )
    return frame.groupby(list(ROLLUP_KEYS["chat_daily"]), sort=True).sum().reset_index()


def _columns(frame: pd.DataFrame, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: frame[n].to_numpy() for n in names}


SMALL_UPSERT = 64  # rows; fewer go as one INSERT ... ON CONFLICT, more through a COPY


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
    if not pg or length(columns) < SMALL_UPSERT:
        insert_rows(conn, table, columns, on_conflict)
        return
    stage = f"batch_{table}"
    names = ", ".join(columns)
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
        f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    copy_rows(conn, stage, columns)
    conn.exec_driver_sql(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} {on_conflict}")
    conn.exec_driver_sql(f"TRUNCATE {stage}")
