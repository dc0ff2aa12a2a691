"""Webhook handlers for plan subscriptions (`ROUTES`, joined in `api.http`).

As for credit packs, an event is a notification: the handler reads the subscription's
current state from Stripe, then `plans.billing.apply_subscription_on` makes
`subscriptions` match it in the transaction that marks the event processed. A
duplicate delivery is skipped by the event inbox; a repeated or late event of the
same state changes nothing.
"""

from __future__ import annotations

from typing import Any

from pricing_core.billing import stripe_api
from pricing_core.billing.webhooks import EventContext, Route
from pricing_core.plans.billing import apply_subscription_on


def _subscription_mode(obj: dict[str, Any]) -> bool:
    return obj.get("mode") == "subscription"


def sync_subscription(ctx: EventContext) -> str:
    """Apply the subscription's current state (retrieved from Stripe)."""
    sub_id = ctx.object.get("id")
    if not isinstance(sub_id, str):
        return "ignored: the event has no subscription id"
    sub = stripe_api.retrieve_subscription(ctx.client, sub_id)
    return ctx.commit(lambda conn: _apply(ctx, conn, sub))


def subscription_checkout_completed(ctx: EventContext) -> str:
    """A subscription-mode Checkout completed: apply its subscription at once (the
    `customer.subscription.created` event may come later, and then changes nothing)."""
    sub_id = ctx.object.get("subscription")
    if not isinstance(sub_id, str):
        return "ignored: the session has no subscription yet"
    sub = stripe_api.retrieve_subscription(ctx.client, sub_id)
    return ctx.commit(lambda conn: _apply(ctx, conn, sub))


def _apply(ctx: EventContext, conn: Any, sub: dict[str, Any]) -> str:
    account = (sub.get("metadata") or {}).get("account_id")
    if isinstance(account, str):
        ctx.account_id = account
    return apply_subscription_on(conn, sub, now=ctx.now)


# The subscription routes, joined with the other areas' in `api.http`.
ROUTES: tuple[Route, ...] = (
    Route(
        (
            "customer.subscription.created",
            "customer.subscription.updated",
            "customer.subscription.deleted",
        ),
        sync_subscription,
    ),
    Route(
        ("checkout.session.completed",), subscription_checkout_completed, when=_subscription_mode
    ),
)
