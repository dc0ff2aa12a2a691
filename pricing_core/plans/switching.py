"""Switching plans and account fees (audited): the new subscription starts at once;
a plan version is joined as published at that moment."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.engine import Connection

from pricing_core.adapters.audit import write_audit
from pricing_core.adapters.schema import accounts
from pricing_core.adapters.schema_billing import plan_account_fees, plans, subscriptions
from pricing_core.adapters.storage import dialect_insert, run_write
from pricing_core.domain.errors import UnknownAccount
from pricing_core.domain.money import round_nano, to_usd
from pricing_core.domain.plans import (
    PAYG_CODE,
    PlanError,
)
from pricing_core.plans.subscriptions import (
    Subscription,
    SubscriptionSource,
    UnknownPlan,
    account_fees_on,
    plan_to_join_on,
    subscription_on,
)

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
        target = plan_to_join_on(conn, account_id, plan_code, plan_version, now=now)
        same_plan = current is not None and (current.plan_code, current.plan_version) == (
            target.code,
            target.version,
        )
        if (
            current is not None
            and same_plan
            and stripe_subscription_id in (None, current.stripe_subscription_id)
        ):
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
