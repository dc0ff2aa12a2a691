"""Set-based SQL for batched ingest (`batch.record_usage_batch`), per back end.

PostgreSQL: COPY for events and ledger entries, `unnest` arrays for upserts and the
wallet update, `SELECT ... FOR UPDATE` in account order for the wallet locks.
SQLite: `executemany` inside the caller's `BEGIN IMMEDIATE` transaction.
All amounts here are integer nano-USD and timestamps UTC, written in the exact
forms the SQLAlchemy column types write (so both paths store identical values).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import String, and_, select, text
from sqlalchemy.engine import Connection, Row

from pricing_core.adapters.schema import usage_events
from pricing_core.domain.usage_event import api_key_of_json
from pricing_core.metering.rollups import (
    ROLLUP_INPUT,
    add_usage_entries,
    copy_rows,
    insert_rows,
    is_pg,
    now_text,
    upsert_rollups,
)

# Every usage_events column the batch writes: all but the id and the two a settled
# hold's event has (holds are settled one by one, never in a batch).
# The set-based path writes plain events only (no cache writes, standard tier,
# quantity 1): the 0014 and 0015 columns keep their server defaults.
EVENT_COLUMNS = tuple(
    c.name
    for c in usage_events.c
    if c.name
    not in ("id", "hold_id", "exceeded_hold", "cache_write_tokens", "service_tier", "quantity")
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


def lock_wallets(conn: Connection, account_ids: list[str]) -> dict[str, list[int]]:
    """Lock the wallets of `account_ids` (PostgreSQL: FOR UPDATE in id order).

    Returns: account id -> [balance, held, postings so far] in nano-USD; missing
    accounts are absent.
    """
    if not account_ids:
        return {}
    if is_pg(conn):
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
    if is_pg(conn):
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
    if is_pg(conn):
        conn.exec_driver_sql(
            "UPDATE wallets AS w SET balance = v.balance, version = w.version + v.n, "
            "updated_at = %s FROM unnest(%s::text[], %s::bigint[], %s::bigint[]) "
            "AS v(account_id, balance, n) WHERE w.account_id = v.account_id",
            (now, accounts, [int(b) for b in balances], counts),
        )
    else:
        stamp = now_text(now)
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
    if is_pg(conn):
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
    pg = is_pg(conn)
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
    computed = {
        "charge_basis": rec.basis,
        "status": status,
        "ledger_entry_id": entry_id,
        "created_at": rec.micros,
        "metadata": np.array(rec.metadata, dtype=object),
    }
    events = {c: computed[c] if c in computed else getattr(rec, c) for c in EVENT_COLUMNS}
    if pg:
        copy_rows(conn, "ledger_entries", ledger)
        copy_rows(conn, "usage_events", events)
    else:
        insert_rows(conn, "ledger_entries", ledger)
        insert_rows(conn, "usage_events", events)
    upsert_rollups(conn, rollup_input(rec))
    add_usage_entries(
        conn, rec.account_id[debited], rec.day[debited], ids, -rec.price[debited],
        rec.micros[debited],
    )  # fmt: skip


SQLITE_CACHE_KIB = 256 * 1024  # page cache for bulk writes (SQLite's default is 2 MiB)


def rollup_input(rec: Records) -> pd.DataFrame:
    """The accepted events as `rollups.upsert_rollups` takes them."""
    keys = [api_key_of_json(m) for m in rec.metadata]
    return pd.DataFrame(
        {name: keys if name == "api_key" else getattr(rec, name) for name in ROLLUP_INPUT}
    )


def _by_account(rec: Records) -> Records:
    codes, _ = pd.factorize(rec.account_id, sort=True)
    order = np.argsort(codes, kind="stable")
    values: dict[str, Any] = {
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
    if is_pg(conn):
        rows = conn.exec_driver_sql(
            "SELECT nextval(pg_get_serial_sequence('ledger_entries', 'id')) "
            "FROM generate_series(1, %s)",
            (n,),
        )
        return sorted(int(r[0]) for r in rows)
    # SQLite: the write lock is ours (BEGIN IMMEDIATE); INTEGER PRIMARY KEY ids are max + 1.
    top = conn.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM ledger_entries").scalar_one()
    return list(range(int(top) + 1, int(top) + 1 + n))
