"""What the scheduled jobs put in the outbox: the daily high-cost report and the
ledger check's failure, for the admins, once per day (`adapters.outbox`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from pricing_core.adapters.outbox import Kind, enqueue_on
from pricing_core.adapters.storage import run_write
from pricing_core.analytics.spend_watch import high_cost_accounts
from pricing_core.config import get_settings
from pricing_core.domain.errors import PricingError
from pricing_core.domain.principal import Principal
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.plans.advice import advise_plan

JOBS_PRINCIPAL = Principal("job:scheduler", "", role="admin")
MAX_LISTED = 500


def high_cost_report(engine: Engine, *, now: datetime) -> str:
    """Enqueue today's report of the accounts that spent at least
    `PRICING_HIGH_COST_USD` (with the month-end projection and the recommended plan),
    once per local day; nothing when no account did. Returns a one-line outcome."""
    day = now.astimezone(get_settings().tz).date()
    found = high_cost_accounts(engine, JOBS_PRINCIPAL, limit=MAX_LISTED, now=now)
    if not found:
        return f"no account spent {get_settings().high_cost_usd} USD or more on {day}"
    listed = []
    for a in found:
        try:
            plan = advise_plan(engine, JOBS_PRINCIPAL, account_id=a.account_id, now=now)
            recommended = plan.recommendation.recommended
        except PricingError:
            recommended = "-"
        listed.append(
            {
                "account_id": a.account_id,
                "name": a.name,
                "spend": str(a.spend_today),
                "projected": str(a.projected_month_end),
                "plan": recommended,
            }
        )
    payload = {"day": day.isoformat(), "threshold": str(get_settings().high_cost_usd),
               "accounts": listed}  # fmt: skip
    written = run_write(
        engine,
        lambda conn: enqueue_on(
            conn, key=f"high_cost:{day}", kind=Kind.HIGH_COST_REPORT, account_id=None,
            payload=payload, now=now,
        ),
    )  # fmt: skip
    return f"{len(listed)} account(s) listed" + ("" if written else " (already sent today)")


def ledger_check(engine: Engine, *, now: datetime) -> str:
    """Verify the whole ledger; on a violation, enqueue one email to the admins per day."""
    report = verify_ledger(engine)
    if report.ok:
        return f"ledger OK: {report.wallets} wallets, {report.entries} entries"
    day = now.astimezone(get_settings().tz).date()
    run_write(
        engine,
        lambda conn: enqueue_on(
            conn, key=f"ledger_check:{day}", kind=Kind.LEDGER_CHECK_FAILED, account_id=None,
            payload={"count": len(report.violations), "violations": list(report.violations[:50])},
            now=now,
        ),
    )  # fmt: skip
    raise RuntimeError(f"{len(report.violations)} ledger violation(s); the admins are emailed")
