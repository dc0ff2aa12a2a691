"""Subscriptions: the plans on offer (versioned rows), each account's plan over time
(default pay-as-you-go), per-account fees for custom plans, and what a plan decides
about each usage charge (`apply_plan_on`, called by `metering.record_on`).

While an account is on a plan, the calendar month's first N messages (N = the plan's
included messages) are charged 0 to the wallet and later ones the overage rate, never
more than the monthly cap minus the fee in total. The monthly fee itself is collected
by Stripe (`plan_billing`), not from the wallet.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from pricing_core.adapters.audit import write_audit
from pricing_core.adapters.schema import accounts, wallets
from pricing_core.adapters.schema_billing import plan_account_fees, plan_usage, plans, subscriptions
from pricing_core.adapters.storage import dialect_insert, run_write
from pricing_core.config import get_settings
from pricing_core.domain.costing import ChargeBasis, Quote
from pricing_core.domain.errors import UnknownAccount
from pricing_core.domain.money import ZERO, round_nano, to_usd
from pricing_core.domain.periods import month_of
from pricing_core.domain.plans import (
    PAYG,
    PAYG_CODE,
    Plan,
    PlanError,
    explain_plan_charge,
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
        return _plan_to_join(conn, account_id, code, None, now=now)


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


# ---------------------------------------------------------------- switching


def switch_plan_on(
    conn: Connection,
    account_id: str,
    plan_code: str,
    *,
    source: SubscriptionSource,
    now: datetime,
    actor: str | None = None,
    plan_version: int | None = None,
    stripe_subscription_id: str | None = None,
    stripe_customer_id: str | None = None,
    stripe_event_created: int | None = None,
) -> Subscription | None:
    """Put the account on `plan_code` from `now` inside an open write transaction.

    The current subscription (if any) ends at `now`; a new one starts unless the code
    is "payg". Being already on that plan version (and, when given, that Stripe
    subscription) changes nothing. The change is
    written to the audit log.
    Returns: the subscription in effect afterwards (None for pay-as-you-go).
    Raises: UnknownAccount, UnknownPlan, PlanError (a custom plan without an account fee).
    """
    locked = conn.execute(
        select(accounts.c.id).where(accounts.c.id == account_id).with_for_update()
    ).first()
    if locked is None:
        raise UnknownAccount(f"unknown account {account_id!r}")
    current = subscription_on(conn, account_id, now)
    if plan_code == PAYG_CODE:
        target = None
    else:
        target = _plan_to_join(conn, account_id, plan_code, plan_version, now=now)
        same_plan = current is not None and (current.plan_code, current.plan_version) == (
            target.code,
            target.version,
        )
        if same_plan and stripe_subscription_id in (None, current.stripe_subscription_id):
            return current
    if current is None and target is None:
        return None
    if current is not None:
        conn.execute(
            update(subscriptions).where(subscriptions.c.id == current.id).values(ended_at=now)
        )
    new = None
    if target is not None:
        new_id = conn.execute(
            insert(subscriptions)
            .values(
                account_id=account_id,
                plan_code=target.code,
                plan_version=target.version,
                source=str(source),
                started_at=now,
                ended_at=None,
                stripe_subscription_id=stripe_subscription_id,
                stripe_customer_id=stripe_customer_id,
                stripe_event_created=stripe_event_created,
                actor=actor,
                created_at=now,
            )
            .returning(subscriptions.c.id)
        ).scalar_one()
        new = subscription_on(conn, account_id, now)
        assert new is not None and new.id == new_id
    write_audit(
        conn,
        actor=actor or str(source),
        action="plan.switch",
        now=now,
        account_id=account_id,
        target=account_id,
        before={"plan": f"{current.plan_code}@{current.plan_version}" if current else PAYG_CODE},
        after={"plan": target.key if target else PAYG_CODE, "source": str(source)},
    )
    return new


def _plan_to_join(
    conn: Connection, account_id: str, code: str, version: int | None, *, now: datetime
) -> Plan:
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


def switch_plan(
    engine: Engine,
    account_id: str,
    plan_code: str,
    *,
    source: SubscriptionSource,
    actor: str | None = None,
    now: datetime | None = None,
) -> Subscription | None:
    """Switch the account's plan now, in one transaction (demo mode and admins; with
    Stripe configured, paid switches come from webhooks). See `switch_plan_on`."""
    at = now or datetime.now(UTC)
    return run_write(
        engine,
        lambda conn: switch_plan_on(
            conn, account_id, plan_code, source=source, now=at, actor=actor
        ),
    )


def set_account_fee(
    engine: Engine,
    account_id: str,
    plan_code: str,
    fee: object,
    *,
    actor: str,
    reason: str,
    now: datetime | None = None,
) -> Decimal:
    """An admin sets this account's monthly fee for a plan (e.g. Enterprise), with a
    required reason, written to the audit log. Returns: the fee, Decimal USD.
    Raises: PlanError (bad fee, no reason), UnknownPlan, UnknownAccount."""
    try:
        amount = to_usd(fee)
    except ValueError as exc:
        raise PlanError(f"plan fee: {exc}") from None
    if amount < 0 or amount != round_nano(amount):
        raise PlanError(f"plan fee must be >= 0 and whole nano-USD, got {amount}")
    if not reason or not reason.strip():
        raise PlanError("setting an account's plan fee needs a reason")
    at = now or datetime.now(UTC)

    def work(conn: Connection) -> Decimal:
        if conn.execute(select(accounts.c.id).where(accounts.c.id == account_id)).first() is None:
            raise UnknownAccount(f"unknown account {account_id!r}")
        if conn.execute(select(plans.c.code).where(plans.c.code == plan_code)).first() is None:
            raise UnknownPlan(f"unknown plan {plan_code!r}")
        before = account_fees_on(conn, account_id).get(plan_code)
        stmt = dialect_insert(conn, plan_account_fees).values(
            account_id=account_id,
            plan_code=plan_code,
            monthly_fee=amount,
            updated_by=actor,
            updated_at=at,
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[plan_account_fees.c.account_id, plan_account_fees.c.plan_code],
                set_={"monthly_fee": amount, "updated_by": actor, "updated_at": at},
            )
        )
        write_audit(
            conn,
            actor=actor,
            action="plan.fee",
            now=at,
            account_id=account_id,
            target=plan_code,
            before={"monthly_fee": before},
            after={"monthly_fee": amount},
            reason=reason.strip(),
        )
        return amount

    return run_write(engine, work)


# ---------------------------------------------------------------- metering


def counts_as_message(operation: str) -> bool:
    """Whether an operation counts as a plan message (setting
    `plan_message_operations`; default: every metered request)."""
    names = get_settings().message_operations
    return names is None or operation in names


@dataclass(frozen=True, slots=True)
class PlanCharge:
    """A plan's decision about one message: the quote to charge (basis INCLUDED or
    OVERAGE) and what to add to the month's counter once the charge is written."""

    quote: Quote
    account_id: str
    month: str
    payg_price: Decimal


def decide_plan_charge_on(
    conn: Connection, *, account_id: str, operation: str, created_at: datetime, quote: Quote
) -> PlanCharge | None:
    """Let the account's plan decide a metered message's charge. Called by
    `metering.record_on` inside its write transaction, before anything is written;
    writes nothing itself (see `count_plan_message_on`).

    Pay-as-you-go accounts, non-message operations and unpriced or free events get
    None (keep the quote). On a plan (the one in effect at `created_at`), the message
    is the month's next one (calendar month in the configured zone): within the
    included messages it costs 0 (basis INCLUDED), beyond them the overage rate,
    limited so fee + overage never exceeds the monthly cap (basis OVERAGE).
    The account's wallet row is locked first, so concurrent messages are counted
    one after the other (SQLite: the write transaction already is exclusive).
    Returns: PlanCharge or None; the quote's `price_version` gains
    ";plan:<code>@<version>" and its explanation says which case applied.
    """
    if quote.basis not in (ChargeBasis.PAYG, ChargeBasis.FIXED) or not counts_as_message(operation):
        return None
    plan = plan_on(conn, account_id, created_at)
    if plan.is_payg:
        return None
    conn.execute(
        select(wallets.c.account_id).where(wallets.c.account_id == account_id).with_for_update()
    )
    month = month_of(created_at, get_settings().tz)
    u = plan_usage.c
    row = conn.execute(
        select(u.plan_messages, u.overage).where(u.account_id == account_id, u.month == month)
    ).first()
    counted = (row.plan_messages if row else 0) + 1
    overage_so_far = row.overage if row else ZERO
    included = plan.included_messages is None or counted <= plan.included_messages
    price = ZERO
    if not included:
        price = plan.overage_rate
        if plan.monthly_cap is not None:
            room = plan.monthly_cap - (plan.monthly_fee or ZERO) - overage_so_far
            price = max(ZERO, min(price, room))
    decided = replace(
        quote,
        price=price,
        basis=ChargeBasis.INCLUDED if included else ChargeBasis.OVERAGE,
        price_version=f"{quote.price_version}{PLAN_TAG}{plan.key}",
        explanation=explain_plan_charge(
            plan, included=included, price=price, payg_price=quote.price
        ),
    )
    return PlanCharge(decided, account_id, month, quote.price)


def count_plan_message_on(conn: Connection, charge: PlanCharge) -> None:
    """Add a decided message to its month's counter (same transaction, after the
    charge was written, so a refused event is never counted)."""
    stmt = dialect_insert(conn, plan_usage).values(
        account_id=charge.account_id,
        month=charge.month,
        plan_messages=1,
        overage=charge.quote.price,
        payg_value=charge.payg_price,
    )
    u = plan_usage.c
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[u.account_id, u.month],
            set_={
                "plan_messages": u.plan_messages + 1,
                "overage": u.overage + stmt.excluded.overage,
                "payg_value": u.payg_value + stmt.excluded.payg_value,
            },
        )
    )


def explain_plan_event(conn: Connection, row: Any, payg_price: Decimal | None) -> str | None:
    """Re-derive the explanation of a stored INCLUDED/OVERAGE event from the plan
    version named in its `price_version` (None if it names none)."""
    version_text = row.price_version or ""
    if PLAN_TAG not in version_text:
        return None
    code, _, version = version_text.rsplit(PLAN_TAG, 1)[1].partition("@")
    try:
        plan = with_fee(
            get_plan_on(conn, code, int(version)), account_fees_on(conn, row.account_id).get(code)
        )
    except (PlanError, ValueError):
        return None
    return explain_plan_charge(
        plan,
        included=row.charge_basis == ChargeBasis.INCLUDED,
        price=row.price,
        payg_price=payg_price,
    )


def plan_usage_on(conn: Connection, account_id: str, months: list[str]) -> dict[str, Any]:
    """The plan usage counters (plan_messages, overage, payg_value) by month."""
    u = plan_usage.c
    return {
        r.month: r
        for r in conn.execute(
            select(plan_usage).where(u.account_id == account_id, u.month.in_(months))
        )
    }


def plan_messages_count(conn: Connection, account_id: str, month: str) -> int:
    """Messages counted against a plan's allowance in `month` (0 if none)."""
    value = conn.execute(
        select(func.coalesce(plan_usage.c.plan_messages, 0)).where(
            plan_usage.c.account_id == account_id, plan_usage.c.month == month
        )
    ).scalar_one_or_none()
    return int(value or 0)
