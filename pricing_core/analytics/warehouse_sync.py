"""The ClickHouse copy of the usage events (`pricing-core analytics sync`, the
`analytics-sync` job), read by `analytics.warehouse`.

Events are folded in blocks of `BLOCK` consecutive event ids. A block is staged
whole from the system of record (up to the sync's top id); its events are inserted (the table
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
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, func, select

from pricing_core.adapters.schema import usage_events
from pricing_core.adapters.warehouse import (
    DATABASE,
    SqliteExport,
    Warehouse,
    WarehouseError,
    literal,
)
from pricing_core.analytics.warehouse import ROLLUP_KEYS, SUMS, state
from pricing_core.domain.errors import InvalidUsage

BLOCK = 65_536
REWIND = 1_000
# A sync of at least this many blocks from a SQLite file has a worker process export
# each next block while this one folds the current (see `_exported`)
WORKER_BLOCKS = 4
_EVENT_COLUMNS = (
    "id", "account_id", "request_id", "user_id", "chat_id", "operation", "provider",
    "model", "input_tokens", "output_tokens", "cached_tokens", "provider_cost", "price",
    "charge_basis", "status", "day", "created_at",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one sync folded: blocks, events read, and the watermark after it."""

    blocks: int
    events: int
    watermark: int


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
    mark, fixed = state(wh)
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
    # never past `top`: the watermark says so, and reads add what came after it
    bounds = [(b * block, min((b + 1) * block, top + 1)) for b in blocks]
    with _exported(engine, wh, bounds) as files:
        for done, (b, (lo, hi), staged) in enumerate(zip(blocks, bounds, files, strict=True), 1):
            events += _fold(engine, wh, b, lo, hi, version, staged)
            if b in forward:
                _set_state(wh, max(mark, min((b + 1) * block - 1, top)), block, version)
            if progress is not None:
                progress(done, len(blocks))
    return SyncResult(len(blocks), events, max(mark, top))


@contextmanager
def _exported(
    engine: Engine, wh: Warehouse, bounds: list[tuple[int, int]]
) -> Iterator[Iterator[str | None]]:
    """Per block (lo, hi), the Parquet file its events were exported to, or None (the
    fold reads them itself). From a SQLite file into chdb, a worker process has
    ClickHouse read the file, a block ahead of the folds: Python's sqlite3 made the
    rows at 255,000 a second, ClickHouse's reader at 460,000, on another core."""
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not (wh.embedded and path and path != ":memory:" and len(bounds) >= WORKER_BLOCKS):
        yield iter([None] * len(bounds))
        return
    columns = ", ".join(_EVENT_COLUMNS)
    with tempfile.TemporaryDirectory() as tmp, SqliteExport(str(Path(path).resolve())) as worker:

        def export(k: int) -> str:
            lo, hi = bounds[k]
            out = str(Path(tmp) / f"block_{k}.parquet")
            worker.start("usage_events", columns, f"id >= {lo} AND id < {hi}", out)
            return out

        def files() -> Iterator[str]:
            pending = export(0)
            for k in range(len(bounds)):
                worker.wait()
                done = pending
                if k + 1 < len(bounds):
                    pending = export(k + 1)
                yield done
                Path(done).unlink()

        yield files()


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


def _fold(
    engine: Engine, wh: Warehouse, b: int, lo: int, hi: int, version: int, staged: str | None
) -> int:
    """Stage the events lo <= id < hi (the whole block up to the sync's top id, each
    once; from the Parquet file `staged` if one was exported), copy them, and write
    block b's rollup rows from them. Returns: their count."""
    staging = f"{DATABASE}.staging"
    wh.command(f"TRUNCATE TABLE {staging}")
    source = f"file({literal(staged)}, Parquet)" if staged else None
    if source is None and wh.embedded:
        source = _source(engine)
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
    for table, keys in ROLLUP_KEYS.items():
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
    login = ", ".join(literal(v or "") for v in (url.username, url.password))
    return f"postgresql({literal(where)}, {literal(url.database)}, 'usage_events', {login})"


def _set_state(wh: Warehouse, mark: int, block: int, version: int) -> None:
    state = {"name": ["usage_events"], "watermark": [mark], "block": [block], "synced": [version]}
    wh.insert(f"{DATABASE}.sync_state", pd.DataFrame(state))
