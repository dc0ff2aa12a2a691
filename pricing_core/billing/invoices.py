"""Stripe's own invoices: a credit pack bought through Checkout (`invoice_creation`)
and every plan subscription period get one from Stripe, with a hosted page and a PDF.

The `invoice.*` webhooks read the invoice's current state from Stripe and keep a copy
in `stripe_invoices`, under the account whose Stripe customer (or subscription) it
is; the Billing page and `GET /api/v1/billing/invoices` list that copy, so they work
while Stripe is unreachable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema_billing import subscriptions
from pricing_core.adapters.schema_payments import stripe_invoices
from pricing_core.adapters.storage import dialect_insert
from pricing_core.billing import stripe_api
from pricing_core.billing.customers import account_for_customer
from pricing_core.billing.webhooks import EventContext, Route
from pricing_core.domain.money import cents_to_usd
from pricing_core.domain.principal import Principal, require_admin, target_account


@dataclass(frozen=True, slots=True)
class Invoice:
    """A Stripe invoice. Amounts: Decimal in `currency` units (what was paid)."""

    account_id: str
    id: str
    number: str | None
    status: str
    amount_due: Decimal
    amount_paid: Decimal
    currency: str
    description: str | None
    hosted_invoice_url: str | None
    invoice_pdf: str | None
    created_at: datetime


def _account_of(conn: Connection, invoice: dict[str, Any]) -> str | None:
    found = account_for_customer(conn, invoice.get("customer"))
    if found is None and invoice.get("subscription"):
        s = subscriptions.c
        found = conn.execute(
            select(s.account_id).where(s.stripe_subscription_id == invoice["subscription"]).limit(1)
        ).scalar()
    return found


def store_invoice_on(conn: Connection, invoice: dict[str, Any], *, now: datetime) -> str:
    """Keep Stripe's current state of an invoice under its account (insert or
    update). Returns what was done, for the event log."""
    account_id = _account_of(conn, invoice)
    if account_id is None:
        return f"ignored: invoice {invoice.get('id')!r} is not for one of our customers"
    values = {
        "number": invoice.get("number"),
        "status": str(invoice.get("status") or "draft"),
        "amount_due_cents": int(invoice.get("amount_due") or 0),
        "amount_paid_cents": int(invoice.get("amount_paid") or 0),
        "currency": str(invoice.get("currency") or "usd"),
        "description": invoice.get("description"),
        "hosted_invoice_url": invoice.get("hosted_invoice_url"),
        "invoice_pdf": invoice.get("invoice_pdf"),
        "stripe_created_at": datetime.fromtimestamp(int(invoice.get("created") or 0), UTC),
        "updated_at": now,
    }
    conn.execute(
        dialect_insert(conn, stripe_invoices)
        .values(account_id=account_id, id=invoice["id"], **values)
        .on_conflict_do_update(index_elements=["account_id", "id"], set_=values)
    )
    return f"invoice {invoice['id']} of {account_id} is {values['status']}"


def invoice_event(ctx: EventContext) -> str:
    """Any `invoice.*` event: keep the invoice's current state (read from Stripe)."""
    try:
        invoice = stripe_api.retrieve_invoice(ctx.client, str(ctx.object.get("id")))
    except stripe_api.StripeObjectMissing as exc:
        return f"ignored: {exc}"
    return ctx.commit(lambda conn: store_invoice_on(conn, invoice, now=ctx.now))


def _invoice(row: Any) -> Invoice:
    return Invoice(
        account_id=row.account_id,
        id=row.id,
        number=row.number,
        status=row.status,
        amount_due=cents_to_usd(row.amount_due_cents),
        amount_paid=cents_to_usd(row.amount_paid_cents),
        currency=row.currency,
        description=row.description,
        hosted_invoice_url=row.hosted_invoice_url,
        invoice_pdf=row.invoice_pdf,
        created_at=row.stripe_created_at,
    )


def list_invoices(
    engine: Engine, viewer: Principal, *, account_id: str | None = None, limit: int = 100
) -> list[Invoice]:
    """The viewer's account's Stripe invoices (admins: `account_id`'s), newest first.
    Raises: PermissionDenied."""
    account_id = target_account(viewer, account_id)
    i = stripe_invoices.c
    query = (
        select(stripe_invoices)
        .where(i.account_id == account_id)
        .order_by(i.stripe_created_at.desc(), i.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [_invoice(r) for r in conn.execute(query)]


def all_invoices(engine: Engine, viewer: Principal, *, limit: int = 500) -> list[Invoice]:
    """Every account's Stripe invoices, newest first (admins). Raises: PermissionDenied."""
    require_admin(viewer)
    i = stripe_invoices.c
    query = select(stripe_invoices).order_by(i.stripe_created_at.desc(), i.id).limit(limit)
    with engine.connect() as conn:
        return [_invoice(r) for r in conn.execute(query)]


ROUTES: tuple[Route, ...] = (
    Route(
        (
            "invoice.created",
            "invoice.finalized",
            "invoice.paid",
            "invoice.payment_failed",
            "invoice.payment_succeeded",
            "invoice.voided",
            "invoice.marked_uncollectible",
            "invoice.updated",
        ),
        invoice_event,
    ),
)
