"""ClickHouse, the optional analytics warehouse: a connection, its schema, and frames in
and out. Embedded (chdb, a directory on this machine) or a server (clickhouse-connect).

URLs (`PRICING_ANALYTICS_URL`):
- `chdb:///var/lib/pricing/warehouse` (or `chdb://relative/dir`): the embedded engine
  on a local directory; one process at a time may open it, and a process opens one
  such directory at a time.
- `clickhouse://user:password@host:8123/database`, or `clickhouses://` for HTTPS: a
  ClickHouse server through its HTTP interface.

The warehouse holds copies, never the system of record: wallets, the ledger and holds
stay in PostgreSQL (or SQLite). Money is integer nano-USD (Int64) here as there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import pandas as pd

from pricing_core.domain.errors import ConfigurationError, InvalidUsage, PricingError

DATABASE = "pricing"
# reads pass account ids in the query text (revenue by plan's subscribers): 64 MiB
# instead of ClickHouse's default 256 KiB, about 15,000 ids
MAX_QUERY_SIZE = 64 * 1024 * 1024

# An event as copied: the columns analytics read, money in nano-USD. Keyed by the
# system of record's unique (account_id, request_id); `synced` is the copy's version,
# so a re-copied event replaces its older copy when parts merge (and under FINAL).
SCHEMA = (
    f"CREATE DATABASE IF NOT EXISTS {DATABASE}",
    f"""CREATE TABLE IF NOT EXISTS {DATABASE}.usage_events (
        id UInt64, account_id String, request_id String, user_id String,
        chat_id Nullable(String), operation LowCardinality(String),
        provider LowCardinality(String), model LowCardinality(String),
        input_tokens Int64, output_tokens Int64, cached_tokens Int64,
        provider_cost Int64, price Int64, charge_basis LowCardinality(String),
        status LowCardinality(String), day Date, created_at DateTime64(6, 'UTC'),
        synced UInt64,
        INDEX ix_id id TYPE minmax GRANULARITY 1
    ) ENGINE = ReplacingMergeTree(synced) ORDER BY (account_id, request_id)""",
    # The rollups: one row per (block of event ids, day, key), replaced whole when the
    # block is folded again, so a fold repeated after a crash changes nothing.
    f"""CREATE TABLE IF NOT EXISTS {DATABASE}.platform_daily (
        day Date, provider LowCardinality(String), model LowCardinality(String),
        operation LowCardinality(String), block UInt64,
        requests Int64, input_tokens Int64, output_tokens Int64, cached_tokens Int64,
        provider_cost Int64, price Int64, synced UInt64
    ) ENGINE = ReplacingMergeTree(synced) ORDER BY (day, provider, model, operation, block)""",
    f"""CREATE TABLE IF NOT EXISTS {DATABASE}.account_daily (
        day Date, account_id String, block UInt64,
        requests Int64, input_tokens Int64, output_tokens Int64, cached_tokens Int64,
        provider_cost Int64, price Int64, synced UInt64
    ) ENGINE = ReplacingMergeTree(synced) ORDER BY (day, account_id, block)""",
    # one block on its way in (a sync at a time): copied to usage_events and rolled up
    f"""CREATE TABLE IF NOT EXISTS {DATABASE}.staging AS {DATABASE}.usage_events
    ENGINE = Memory""",
    f"""CREATE TABLE IF NOT EXISTS {DATABASE}.sync_state (
        name String, watermark UInt64, block UInt64, synced UInt64
    ) ENGINE = ReplacingMergeTree(synced) ORDER BY name""",
)


class Warehouse(Protocol):
    """What the analytics need of ClickHouse. Errors: WarehouseError."""

    url: str
    embedded: bool  # runs in this process: it can read the database's tables itself

    def command(self, sql: str) -> None: ...

    def frame(self, sql: str) -> pd.DataFrame: ...

    def insert(self, table: str, frame: pd.DataFrame) -> None: ...


class WarehouseError(PricingError):
    """ClickHouse refused a statement or could not be reached."""


class _Embedded:
    """chdb on a directory. chdb keeps one session per process, so statements are
    serialised by a lock (Streamlit runs each session's script on its own thread)."""

    def __init__(self, url: str, path: Path) -> None:
        from chdb import session  # optional dependency

        path.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.embedded = True
        try:
            self._session = session.Session(str(path))
        except RuntimeError as exc:  # chdb locks its directory to one process
            raise WarehouseError(
                f"cannot open the chdb directory {path}: {str(exc).splitlines()[-1]} "
                "(an embedded warehouse serves one process; use a ClickHouse server to "
                "share it)"
            ) from exc
        self._lock = threading.Lock()
        self._run(f"SET max_query_size = {MAX_QUERY_SIZE}")

    def _run(self, sql: str, fmt: str = "CSV") -> Any:
        try:
            with self._lock:
                return self._session.query(sql, fmt)
        except RuntimeError as exc:  # chdb's errors (chdb._exceptions.ChdbError) are these
            raise WarehouseError(str(exc).splitlines()[0]) from exc

    def command(self, sql: str) -> None:
        self._run(sql)

    def frame(self, sql: str) -> pd.DataFrame:
        return self._run(sql, "DataFrame")

    def insert(self, table: str, frame: pd.DataFrame) -> None:
        # chdb's Python() table function reads the DataFrame by its variable name
        self._run(f"INSERT INTO {table} SELECT * FROM Python(frame)")

    def close(self) -> None:
        self._session.close()


class _Server:
    """A ClickHouse server through clickhouse-connect (HTTP)."""

    def __init__(self, url: str, parts: Any) -> None:
        import clickhouse_connect  # optional dependency

        self.url = url
        self.embedded = False
        self._client = self._run(
            clickhouse_connect.get_client,
            host=parts.hostname or "localhost",
            port=parts.port or (8443 if parts.scheme == "clickhouses" else 8123),
            username=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            database=parts.path.strip("/") or "default",
            secure=parts.scheme == "clickhouses",
            settings={"max_query_size": MAX_QUERY_SIZE},
        )

    @staticmethod
    def _run(call: Any, *args: Any, **kwargs: Any) -> Any:
        from clickhouse_connect.driver.exceptions import ClickHouseError  # optional dependency

        try:
            return call(*args, **kwargs)
        except ClickHouseError as exc:
            raise WarehouseError(str(exc).splitlines()[0]) from exc

    def command(self, sql: str) -> None:
        self._run(self._client.command, sql)

    def frame(self, sql: str) -> pd.DataFrame:
        return self._run(self._client.query_df, sql)

    def insert(self, table: str, frame: pd.DataFrame) -> None:
        database, _, name = table.rpartition(".")
        self._run(self._client.insert_df, name, frame, database=database or None)


class SqliteExport:
    """A worker process (`adapters.chdb_export`) in which ClickHouse writes rows of a
    SQLite file to Parquet files, one request at a time, while this process works on.
    `start` sends a request, `wait` blocks until it is done (raises WarehouseError);
    use as a context manager, which stops the worker."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "pricing_core.adapters.chdb_export"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def start(self, table: str, columns: str, where: str, out: str) -> None:
        """Export `SELECT columns FROM table WHERE where` to the Parquet file `out`."""
        sql = (
            f"SELECT {columns} FROM sqlite({literal(self._path)}, {literal(table)}) "
            f"WHERE {where} INTO OUTFILE {literal(out)} TRUNCATE FORMAT Parquet"
        )
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"sql": sql}) + "\n")
        self._proc.stdin.flush()

    def wait(self) -> None:
        assert self._proc.stdout is not None
        answer = self._proc.stdout.readline().strip()
        if answer != "ok":
            raise WarehouseError(answer.removeprefix("error: ") or "the export worker stopped")

    def __enter__(self) -> SqliteExport:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        finally:
            assert self._proc.stdout is not None
            self._proc.stdout.close()


def literal(text: str) -> str:
    """A ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


_OPEN: dict[str, Warehouse] = {}
_OPEN_LOCK = threading.Lock()


def open_warehouse(url: str) -> Warehouse:
    """The warehouse at `url` with its schema created, one per URL per process.
    Raises: InvalidUsage (a URL of another kind), WarehouseError."""
    with _OPEN_LOCK:
        if url not in _OPEN:
            parts = urlsplit(url)
            wh: Warehouse
            try:
                if parts.scheme == "chdb":
                    # chdb opens one directory per process: close any other first
                    for other in [u for u, w in _OPEN.items() if isinstance(w, _Embedded)]:
                        _OPEN.pop(other).close()  # type: ignore[attr-defined]
                    wh = _Embedded(url, Path(unquote(parts.netloc + parts.path)))
                elif parts.scheme in ("clickhouse", "clickhouses"):
                    wh = _Server(url, parts)
                else:
                    raise InvalidUsage(
                        "PRICING_ANALYTICS_URL must start with chdb:// or clickhouse://, "
                        f"got {url!r}"
                    )
            except ImportError as exc:
                raise ConfigurationError(
                    f"{exc.name} is not installed: pip install 'pricing-core[clickhouse]'"
                ) from None
            for statement in SCHEMA:
                wh.command(statement)
            _OPEN[url] = wh
        return _OPEN[url]


def close_warehouse(url: str) -> None:
    """Forget (and, if embedded, close) the warehouse at `url` (tests, CLI exits)."""
    with _OPEN_LOCK:
        wh = _OPEN.pop(url, None)
    if isinstance(wh, _Embedded):
        wh.close()
