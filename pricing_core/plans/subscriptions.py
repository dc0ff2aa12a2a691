"""Subscriptions: the plans on offer (versioned rows), each account's plan over time
(default pay-as-you-go), per-account fees for custom plans, and what a plan decides
about each usage charge (`apply_plan_on`, called by `record.record_on`).

While an account is on a plan, the calendar month's first N messages (N = the plan's
included messages) are charged 0 to the wallet and later ones the overage rate, never
more than the monthly cap minus the fee in total. The monthly fee itself is collected
by Stripe (`plans.billing`), not from the wallet.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, func, insert, or_, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.audit import write_audit
from pricing_core.adapters.schema_billing import plan_account_fees, plans, subscriptions
from pricing_core.domain.plans import (
    PAYG,
    Plan,
    PlanError,
    with_fee,
)
from pricing_core.ledger.wallets import idempotent_write

PLAN_TAG = ";plan:"  # appended to an event's price_version: ";plan:starter@1"


class UnknownPlan(PlanError):
    """No such plan (code, or code and version) is on offer."""


class SubscriptionSource(StrEnum):
    DEMO = "demo"  # switched in demo mode, no payment
    STRIPE = "stripe"  # from Stripe subscription webhooks
    ADMIN = "admin"  # set by an operator


@dataclass(frozen=True, slots=True)
class Subscription:
    """An account on a plan version from `started_at` until `ended_at` (None: now)."""

    id: int
    account_id: str
    plan_code: str
    plan_version: int
    source: str
    started_at: datetime
    ended_at: datetime | None
    stripe_subscription_id: str | None
    stripe_event_created: int | None


def _plan(row: Any) -> Plan:
    return Plan(
        code=row.code,
        name=row.name,
        version=row.version,
        monthly_fee=row.monthly_fee,
        included_messages=row.included_messages,
        overage_rate=row.overage_rate,
        monthly_cap=row.monthly_cap,
    )


def _subscription(row: Any) -> Subscription:
    return Subscription(**{f: getattr(row, f) for f in Subscription.__slots__})  # type: ignore[attr-defined]


def list_plans_on(conn: Connection, *, at: datetime) -> list[Plan]:
    """The plans on offer at `at`: per code, the newest active version in effect,
    in display order. Pay-as-you-go is not a row (see `plans.PAYG`)."""
    p = plans.c
    rows = conn.execute(
        select(plans)
        .where(p.active.is_(True), p.effective_from <= at)
        .order_by(p.position, p.code, p.version.desc())
    ).all()
    newest: dict[str, Any] = {}
    for row in rows:
        newest.setdefault(row.code, row)
    return [_plan(r) for r in newest.values()]


def get_plan_on(conn: Connection, code: str, version: int) -> Plan:
    """One plan version (immutable). Raises: UnknownPlan."""
    row = conn.execute(
        select(plans).where(plans.c.code == code, plans.c.version == version)
    ).first()
    if row is None:
        raise UnknownPlan(f"unknown plan {code!r} version {version}")
    return _plan(row)


def account_fees_on(conn: Connection, account_id: str) -> dict[str, Decimal]:
    """Fees an admin set for this account, by plan code (Decimal USD per month)."""
    f = plan_account_fees.c
    return dict(
        conn.execute(select(f.plan_code, f.monthly_fee).where(f.account_id == account_id)).all()
    )


def account_plans(engine: Engine, account_id: str, *, now: datetime | None = None) -> list[Plan]:
    """The plans this account can choose, with its own fees applied (a custom plan
    without one keeps `monthly_fee=None`: "talk to us")."""
    at = now or datetime.now(UTC)
    with engine.connect() as conn:
        fees = account_fees_on(conn, account_id)
        return [with_fee(p, fees.get(p.code)) for p in list_plans_on(conn, at=at)]


def subscription_on(conn: Connection, account_id: str, at: datetime) -> Subscription | None:
    """The subscription in effect at `at`, or None (pay-as-you-go)."""
    s = subscriptions.c
    row = conn.execute(
        select(subscriptions)
        .where(
            s.account_id == account_id,
            s.started_at <= at,
            or_(s.ended_at.is_(None), s.ended_at > at),
        )
        .order_by(s.started_at.desc(), s.id.desc())
        .limit(1)
    ).first()
    return _subscription(row) if row else None


def plan_on(conn: Connection, account_id: str, at: datetime) -> Plan:
    """The plan (with the account's own fee) in effect at `at`; PAYG if none."""
    sub = subscription_on(conn, account_id, at)
    if sub is None:
        return PAYG
    plan = get_plan_on(conn, sub.plan_code, sub.plan_version)
    return with_fee(plan, account_fees_on(conn, account_id).get(plan.code))


def plan_names_on(conn: Connection, account_ids: list[str], at: datetime) -> dict[str, str]:
    """The name of the plan in effect at `at` for each of `account_ids` (PAYG's name
    for those without a subscription), in one read of `subscriptions` however many
    accounts: a list of accounts must not cost a query per row."""
    s = subscriptions.c
    rows = conn.execute(
        select(s.account_id, s.plan_code, s.plan_version)
        .where(
            s.account_id.in_(account_ids),
            s.started_at <= at,
            or_(s.ended_at.is_(None), s.ended_at > at),
        )
        .order_by(s.account_id, s.started_at, s.id)
    ).all()
    names = dict.fromkeys(account_ids, PAYG.name)
    versions: dict[tuple[str, int], str] = {}
    for account_id, code, version in rows:  # ordered: the latest start wins, as in subscription_on
        if (code, version) not in versions:
            versions[code, version] = get_plan_on(conn, code, version).name
        names[account_id] = versions[code, version]
    return names


def current_plan(engine: Engine, account_id: str, *, now: datetime | None = None) -> Plan:
    """The account's plan now (PAYG if it has no subscription)."""
    with engine.connect() as conn:
        return plan_on(conn, account_id, now or datetime.now(UTC))


def current_subscription(
    engine: Engine, account_id: str, *, now: datetime | None = None
) -> Subscription | None:
    """The account's subscription now (None: pay-as-you-go)."""
    with engine.connect() as conn:
        return subscription_on(conn, account_id, now or datetime.now(UTC))


def plan_to_join(engine: Engine, account_id: str, code: str, *, now: datetime) -> Plan:
    """The plan version a switch to `code` would start (on offer now, with the
    account's fee). Raises: UnknownPlan, PlanError ("talk to us")."""
    with engine.connect() as conn:
        return plan_to_join_on(conn, account_id, code, None, now=now)


def subscription_history(engine: Engine, account_id: str) -> list[Subscription]:
    """Every subscription of the account, oldest first."""
    s = subscriptions.c
    with engine.connect() as conn:
        return [
            _subscription(r)
            for r in conn.execute(
                select(subscriptions).where(s.account_id == account_id).order_by(s.started_at, s.id)
            )
        ]


def publish_plan_version(
    engine: Engine,
    plan: Plan,
    *,
    actor: str,
    reason: str,
    effective_from: datetime | None = None,
    position: int | None = None,
) -> Plan:
    """Publish a new version of a plan (prices are never edited in place): the next
    version number for `plan.code`, on offer from `effective_from` (default now).
    Current subscribers keep the version they are on. Written to the audit log.

    Args:
        plan: the terms; its `version` is ignored (the next one is assigned).
        position: display order (default: the code's previous position, else last).
    Returns: the published Plan. Raises: PlanError (pay-as-you-go, no reason).
    """
    if plan.is_payg:
        raise PlanError("pay-as-you-go is not a plan row and has no versions")
    if not reason or not reason.strip():
        raise PlanError("publishing a plan version needs a reason")
    at = effective_from or datetime.now(UTC)
    p = plans.c

    def work(conn: Connection) -> Plan:
        last = conn.execute(
            select(p.version, p.position).where(p.code == plan.code).order_by(p.version.desc())
        ).first()
        if position is not None:
            order = position
        elif last is not None:
            order = last.position
        else:
            order = (conn.execute(select(func.max(p.position))).scalar_one() or 0) + 1
        published = replace(plan, version=(last.version + 1) if last else 1)
        conn.execute(
            insert(plans).values(
                code=published.code,
                version=published.version,
                name=published.name,
                monthly_fee=published.monthly_fee,
                included_messages=published.included_messages,
                overage_rate=published.overage_rate,
                monthly_cap=published.monthly_cap,
                position=order,
                active=True,
                effective_from=at,
                created_by=actor,
                created_at=datetime.now(UTC),
            )
        )
        write_audit(
            conn,
            actor=actor,
            action="plan.publish",
            now=datetime.now(UTC),
            target=published.key,
            after={
                "name": plan.name,
                "monthly_fee": plan.monthly_fee,
                "included_messages": plan.included_messages,
                "overage_rate": plan.overage_rate,
                "monthly_cap": plan.monthly_cap,
                "effective_from": at,
            },
            reason=reason.strip(),
        )
        return published

    return idempotent_write(engine, work)


def plan_to_join_on(
    conn: Connection, account_id: str, code: str, version: int | None, *, now: datetime
) -> Plan:
    """The plan an account joins: `code` at `version`, or the version on offer at
    `now`, with the account's own fee. Raises: UnknownPlan, PlanError (no agreed fee)."""
    if version is not None:
        plan = get_plan_on(conn, code, version)
    else:
        offered = {p.code: p for p in list_plans_on(conn, at=now)}
        if code not in offered:
            raise UnknownPlan(f"plan {code!r} is not on offer")
        plan = offered[code]
    plan = with_fee(plan, account_fees_on(conn, account_id).get(plan.code))
    if not plan.has_fee:
        raise PlanError(f"plan {code!r} needs a fee agreed for account {account_id!r}: talk to us")
    return plan
