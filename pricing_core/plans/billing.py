"""Paying for plans: the monthly fee is collected by Stripe in subscription mode.

- `request_plan_change` is what the plans page calls. With Stripe configured it
  opens a Checkout Session in subscription mode (a Stripe Price per plan, setting
  `stripe_plan_prices`), or changes / cancels the account's existing Stripe
  subscription; the account's plan then changes when Stripe's
  `customer.subscription.*` webhook arrives. In demo mode (no Stripe) the switch is
  immediate and labelled as such.
- `apply_subscription_on` puts a Stripe subscription's current state into
  `subscriptions`. It compares states, so a repeated or late event changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import stripe
from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.audit import actor_of
from pricing_core.adapters.schema_billing import subscriptions
from pricing_core.adapters.storage import run_write
from pricing_core.billing import stripe_api
from pricing_core.billing.customers import ensure_customer
from pricing_core.config import Settings, get_settings
from pricing_core.domain.errors import ConfigurationError, PermissionDenied
from pricing_core.domain.plans import PAYG_CODE, PlanError
from pricing_core.domain.principal import Principal, target_account
from pricing_core.plans.subscriptions import (
    Subscription,
    SubscriptionSource,
    current_subscription,
    plan_to_join,
    subscription_on,
)
from pricing_core.plans.switching import switch_plan, switch_plan_on
from pricing_core.safety import demo_enabled

ACTIVE = {"active", "trialing", "past_due"}  # Stripe statuses that keep the plan on
ENDED = {"canceled", "unpaid", "incomplete_expired"}  # ... and those that end it


class ChangeKind(StrEnum):
    SWITCHED = "switched"  # done now (demo mode, or leaving a plan Stripe never billed)
    CHECKOUT = "checkout"  # the customer continues on Stripe Checkout (`url`)
    PENDING = "pending"  # Stripe was asked; the webhook will apply it


@dataclass(frozen=True, slots=True)
class PlanChange:
    kind: ChangeKind
    plan_code: str
    message: str
    url: str | None = None
    session_id: str | None = None


def stripe_plans_configured(settings: Settings | None = None) -> bool:
    """True when a Stripe secret key and at least one plan's Stripe Price are set."""
    settings = settings or get_settings()
    return stripe_api.payments_configured(settings) and bool(settings.stripe_plan_prices)


class SwitchMode(StrEnum):
    STRIPE = "stripe"  # Checkout in subscription mode, applied by webhooks
    DEMO = "demo"  # immediate, no payment
    UNAVAILABLE = "unavailable"  # neither configured


def switch_mode(settings: Settings | None = None) -> SwitchMode:
    """How plan switches happen with these settings."""
    settings = settings or get_settings()
    if stripe_plans_configured(settings):
        return SwitchMode.STRIPE
    return SwitchMode.DEMO if demo_enabled(settings) else SwitchMode.UNAVAILABLE


def price_for(plan_code: str, settings: Settings | None = None) -> str:
    """The Stripe Price id of a plan's monthly fee. Raises: ConfigurationError."""
    prices = (settings or get_settings()).stripe_plan_prices
    if plan_code not in prices:
        raise ConfigurationError(
            f"no Stripe Price for plan {plan_code!r}: add it to PRICING_STRIPE_PLAN_PRICES"
        )
    return prices[plan_code]


def plan_for_price(price_id: str | None, settings: Settings | None = None) -> str | None:
    """The plan code whose Stripe Price is `price_id` (None if none)."""
    for code, price in (settings or get_settings()).stripe_plan_prices.items():
        if price == price_id:
            return code
    return None


def request_plan_change(
    engine: Engine,
    viewer: Principal,
    plan_code: str,
    *,
    account_id: str | None = None,
    client: stripe.StripeClient | None = None,
    now: datetime | None = None,
) -> PlanChange:
    """Move the account to `plan_code` ("payg" to leave its plan): through Stripe
    when it is configured, immediately in demo mode.

    Returns: PlanChange (CHECKOUT with the Stripe URL, PENDING until Stripe's webhook
    confirms, or SWITCHED). Raises: PlanError (unknown plan, custom plan without an
    agreed fee, already on it), ConfigurationError (neither Stripe nor demo mode),
    StripeUnavailable, UnknownAccount, PermissionDenied (a member naming another
    account in `account_id`; default: the viewer's own). The change is recorded with
    the viewer as its actor.
    """
    account_id = target_account(viewer, account_id)
    actor = actor_of(viewer)
    settings = get_settings()
    at = now or datetime.now(UTC)
    current = current_subscription(engine, account_id, now=at)
    on_code = current.plan_code if current else PAYG_CODE
    if on_code == plan_code:
        raise PlanError(f"account {account_id!r} is already on plan {plan_code!r}")
    target = None if plan_code == PAYG_CODE else plan_to_join(engine, account_id, plan_code, now=at)
    billed = current is not None and current.stripe_subscription_id is not None
    if not stripe_plans_configured(settings) and not billed:
        if not demo_enabled(settings):
            raise ConfigurationError(
                "plan changes need Stripe: set PRICING_STRIPE_SECRET_KEY and "
                "PRICING_STRIPE_PLAN_PRICES"
            )
        switch_plan(
            engine, account_id, plan_code, source=SubscriptionSource.DEMO, actor=actor, now=at
        )
        name = target.name if target else "pay-as-you-go"
        return PlanChange(
            ChangeKind.SWITCHED,
            plan_code,
            f"Switched to {name} (demo mode: immediate, no payment).",
        )
    client = client or stripe_api.stripe_client(settings)
    if billed:
        assert current is not None and current.stripe_subscription_id is not None
        return _change_stripe_subscription(client, current, plan_code, settings)
    if target is None:  # leaving a plan that Stripe never billed (set by an admin)
        switch_plan(
            engine, account_id, PAYG_CODE, source=SubscriptionSource.ADMIN, actor=actor, now=at
        )
        return PlanChange(ChangeKind.SWITCHED, plan_code, "Switched to pay-as-you-go.")
    metadata = {
        "account_id": account_id,
        "plan_code": target.code,
        "plan_version": str(target.version),
    }
    base = settings.public_url.rstrip("/")
    session = stripe_api.create_session(
        client,
        {
            "mode": "subscription",
            # the account's one customer: its cards, and Stripe's invoices for the plan
            "customer": ensure_customer(engine, account_id, client=client, now=at),
            "line_items": [{"price": price_for(target.code, settings), "quantity": 1}],
            "client_reference_id": account_id,
            "metadata": metadata | {"kind": "plan"},
            "subscription_data": {"metadata": metadata},
            "success_url": f"{base}/plans?checkout=success&session_id={{CHECKOUT_SESSION_ID}}",
            "cancel_url": f"{base}/plans?checkout=cancelled",
        },
        idempotency_key=f"plan-checkout:{account_id}:{target.key}:{uuid.uuid4()}",
    )
    return PlanChange(
        ChangeKind.CHECKOUT,
        plan_code,
        f"Continue on Stripe to subscribe to {target.name}.",
        url=session.get("url"),
        session_id=session.get("id"),
    )


def _change_stripe_subscription(
    client: stripe.StripeClient, current: Subscription, plan_code: str, settings: Settings
) -> PlanChange:
    sub_id = current.stripe_subscription_id
    assert sub_id is not None
    if plan_code == PAYG_CODE:
        stripe_api.cancel_subscription(client, sub_id)
        return PlanChange(
            ChangeKind.PENDING,
            plan_code,
            "Cancelling on Stripe; your plan ends when Stripe confirms.",
        )
    sub = stripe_api.retrieve_subscription(client, sub_id)
    item = sub["items"]["data"][0]["id"]
    metadata = {"account_id": current.account_id, "plan_code": plan_code}
    stripe_api.update_subscription(
        client,
        sub_id,
        {"items": [{"id": item, "price": price_for(plan_code, settings)}], "metadata": metadata},
    )
    return PlanChange(
        ChangeKind.PENDING,
        plan_code,
        "Stripe is changing your plan; it applies when Stripe confirms.",
    )


def confirm_plan_checkout(
    engine: Engine,
    viewer: Principal,
    session_id: str,
    *,
    account_id: str | None = None,
    client: stripe.StripeClient | None = None,
    now: datetime | None = None,
) -> str:
    """The success page's confirmation: read the Checkout Session and its subscription
    from Stripe and apply it now (the webhook does the same; whichever comes second
    changes nothing). Returns: what happened, as a sentence.
    Raises: PermissionDenied (another account's session, or a member naming another
    account), PlanError (not a plan checkout), StripeUnavailable."""
    account_id = target_account(viewer, account_id)
    client = client or stripe_api.stripe_client()
    session = stripe_api.retrieve_session(client, session_id)
    if session.get("client_reference_id") != account_id:
        raise PermissionDenied(f"checkout session {session_id!r} is not {account_id!r}'s")
    if session.get("mode") != "subscription":
        raise PlanError(f"checkout session {session_id!r} is not a plan subscription")
    sub_id = session.get("subscription")
    if not isinstance(sub_id, str):
        return "Stripe has not confirmed the subscription yet."
    sub = stripe_api.retrieve_subscription(client, sub_id)
    at = now or datetime.now(UTC)
    return run_write(engine, lambda conn: apply_subscription_on(conn, sub, now=at))


# ---------------------------------------------------------------- webhooks


def apply_subscription_on(conn: Connection, sub: dict[str, Any], *, now: datetime) -> str:
    """Make `subscriptions` match a Stripe subscription's current state, inside an
    open write transaction. Idempotent: the same state applied twice changes nothing.

    The account comes from the subscription's metadata (set at checkout), else from
    an earlier row with the same Stripe subscription id; the plan from its first
    item's Price (setting `stripe_plan_prices`), else its metadata.
    Returns: what happened, as a sentence (for the event log).
    """
    sub_id = sub.get("id")
    if not isinstance(sub_id, str):
        return "ignored: not a subscription"
    metadata = sub.get("metadata") or {}
    account_id = metadata.get("account_id") or _account_of(conn, sub_id)
    if not account_id:
        return f"ignored: subscription {sub_id!r} names no account"
    current = subscription_on(conn, account_id, now)
    ours = current is not None and current.stripe_subscription_id == sub_id
    status = sub.get("status")
    if status in ENDED:
        if not ours:
            return f"unchanged: subscription {sub_id!r} is not {account_id!r}'s current plan"
        switch_plan_on(
            conn, account_id, PAYG_CODE, source=SubscriptionSource.STRIPE, now=now, actor="stripe"
        )
        return f"ended: {account_id!r} is back on pay-as-you-go"
    if status not in ACTIVE:
        return f"unchanged: subscription {sub_id!r} is {status!r}"
    items = (sub.get("items") or {}).get("data") or [{}]
    code = plan_for_price((items[0].get("price") or {}).get("id")) or metadata.get("plan_code")
    if not code:
        return f"ignored: subscription {sub_id!r} has no known plan price"
    if ours and current is not None and current.plan_code == code:
        return f"unchanged: {account_id!r} is already on {code!r}"
    version = metadata.get("plan_version") if metadata.get("plan_code") == code else None
    switch_plan_on(
        conn,
        account_id,
        code,
        source=SubscriptionSource.STRIPE,
        now=now,
        actor="stripe",
        plan_version=int(version) if version else None,
        stripe_subscription_id=sub_id,
        stripe_customer_id=sub.get("customer") if isinstance(sub.get("customer"), str) else None,
    )
    return f"switched: {account_id!r} is on {code!r} (Stripe subscription {sub_id})"


def _account_of(conn: Connection, sub_id: str) -> str | None:
    return conn.execute(
        select(subscriptions.c.account_id)
        .where(subscriptions.c.stripe_subscription_id == sub_id)
        .limit(1)
    ).scalar_one_or_none()
