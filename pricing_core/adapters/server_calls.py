"""One-statement calls of the hot path on raw psycopg connections (PostgreSQL only).

SQLAlchemy's pool pings each connection at checkout and builds every statement in
Python; on a path that runs once per model call that is most of the cost. Here each
thread keeps one autocommit psycopg connection per database, and every statement is
prepared on the server on its first use: one call, one round trip, one transaction.

A broken connection is reopened and the call sent again. That is safe only for
calls that are idempotent on the server (the charge function is: it is keyed by the
request id, so a call that did commit answers "present" the second time).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy import Engine

_RETRYABLE = {"40001", "40P01"}  # serialization failure, deadlock


class _Connections(dict[str, "psycopg.Connection[Any]"]):
    """One thread's connections by conninfo, closed when the thread ends (its
    thread-local storage is freed) or, after a fork, left to the parent."""

    def __init__(self) -> None:
        super().__init__()
        self.pid = os.getpid()

    def close(self) -> None:
        if self.pid == os.getpid():
            for conn in self.values():
                conn.close()
        self.clear()

    def __del__(self) -> None:
        self.close()


_local = threading.local()


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def _conninfo(engine: Engine) -> str:
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def _connections() -> _Connections:
    cache: _Connections | None = getattr(_local, "connections", None)
    if cache is None or cache.pid != os.getpid():
        cache = _local.connections = _Connections()  # a forked child opens its own
    return cache


def _connection(engine: Engine) -> psycopg.Connection[Any]:
    """This thread's connection to `engine`'s database."""
    cache, key = _connections(), _conninfo(engine)
    conn = cache.get(key)
    if conn is None or conn.closed:
        conn = cache[key] = psycopg.connect(key, autocommit=True, prepare_threshold=0)
    return conn


def _forget(engine: Engine) -> None:
    conn = _connections().pop(_conninfo(engine), None)
    if conn is not None:
        conn.close()


# what a server-side function raises to hand the call to Python's general path
GENERAL_PATH = "pricing: use the general path"


def call_row(engine: Engine, sql: str, params: Sequence[Any], *, attempts: int = 5) -> Any:
    """Run one idempotent statement in its own transaction and return its first row.

    Retries deadlocks and serialization failures with backoff, and reopens a broken
    connection once. Returns None if a unique constraint refused the write (a
    concurrent call with the same key won; the caller's general path then finds the
    winner's row) or the function raised `GENERAL_PATH` (it undid its work for the
    general path to decide). Raises: psycopg.Error.
    """
    reopened = False
    for attempt in range(attempts):
        conn = _connection(engine)
        try:
            return conn.execute(sql, params).fetchone()
        except psycopg.errors.UniqueViolation:
            return None
        except psycopg.errors.RaiseException as exc:
            if (exc.diag.message_primary or "").startswith(GENERAL_PATH):
                return None  # the function undid its work: the general path decides
            raise
        except psycopg.OperationalError as exc:
            if exc.sqlstate in _RETRYABLE and attempt + 1 < attempts:
                time.sleep(0.01 * 2**attempt)
                continue
            if (conn.broken or conn.closed) and not reopened:  # e.g. a server restart
                _forget(engine)
                reopened = True
                continue
            raise
    raise AssertionError("unreachable")


def close_connections() -> None:
    """Close this thread's connections (tests, shutdown)."""
    _connections().close()
