"""Low-balance notifications, once per crossing (`adapters.outbox`).

A debit that takes the balance from at or above `PRICING_LOW_BALANCE_USD` ($1.00) to
below it enqueues one `low_balance` notification (and likewise for
`PRICING_CRITICAL_BALANCE_USD`, $0.10), in the debit's transaction. Its key names the
last ledger entry that put the balance at or above the threshold (the crossing's
"arming" entry), so however many concurrent charges find the balance low, one
notification exists for this crossing; a top-up above the threshold arms the next.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.outbox import Kind, enqueue_on
from pricing_core.adapters.schema import ledger_entries
from pricing_core.config import get_settings


def thresholds() -> tuple[tuple[Kind, Decimal], ...]:
    settings = get_settings()
    return (
        (Kind.LOW_BALANCE, settings.low_balance_usd),
        (Kind.CRITICAL_BALANCE, settings.critical_balance_usd),
    )


def crosses(before: Decimal, after: Decimal) -> bool:
    """Whether a change from `before` to `after` (Decimal USD) crosses a threshold
    downwards (a cheap test before any database work)."""
    return any(before >= line > after for _, line in thresholds())


def note_crossings_on(
    conn: Connection, account_id: str, *, before: Decimal, after: Decimal, now: datetime
) -> None:
    """Enqueue the low/critical-balance notifications a debit from `before` to `after`
    (Decimal USD) crossed, inside the debit's transaction; once per crossing."""
    le = ledger_entries.c
    for kind, line in thresholds():
        if not before >= line > after:
            continue
        armed_by = conn.execute(
            select(func.max(le.id)).where(
                le.account_id == account_id, le.amount > 0, le.balance_after >= line
            )
        ).scalar()
        enqueue_on(
            conn,
            key=f"{kind}:{account_id}:{armed_by or 0}",
            kind=kind,
            account_id=account_id,
            payload={"balance": str(after), "threshold": str(line)},
            now=now,
        )
