"""The notification outbox: `enqueue_on` writes a notification in the caller's
transaction, once per key (`schema_notify.notifications`); `notify` delivers them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.engine import Connection

from pricing_core.adapters.schema_notify import notifications
from pricing_core.adapters.storage import dialect_insert


class Kind(StrEnum):
    """What a notification is about. Admin kinds go to admins only."""

    LOW_BALANCE = "low_balance"
    CRITICAL_BALANCE = "critical_balance"
    BUDGET_THRESHOLD = "budget_threshold"
    HIGH_COST_REPORT = "high_cost_report"  # admins
    LEDGER_CHECK_FAILED = "ledger_check_failed"  # admins

    @property
    def for_admins(self) -> bool:
        return self in (Kind.HIGH_COST_REPORT, Kind.LEDGER_CHECK_FAILED)


def enqueue_on(
    conn: Connection,
    *,
    key: str,
    kind: Kind,
    account_id: str | None,
    payload: Mapping[str, Any],
    now: datetime,
) -> bool:
    """Write a pending notification unless one with `key` exists (then nothing).

    Args: key: unique per (account or admins, kind, period or crossing), at most 200
        characters; payload: JSON-able figures for the templates (amounts as strings).
    Returns: True when this call wrote it."""
    written = conn.execute(
        dialect_insert(conn, notifications)
        .values(
            key=key,
            kind=str(kind),
            account_id=account_id,
            payload=dict(payload),
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["key"])
    )
    return bool(written.rowcount)
