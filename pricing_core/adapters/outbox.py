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
    UNUSUAL_SPEND = "unusual_spend"
    WEEKLY_SUMMARY = "weekly_summary"
    PAYMENT_FAILED = "payment_failed"
    HIGH_COST_REPORT = "high_cost_report"  # admins
    SPEND_ANOMALIES = "spend_anomalies"  # admins
    CATALOG_STALE = "catalog_stale"  # admins
    LEDGER_CHECK_FAILED = "ledger_check_failed"  # admins

    @property
    def for_admins(self) -> bool:
        return self in ADMIN_KINDS

    @property
    def label(self) -> str:
        """What the kind is, for the Notifications page."""
        return LABELS[self]


ADMIN_KINDS = frozenset(
    {Kind.HIGH_COST_REPORT, Kind.SPEND_ANOMALIES, Kind.CATALOG_STALE, Kind.LEDGER_CHECK_FAILED}
)
LABELS = {
    Kind.LOW_BALANCE: "Low balance (below PRICING_LOW_BALANCE_USD, $1.00 by default)",
    Kind.CRITICAL_BALANCE: "Almost out of credit (below $0.10 by default)",
    Kind.BUDGET_THRESHOLD: "Budget alert thresholds reached",
    Kind.UNUSUAL_SPEND: "Unusual spending (the daily rate jumped against your usual)",
    Kind.WEEKLY_SUMMARY: "Weekly usage summary (Mondays)",
    Kind.PAYMENT_FAILED: "A payment failed",
    Kind.HIGH_COST_REPORT: "Admins: the daily high-cost accounts report",
    Kind.SPEND_ANOMALIES: "Admins: accounts whose spending jumped",
    Kind.CATALOG_STALE: "Admins: the price catalog is getting old",
    Kind.LEDGER_CHECK_FAILED: "Admins: the nightly ledger check failed",
}


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
        .returning(notifications.c.id)
    ).first()
    return written is not None
