"""Spend in a period: priced usage by local calendar day (from the `usage_daily`
rollup), active holds, and request counts, for an account, a user or an operation.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import holds, usage_daily
from pricing_core.domain.periods import Period
from pricing_core.limits.rules import ALL_OPERATIONS


def spend_on(
    conn: Connection,
    *,
    account_id: str,
    period: Period,
    user_id: str | None = None,
    operation: str | None = None,
    include_holds: bool = True,
) -> Decimal:
    """Decimal USD spent in `period` (priced usage by local calendar day) plus, unless
    `include_holds` is False, every active hold, by account [, user] [, operation]."""
    d = usage_daily.c
    stmt = select(func.coalesce(func.sum(d.price), 0)).where(
        d.account_id == account_id, d.day >= period.first_day, d.day < period.end_day
    )
    if user_id:
        stmt = stmt.where(d.user_id == user_id)
    if operation and operation != ALL_OPERATIONS:
        stmt = stmt.where(d.operation == operation)
    total = _usd(conn.execute(stmt).scalar_one())
    if include_holds:
        total += held_on(conn, account_id=account_id, user_id=user_id, operation=operation)
    return total


def held_on(
    conn: Connection, *, account_id: str, user_id: str | None = None, operation: str | None = None
) -> Decimal:
    """Decimal USD in active holds of the account [, user] [, operation]."""
    h = holds.c
    stmt = select(func.coalesce(func.sum(h.amount), 0)).where(
        h.account_id == account_id, h.status == "active"
    )
    if user_id:
        stmt = stmt.where(h.user_id == user_id)
    if operation and operation != ALL_OPERATIONS:
        stmt = stmt.where(h.operation == operation)
    return _usd(conn.execute(stmt).scalar_one())


def requests_on(conn: Connection, *, account_id: str, user_id: str, period: Period) -> int:
    """Requests of `user_id` recorded in `period` plus its active holds."""
    d, h = usage_daily.c, holds.c
    recorded = conn.execute(
        select(func.coalesce(func.sum(d.requests), 0)).where(
            d.account_id == account_id,
            d.user_id == user_id,
            d.day >= period.first_day,
            d.day < period.end_day,
        )
    ).scalar_one()
    pending = conn.execute(
        select(func.count()).where(
            h.account_id == account_id, h.user_id == user_id, h.status == "active"
        )
    ).scalar_one()
    return int(recorded) + int(pending)


def _usd(value: Any) -> Decimal:
    # SUM over a NanoUSD column is converted by the column type: Decimal USD.
    if not isinstance(value, Decimal):
        raise TypeError(f"expected Decimal USD from the database, got {value!r}")
    return value
