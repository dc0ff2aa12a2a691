"""Low-balance notifications, once per crossing (`adapters.outbox`).

A debit that takes the balance from at or above `PRICING_LOW_BALANCE_USD` ($1.00) to
below it enqueues one `low_balance` notification (and likewise for
`PRICING_CRITICAL_BALANCE_USD`, $0.10, and for each low-balance line a user of the
account chose on the Notifications page), in the debit's transaction. Its key names
the last ledger entry that put the balance at or above the line (the crossing's
"arming" entry), so however many concurrent charges find the balance low, one
notification exists for this crossing; a top-up above the line arms the next.

The users' own lines are read once a minute per account and process (`CACHE_SECONDS`):
a changed line applies to charges within a minute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.outbox import Kind, enqueue_on
from pricing_core.adapters.schema import ledger_entries, users
from pricing_core.adapters.schema_notify import notification_preferences
from pricing_core.config import get_settings
from pricing_core.domain.money import usd_to_nanos

CACHE_SECONDS = 60
_custom: dict[tuple[str, str], tuple[float, tuple[Decimal, ...]]] = {}


@dataclass(frozen=True, slots=True)
class Line:
    """A balance line: its kind, amount (Decimal USD), and whether a user chose it."""

    kind: Kind
    amount: Decimal
    custom: bool = False


def custom_lines_on(conn: Connection, account_id: str) -> tuple[Decimal, ...]:
    """The low-balance lines the account's users chose (cached `CACHE_SECONDS`)."""
    cached = _fresh(str(conn.engine.url), account_id)
    if cached is not None:
        return cached
    p, u = notification_preferences.c, users.c
    found = tuple(
        sorted(
            conn.execute(
                select(p.threshold)
                .distinct()
                .join(users, u.id == p.user_id)
                .where(
                    u.account_id == account_id,
                    p.kind == str(Kind.LOW_BALANCE),
                    p.threshold.is_not(None),
                )
            ).scalars()
        )
    )
    _custom[(str(conn.engine.url), account_id)] = (time.monotonic() + CACHE_SECONDS, found)
    return found


def _fresh(url: str, account_id: str) -> tuple[Decimal, ...] | None:
    cached = _custom.get((url, account_id))
    return cached[1] if cached is not None and cached[0] > time.monotonic() else None


def forget_custom_lines(account_id: str | None = None) -> None:
    """Drop the cached lines (of one account, or all): after a user changes theirs."""
    for key in [k for k in _custom if account_id is None or k[1] == account_id]:
        _custom.pop(key, None)


def default_line_nanos() -> list[int]:
    """The default lines (settings) in nano-USD, for the server-side charge function,
    which adds the account's own lines (its users' and the auto top-up threshold) in
    its own statement (migration 0020) and hands a debit across any to the general
    path."""
    return [usd_to_nanos(line.amount) for line in _lines(())]


def lines_on(conn: Connection, account_id: str) -> tuple[Line, ...]:
    return _lines(custom_lines_on(conn, account_id))


def _lines(custom: tuple[Decimal, ...]) -> tuple[Line, ...]:
    """The default lines (settings), then the users' own."""
    settings = get_settings()
    return (
        Line(Kind.LOW_BALANCE, settings.low_balance_usd),
        Line(Kind.CRITICAL_BALANCE, settings.critical_balance_usd),
        *(Line(Kind.LOW_BALANCE, amount, custom=True) for amount in custom),
    )


def note_crossings_on(
    conn: Connection, account_id: str, *, before: Decimal, after: Decimal, now: datetime
) -> None:
    """Enqueue the balance notifications a debit from `before` to `after` (Decimal USD)
    crossed, inside the debit's transaction; once per crossing of each line."""
    le = ledger_entries.c
    for line in lines_on(conn, account_id):
        if not before >= line.amount > after:
            continue
        armed_by = conn.execute(
            select(func.max(le.id)).where(
                le.account_id == account_id, le.amount > 0, le.balance_after >= line.amount
            )
        ).scalar()
        which = f"{line.amount}:" if line.custom else ""
        enqueue_on(
            conn,
            key=f"{line.kind}:{account_id}:{which}{armed_by or 0}",
            kind=line.kind,
            account_id=account_id,
            payload={"balance": str(after), "threshold": str(line.amount), "custom": line.custom},
            now=now,
        )
