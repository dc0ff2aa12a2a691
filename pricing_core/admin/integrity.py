"""The admin Integrity page's checks, in one place.

- `ledger_check`: `verify_ledger` over all wallets (balance == sum of entries, held ==
  active holds, the balance chain, events == ledger entries, rollups == events). It
  reads every row of the ledger, events and rollups, so it runs on request, not on
  every page render;
- price catalog staleness (the genai-prices snapshot, the last operator change);
- counts of rejected API requests and failed webhooks (`counters`), and the size of
  the unpriced-usage queue;
- Stripe reconciliation (`stripe_reconciliation`), on request: it calls Stripe;
- the gradual rollout's cohorts (`rollout_report`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import stripe
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from pricing_core.adapters.audit import actor_of, write_audit
from pricing_core.adapters.counters import Counter, counter_totals
from pricing_core.adapters.storage import run_write
from pricing_core.analytics.prices import CatalogStaleness, catalog_staleness
from pricing_core.analytics.warehouse import SyncStatus, sync_status
from pricing_core.billing.reconcile import ReconcileReport, reconcile
from pricing_core.catalog.price_book import get_price_book
from pricing_core.catalog.provider_shapes import ShapeResult, check_provider_shapes
from pricing_core.config import get_settings
from pricing_core.domain.principal import Principal, require_admin
from pricing_core.domain.rollout import Stage
from pricing_core.ledger.integrity import LedgerReport, verify_ledger
from pricing_core.limits.rollout import CohortRow, cohorts
from pricing_core.metering.queue import count_unpriced


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    """The Integrity page's cheap figures (the ledger check and Stripe reconciliation
    run on request)."""

    checked_at: datetime
    staleness: CatalogStaleness
    since: date  # counters cover since..today (local days)
    api_rejected: int
    webhook_failed: int
    unpriced_events: int
    warehouse: SyncStatus | None  # None: no ClickHouse copy configured


def integrity_report(
    engine: Engine, principal: Principal, *, days: int = 7, now: datetime | None = None
) -> IntegrityReport:
    """Catalog staleness, counters over the last `days` local days, the unpriced
    queue's size and the ClickHouse copy's lag. Read-only. Raises: PermissionDenied,
    WarehouseError.
    """
    require_admin(principal)
    at = now or datetime.now(UTC)
    today = at.astimezone(get_settings().tz).date()
    since = today - timedelta(days=max(1, int(days)) - 1)
    counts = counter_totals(engine, principal, since=since, until=today)
    with engine.connect() as conn:
        unpriced = count_unpriced(conn)
    return IntegrityReport(
        at,
        catalog_staleness(engine, principal, now=at),
        since,
        counts[str(Counter.API_REJECTED)],
        counts[str(Counter.WEBHOOK_FAILED)],
        unpriced,
        sync_status(engine),
    )


def ledger_check(engine: Engine, principal: Principal) -> LedgerReport:
    """`verify_ledger` for an admin: every invariant over every wallet, entry, event
    and rollup (a full read of the ledger). Read-only. Raises: PermissionDenied."""
    require_admin(principal)
    return verify_ledger(engine)


def stripe_reconciliation(
    engine: Engine,
    principal: Principal,
    *,
    since: datetime | None,
    fix: bool = False,
    client: stripe.StripeClient | None = None,
    now: datetime | None = None,
) -> ReconcileReport:
    """`reconcile.reconcile` for an admin: Stripe's credit-pack Checkout Sessions
    created since `since` against the ledger. With `fix`, paid-but-not-credited
    sessions are fulfilled (exactly once) and each fix is written to `audit_log`.

    Returns: ReconcileReport. Raises: PermissionDenied, ConfigurationError,
    StripeUnavailable.
    """
    require_admin(principal)
    at = now or datetime.now(UTC)
    report = reconcile(engine, since=since, fix=fix, client=client, now=at)
    fixed = [d for d in report.discrepancies if d.fixed]
    if fixed:

        def audit(conn: Connection) -> None:
            for d in fixed:
                write_audit(
                    conn,
                    actor=actor_of(principal),
                    action="stripe.reconcile_fix",
                    now=at,
                    account_id=d.account_id,
                    target=f"checkout_session:{d.session_id}",
                    after={"finding": str(d.finding), "detail": d.detail},
                    reason="Stripe reconciliation: paid but not credited",
                )

        run_write(engine, audit)
    return report


@dataclass(frozen=True, slots=True)
class RolloutReport:
    """Who is in which cohort of the gradual rollout (`limits.rollout`): the settings as
    written, how many accounts are at each stage, and the newest accounts' rows."""

    enforcement: str  # e.g. "created_after:2026-12-01, grace 7 days" or "off"
    billing: str
    rows: list[CohortRow]  # the newest ROLLOUT_ROWS accounts
    stages: dict[Stage, int]  # accounts at each enforcement stage
    billing_on: int
    accounts: int

    def count(self, stage: Stage) -> int:
        return self.stages.get(stage, 0)


ROLLOUT_ROWS = 500


def rollout_report(
    engine: Engine, principal: Principal, *, now: datetime | None = None
) -> RolloutReport:
    """The rollout cohorts for the Integrity page: counts over every account, rows for
    the newest ROLLOUT_ROWS. Read-only. Raises: PermissionDenied."""
    require_admin(principal)
    settings = get_settings()
    enforcement = (
        f"{settings.enforcement_rollout}, grace {settings.enforcement_grace_days} days"
        if settings.enable_budget_enforcement
        else "off"
    )
    billing = settings.billing_rollout if settings.enable_billing else "off"
    rows, stages, billing_on, total = cohorts(
        engine, now=now or datetime.now(UTC), limit=ROLLOUT_ROWS
    )
    return RolloutReport(enforcement, billing, rows, stages, billing_on, total)


def provider_shape_report(engine: Engine, principal: Principal) -> list[ShapeResult]:
    """The provider-shape table (`catalog.provider_shapes`) priced with this
    database's price book: each published-price payload with our provider cost.
    Raises: PermissionDenied."""
    require_admin(principal)
    return check_provider_shapes(get_price_book(engine))
