"""Webhook handlers for credit-pack payments: one per Stripe event type.

Following Stripe's advice, handlers treat the event as a notification and read the
object's current state from the API (a session with its line items, a refund, a
dispute) before acting, so events may arrive in any order, late or repeated.
Checkout handlers only take `mode=payment` sessions; subscription-mode sessions are
left to the plans' handlers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from pricing_core.billing import stripe_api
from pricing_core.billing.fulfilment import fulfil_session_on, mark_session_on
from pricing_core.billing.invoices import store_invoice_on
from pricing_core.billing.refunds import apply_dispute_on, apply_refund_on, row_for_payment
from pricing_core.billing.sessions import SIMULATED_PREFIX, SessionStatus, UnknownCheckout
from pricing_core.billing.webhooks import EventContext, Route
from pricing_core.ledger.wallets import find_entry


def _payment_mode(obj: dict[str, Any]) -> bool:
    return obj.get("mode", "payment") == "payment"


def fulfil_from_event(ctx: EventContext) -> str:
    """Fulfil the session (retrieved from Stripe with its line items)."""
    sid = ctx.object.get("id")
    if not isinstance(sid, str) or sid.startswith(SIMULATED_PREFIX):
        return f"ignored: {sid!r} is not a Stripe checkout session"
    try:
        session = stripe_api.retrieve_session(ctx.client, sid)
    except stripe_api.StripeObjectMissing as exc:
        # Signed by our endpoint secret, yet unknown to our Stripe account: a retry
        # would fail the same way for days, so it is answered 200 and kept as ignored.
        return f"ignored: {exc}"
    invoice_id = session.get("invoice")
    invoice = stripe_api.retrieve_invoice(ctx.client, invoice_id) if invoice_id else None

    def work(conn: Connection) -> str:
        try:
            result = fulfil_session_on(conn, session, now=ctx.now)
        except UnknownCheckout as exc:
            return f"ignored: {exc}"
        ctx.account_id = result.account_id
        if invoice is not None:  # Stripe's invoice for the pack (`invoice_creation`)
            store_invoice_on(conn, invoice, now=ctx.now)
        return f"{result.outcome}: {result.message}"

    return ctx.commit(work)


def _mark(ctx: EventContext, status: SessionStatus) -> str:
    return ctx.commit(lambda conn: mark_session_on(conn, ctx.object, status, now=ctx.now))


def mark_failed(ctx: EventContext) -> str:
    return _mark(ctx, SessionStatus.FAILED)


def mark_expired(ctx: EventContext) -> str:
    return _mark(ctx, SessionStatus.EXPIRED)


def _unfulfilled_session(ctx: EventContext, payment_intent: str | None) -> dict[str, Any] | None:
    """When a refund or dispute arrives before its purchase was credited (events come
    in any order), the paid session to fulfil first; None when nothing is missing."""
    if not payment_intent:
        return None
    with ctx.engine.connect() as conn:
        row = row_for_payment(conn, payment_intent, lock=False)
        if row is not None and find_entry(conn, row.account_id, f"checkout:{row.id}"):
            return None
    for found in stripe_api.list_sessions(ctx.client, payment_intent=payment_intent):
        if _payment_mode(found):
            return stripe_api.retrieve_session(ctx.client, found["id"])
    return None


def _on_payment(ctx: EventContext, payment_intent: str | None, apply: Any) -> str:
    """Run `apply(conn, row)` on the session paid by `payment_intent`, fulfilling it
    first in the same transaction if its credit has not arrived yet."""
    session = _unfulfilled_session(ctx, payment_intent)

    def work(conn: Connection) -> str:
        if session is not None:
            try:
                fulfil_session_on(conn, session, now=ctx.now)
            except UnknownCheckout as exc:
                return f"ignored: {exc}"
        row = row_for_payment(conn, payment_intent)
        if row is None:
            return f"ignored: no credit-pack checkout for payment {payment_intent!r}"
        ctx.account_id = row.account_id
        return apply(conn, row)

    return ctx.commit(work)


def refund_charge(ctx: EventContext) -> str:
    """Apply every refund of the charge, in its current state, once per refund id."""
    charge = ctx.object
    refunds = stripe_api.list_refunds(ctx.client, charge["id"])

    def apply(conn: Connection, row: Any) -> str:
        outcomes = []
        for refund in sorted(refunds, key=lambda r: (r.get("created") or 0, r["id"])):
            outcomes.append(apply_refund_on(conn, refund, row, now=ctx.now))
            row = row_for_payment(conn, row.payment_intent)  # refunded_cents moved
        return "; ".join(outcomes) or "no refunds"

    return _on_payment(ctx, charge.get("payment_intent"), apply)


def refund_event(ctx: EventContext) -> str:
    refund = stripe_api.retrieve_refund(ctx.client, ctx.object["id"])
    return _on_payment(
        ctx,
        refund.get("payment_intent"),
        lambda conn, row: apply_refund_on(conn, refund, row, now=ctx.now),
    )


def dispute_event(ctx: EventContext) -> str:
    dispute = stripe_api.retrieve_dispute(ctx.client, ctx.object["id"])
    return _on_payment(
        ctx,
        dispute.get("payment_intent"),
        lambda conn, row: apply_dispute_on(conn, dispute, row, now=ctx.now),
    )


# The credit-pack routes, joined with the other areas' in `api.http`.
ROUTES: tuple[Route, ...] = (
    Route(
        ("checkout.session.completed", "checkout.session.async_payment_succeeded"),
        fulfil_from_event,
        when=_payment_mode,
    ),
    Route(("checkout.session.async_payment_failed",), mark_failed, when=_payment_mode),
    Route(("checkout.session.expired",), mark_expired, when=_payment_mode),
    Route(("charge.refunded",), refund_charge),
    Route(
        ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated"), refund_event
    ),
    Route(
        (
            "charge.dispute.created",
            "charge.dispute.updated",
            "charge.dispute.closed",
            "charge.dispute.funds_withdrawn",
            "charge.dispute.funds_reinstated",
        ),
        dispute_event,
    ),
)
