"""The admin Integrity page's checks, in one place.

- `verify_ledger` over all wallets (balance == sum of entries, held == active holds,
  the balance chain, events == ledger entries, rollups == events);
- price catalog staleness (the genai-prices snapshot, the last operator change);
- counts of rejected API requests and failed webhooks (`counters`), and the size of
  the unpriced-usage queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine, func, select

from .admin_prices import CatalogStaleness, catalog_staleness
from .auth import Principal, require_admin
from .config import get_settings
from .counters import Counter, counter_totals
from .integrity import LedgerReport, verify_ledger
from .storage import usage_events


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    """Everything the Integrity page shows (except Stripe reconciliation, which calls
    Stripe and runs on request)."""

    checked_at: datetime
    ledger: LedgerReport
    staleness: CatalogStaleness
    since: date  # counters cover since..today (local days)
    api_rejected: int
    webhook_failed: int
    unpriced_events: int


def integrity_report(
    engine: Engine, principal: Principal, *, days: int = 7, now: datetime | None = None
) -> IntegrityReport:
    """Run `verify_ledger` and gather the other health figures (counters over the last
    `days` local days). Read-only. Raises: PermissionDenied.
    """
    require_admin(principal)
    at = now or datetime.now(UTC)
    today = at.astimezone(get_settings().tz).date()
    since = today - timedelta(days=max(1, int(days)) - 1)
    counts = counter_totals(engine, principal, since=since, until=today)
    e = usage_events.c
    with engine.connect() as conn:
        unpriced = conn.execute(
            select(func.count()).select_from(usage_events).where(e.status == "unpriced")
        ).scalar_one()
    return IntegrityReport(
        at,
        verify_ledger(engine),
        catalog_staleness(engine, principal, now=at),
        since,
        counts[str(Counter.API_REJECTED)],
        counts[str(Counter.WEBHOOK_FAILED)],
        int(unpriced),
    )
