"""Billing records: one per account and calendar month (configured zone), the figures
a statement shows, generated once by a job from the ledger and the rollups.

For a month [start, end):

- balances: `opening_balance` is the sum of the account's ledger entries posted before
  `start`, `closing_balance` those before `end` (a wallet's balance is the sum of its
  entries), so opening + the month's entries = closing, exactly;
- the month's entries by kind: `credits_bought` (purchase), `credits_granted` (grant,
  bonus), `refunds` (refund, negative), `adjustments` (adjustment, reversal, expiry),
  and usage charges, split into `overage` (`plan_usage`) and `payg_usage` (the rest);
- `messages`, tokens and `provider_cost` from `account_daily` (local days);
- the plan in effect at the month's end (or start), its fee (the account's own fee
  for a custom plan; none for a demo switch, which is free) and cap; `cap_applied`
  when fee + overage reached the cap;
- `total` = plan fee + overage + pay-as-you-go usage; `paid` when nothing is owed at
  the month's end (closing balance >= 0; credit is prepaid, the plan fee is
  collected by Stripe's subscription invoice).

`generate_billing_records` writes the months that have ended and have no record yet
(insert or nothing per (account, period)): running it again adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, and_, func, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import account_daily, accounts, ledger_entries
from pricing_core.adapters.schema_billing import plan_usage
from pricing_core.adapters.schema_payments import billing_records
from pricing_core.adapters.storage import dialect_insert, run_write
from pricing_core.config import get_settings
from pricing_core.domain.money import ZERO
from pricing_core.domain.periods import month_bounds, month_of
from pricing_core.domain.plans import PAYG_CODE
from pricing_core.domain.principal import Principal, require_admin, target_account
from pricing_core.ledger.wallets import EntryKind
from pricing_core.plans.subscriptions import SubscriptionSource, plan_on, subscription_on

GROUPS = {
    "credits_bought": (EntryKind.PURCHASE,),
    "credits_granted": (EntryKind.GRANT, EntryKind.BONUS),
    "refunds": (EntryKind.REFUND,),
    "adjustments": (EntryKind.ADJUSTMENT, EntryKind.REVERSAL, EntryKind.EXPIRY),
    "usage": (EntryKind.USAGE,),
}


@dataclass(frozen=True, slots=True)
class BillingRecord:
    """One account's month. Money: Decimal USD (exact); `period` "YYYY-MM"."""

    account_id: str
    account_name: str
    period: str
    plan_code: str
    plan_version: int | None
    messages: int
    input_tokens: int
    output_tokens: int
    provider_cost: Decimal
    plan_fee: Decimal
    overage: Decimal
    monthly_cap: Decimal | None
    cap_applied: bool
    payg_usage: Decimal
    credits_bought: Decimal
    credits_granted: Decimal
    refunds: Decimal
    adjustments: Decimal
    opening_balance: Decimal
    closing_balance: Decimal
    total: Decimal
    paid: bool
    generated_at: datetime

    @property
    def usage(self) -> Decimal:
        """Decimal USD charged for usage: pay-as-you-go plus overage."""
        return self.payg_usage + self.overage


def compute_record(conn: Connection, account_id: str, period: str) -> dict[str, Any]:
    """The record's columns for one account and month (see the module docstring)."""
    tz = get_settings().tz
    start, end = month_bounds(period, tz)
    le = ledger_entries.c

    def balance_before(moment: datetime) -> Decimal:
        total = conn.execute(
            select(func.coalesce(func.sum(le.amount), 0)).where(
                le.account_id == account_id, le.created_at < moment
            )
        ).scalar_one()
        return Decimal(total)

    by_kind = dict(
        conn.execute(
            select(le.kind, func.sum(le.amount))
            .where(le.account_id == account_id, le.created_at >= start, le.created_at < end)
            .group_by(le.kind)
        ).all()
    )
    sums = {
        name: sum((Decimal(by_kind.get(str(k)) or 0) for k in kinds), ZERO)
        for name, kinds in GROUPS.items()
    }
    d = account_daily.c
    usage = conn.execute(
        select(
            func.coalesce(func.sum(d.requests), 0),
            func.coalesce(func.sum(d.input_tokens), 0),
            func.coalesce(func.sum(d.output_tokens), 0),
            func.coalesce(func.sum(d.provider_cost), 0),
        ).where(
            d.account_id == account_id,
            d.day >= start.date(),
            d.day < end.date(),
        )
    ).one()
    overage = (
        conn.execute(
            select(plan_usage.c.overage).where(
                plan_usage.c.account_id == account_id, plan_usage.c.month == period
            )
        ).scalar()
        or ZERO
    )
    at = end - timedelta(microseconds=1)
    sub = subscription_on(conn, account_id, at) or subscription_on(conn, account_id, start)
    plan = plan_on(conn, account_id, sub.started_at if sub else at)
    billed = sub is not None and sub.source != SubscriptionSource.DEMO  # demo plans are free
    fee = (plan.monthly_fee or ZERO) if billed else ZERO
    charged = -sums["usage"]
    closing = balance_before(end)
    return {
        "account_id": account_id,
        "period": period,
        "plan_code": sub.plan_code if sub else PAYG_CODE,
        "plan_version": sub.plan_version if sub else None,
        "messages": int(usage[0]),
        "input_tokens": int(usage[1]),
        "output_tokens": int(usage[2]),
        "provider_cost": usage[3],
        "plan_fee": fee,
        "overage": overage,
        "monthly_cap": plan.monthly_cap if sub else None,
        "cap_applied": sub is not None
        and plan.monthly_cap is not None
        and fee + overage >= plan.monthly_cap,
        "payg_usage": charged - overage,
        "credits_bought": sums["credits_bought"],
        "credits_granted": sums["credits_granted"],
        "refunds": sums["refunds"],
        "adjustments": sums["adjustments"],
        "opening_balance": balance_before(start),
        "closing_balance": closing,
        "total": fee + charged,
        "paid": closing >= 0,
    }


def periods_with_activity(conn: Connection, *, before: datetime) -> list[tuple[str, str]]:
    """(account id, period) of every month that ended before `before`, from each
    account's first ledger entry or usage day to its last, oldest first."""
    tz = get_settings().tz
    le, d = ledger_entries.c, account_daily.c
    spans: dict[str, tuple[str, str]] = {}
    for account_id, first, last in conn.execute(
        select(le.account_id, func.min(le.created_at), func.max(le.created_at))
        .where(le.created_at < before)
        .group_by(le.account_id)
    ):
        spans[account_id] = (month_of(first, tz), month_of(last, tz))
    for account_id, first_day, last_day in conn.execute(
        select(d.account_id, func.min(d.day), func.max(d.day)).group_by(d.account_id)
    ):
        months = (first_day.strftime("%Y-%m"), last_day.strftime("%Y-%m"))
        known = spans.get(account_id, months)
        spans[account_id] = (min(known[0], months[0]), max(known[1], months[1]))
    pairs = []
    for account_id, (period, last) in spans.items():
        while period <= last:
            end = month_bounds(period, tz)[1]
            if end > before:
                break
            pairs.append((account_id, period))
            period = month_of(end, tz)
    return sorted(pairs, key=lambda p: (p[1], p[0]))


def generate_billing_records(
    engine: Engine, *, now: datetime | None = None, account_id: str | None = None
) -> int:
    """Write the billing record of every ended month with ledger activity that has
    none yet, one account-month per transaction. Returns the number written (0 on a
    second run)."""
    at = now or datetime.now(UTC)
    with engine.connect() as conn:
        pairs = periods_with_activity(conn, before=at)
        done = set(
            conn.execute(select(billing_records.c.account_id, billing_records.c.period)).all()
        )
    written = 0
    for account, period in pairs:
        if (account, period) in done or account_id not in (None, account):
            continue

        def work(conn: Connection, account: str = account, period: str = period) -> bool:
            values = compute_record(conn, account, period)
            inserted = conn.execute(
                dialect_insert(conn, billing_records)
                .values(**values, generated_at=at)
                .on_conflict_do_nothing(index_elements=["account_id", "period"])
                .returning(billing_records.c.period)
            ).first()
            return inserted is not None

        written += run_write(engine, work)
    return written


def _record(row: Any) -> BillingRecord:
    return BillingRecord(**{f: getattr(row, f) for f in BillingRecord.__slots__})  # type: ignore[attr-defined]


def _query() -> Any:
    b = billing_records.c
    return (
        select(billing_records, accounts.c.name.label("account_name"))
        .select_from(billing_records.join(accounts, accounts.c.id == b.account_id))
        .order_by(b.period.desc(), b.account_id)
    )


def list_billing_records(
    engine: Engine, viewer: Principal, *, account_id: str | None = None
) -> list[BillingRecord]:
    """The viewer's account's billing records (admins: `account_id`'s), newest month
    first. Raises: PermissionDenied."""
    account_id = target_account(viewer, account_id)
    with engine.connect() as conn:
        rows = conn.execute(_query().where(billing_records.c.account_id == account_id))
        return [_record(r) for r in rows]


def get_billing_record(
    engine: Engine, viewer: Principal, period: str, *, account_id: str | None = None
) -> BillingRecord | None:
    """One month's record of the viewer's account (admins: `account_id`'s), or None.
    Raises: PermissionDenied."""
    account_id = target_account(viewer, account_id)
    b = billing_records.c
    with engine.connect() as conn:
        row = conn.execute(
            _query().where(and_(b.account_id == account_id, b.period == period))
        ).first()
    return _record(row) if row is not None else None


def all_billing_records(
    engine: Engine, viewer: Principal, *, period: str | None = None, limit: int = 5000
) -> list[BillingRecord]:
    """Every account's billing records (admins), newest month first; one `period`
    when given. Raises: PermissionDenied."""
    require_admin(viewer)
    query = _query().limit(limit)
    if period is not None:
        query = query.where(billing_records.c.period == period)
    with engine.connect() as conn:
        return [_record(r) for r in conn.execute(query)]
