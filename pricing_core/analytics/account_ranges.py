"""Per-account sums over a date range, from month totals and edge days.

A 30-day ranking summed every account-day of the range from `account_daily`; here a
month the range mostly covers is read from `account_monthly` (one row per account),
corrected by the days of it outside the range (`domain.periods.month_pieces`), so a
ranking reads about two rows per account however long the range.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import and_, func, or_, select, union_all

from pricing_core.adapters.schema import account_daily
from pricing_core.adapters.schema_rollups import account_monthly
from pricing_core.domain.periods import month_pieces

SUMS = tuple(c.name for c in account_monthly.c if c.name not in ("account_id", "month"))


def account_totals(start: date, end: date, *, sums: Sequence[str] = SUMS) -> Any:
    """A subquery of (account_id, *sums) over the local days [start, end], one row per
    account with usage in the range (`requests` > 0), exact: the same totals as summing
    `account_daily` over the range. Sums of money are NanoUSD (Decimal USD).
    Raises: InvalidUsage for a reversed or too-long range."""
    pieces = month_pieces(start, end)
    m, d = account_monthly.c, account_daily.c
    wanted = list(dict.fromkeys(("requests", *sums)))  # requests: to drop empty results
    parts = []
    if pieces.months:
        parts.append(
            select(m.account_id, *(m[s] for s in wanted)).where(m.month.in_(pieces.months))
        )
    for spans, negate in ((pieces.add, False), (pieces.subtract, True)):
        if spans:
            values = ((-d[s] if negate else d[s]).label(s) for s in wanted)
            parts.append(
                select(d.account_id, *values).where(
                    or_(*(and_(d.day >= lo, d.day <= hi) for lo, hi in spans))
                )
            )
    rows = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
    requests = func.sum(rows.c.requests)
    return (
        select(rows.c.account_id, *(func.sum(rows.c[s]).label(s) for s in sums))
        .group_by(rows.c.account_id)
        .having(requests > 0)
        .subquery()
    )
