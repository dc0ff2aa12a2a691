"""Operational counters: how many API requests were rejected, how many webhooks
failed, per calendar day (configured zone). One row per (name, day), incremented with
an upsert, so counting never grows with traffic and never blocks the caller for long.

Callers (the REST API's error handlers, the Stripe webhook route) call
`count_event(engine, Counter.API_REJECTED, detail=...)` when they refuse a request;
the admin Integrity page reads `counter_totals`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from pricing_core.adapters.schema import ops_counters
from pricing_core.adapters.storage import dialect_insert, run_write
from pricing_core.config import get_settings
from pricing_core.domain.principal import Principal, require_admin


class Counter(StrEnum):
    API_REJECTED = "api_rejected"  # an API request refused: bad key, bad input, 402, 429...
    WEBHOOK_FAILED = "webhook_failed"  # a Stripe webhook refused (signature) or failed


def count_event(
    engine: Engine, name: str, *, detail: str | None = None, now: datetime | None = None
) -> bool:
    """Add one to today's count of `name`, remembering the latest detail (truncated to
    500 characters; never put secrets in it). Counting must not turn a refusal into a
    crash: a database error is swallowed and False returned.
    """
    at = now or datetime.now(UTC)
    day = at.astimezone(get_settings().tz).date()
    text = None if detail is None else str(detail)[:500]
    c = ops_counters.c

    def work(conn):  # type: ignore[no-untyped-def]
        stmt = dialect_insert(conn, ops_counters).values(
            name=str(name)[:64], day=day, count=1, last_at=at, last_detail=text
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[c.name, c.day],
                set_={"count": c.count + 1, "last_at": at, "last_detail": text},
            )
        )

    try:
        run_write(engine, work)
    except SQLAlchemyError:
        return False
    return True


def counter_totals(
    engine: Engine, principal: Principal, *, since: date, until: date
) -> dict[str, int]:
    """Counts per counter name over the local days since..until (inclusive); every
    `Counter` is present (0 if nothing happened). Raises: PermissionDenied."""
    require_admin(principal)
    c = ops_counters.c
    totals = {str(name): 0 for name in Counter}
    with engine.connect() as conn:
        for name, count in conn.execute(
            select(c.name, func.sum(c.count)).where(c.day >= since, c.day <= until).group_by(c.name)
        ):
            totals[name] = int(count or 0)
    return totals
