"""Credit packages, Stripe Checkout Sessions and their fulfilment, exactly once.

Flow (DESIGN.md "Money flows" 3): `create_checkout` opens a Stripe Checkout Session
for a credit package and records it; the browser pays on Stripe's hosted page; then
`fulfil_checkout(session_id)` is called from the success page, from the webhook, or
from reconciliation, in any order, any number of times, concurrently. After Stripe's
fulfilment guide (https://docs.stripe.com/checkout/fulfillment) it retrieves the
session with its line items, checks `payment_status == "paid"`, verifies the amount
and currency against the package, and credits the wallet in one transaction keyed
`checkout:<session id>` (the volume bonus as a second entry, `checkout:<id>:bonus`).

Amounts: package prices are integer cents (Stripe's unit); credits are Decimal USD.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import stripe
from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema_billing import checkout_sessions, credit_packages
from pricing_core.billing import stripe_api
from pricing_core.billing.customers import ensure_customer
from pricing_core.billing.fulfilment import fulfil_session_on
from pricing_core.billing.packages import CreditPackage, UnknownPackage, get_package
from pricing_core.billing.sessions import SESSION_ID, SIMULATED_PREFIX, Fulfilment, insert_session
from pricing_core.config import Settings, get_settings
from pricing_core.domain.errors import ConfigurationError, PermissionDenied
from pricing_core.domain.money import cents_to_usd, format_money
from pricing_core.domain.principal import Principal, target_account
from pricing_core.ledger.wallets import (
    idempotent_write,
)
from pricing_core.limits.rollout import billing_enabled
from pricing_core.safety import demo_enabled


@dataclass(frozen=True, slots=True)
class Purchase:
    """A row of the purchase history. Amounts: Decimal (price in `currency`, credit USD)."""

    session_id: str
    package_name: str
    price: Decimal
    currency: str
    credit: Decimal
    status: str
    refunded: Decimal
    dispute_status: str | None
    receipt_url: str | None
    simulated: bool
    created_at: datetime
    fulfilled_at: datetime | None


@dataclass(frozen=True, slots=True)
class CheckoutStart:
    """A created Checkout Session: send the browser to `url`."""

    session_id: str
    url: str


# ---------------------------------------------------------------- creating sessions


def success_url(settings: Settings) -> str:
    """Where Stripe sends the buyer after paying (Stripe fills in the session id)."""
    return f"{settings.public_url.rstrip('/')}/buy_credits?session_id={{CHECKOUT_SESSION_ID}}"


def cancel_url(settings: Settings) -> str:
    return f"{settings.public_url.rstrip('/')}/buy_credits?canceled=1"


def checkout_params(
    package: CreditPackage,
    *,
    account_id: str,
    user_id: str | None,
    settings: Settings,
    email: str | None = None,
    customer: str | None = None,
) -> dict[str, Any]:
    """The Checkout Session parameters for one package (Stripe API `POST
    /v1/checkout/sessions`): payment mode, one line item with inline `price_data`,
    the account and package in `client_reference_id` and `metadata`, return URLs.
    With the account's Stripe `customer`, the card is saved for auto top-up
    (`setup_future_usage=off_session`) and Stripe issues an invoice for the payment
    (`invoice_creation`)."""
    metadata = {"account_id": account_id, "package_id": package.id, "user_id": user_id or ""}
    credit = format_money(package.total_credit)
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": package.currency,
                    "unit_amount": package.price_cents,
                    "product_data": {
                        "name": f"{package.name} credit pack",
                        "description": f"{credit} of AI usage credit",
                    },
                },
            }
        ],
        "client_reference_id": account_id,
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "success_url": success_url(settings),
        "cancel_url": cancel_url(settings),
    }
    if customer:
        params["customer"] = customer
        params["payment_intent_data"]["setup_future_usage"] = "off_session"
        params["invoice_creation"] = {
            "enabled": True,
            "invoice_data": {"metadata": {"account_id": account_id}},
        }
    elif email:
        params["customer_email"] = email
    return params


def create_checkout(
    engine: Engine,
    viewer: Principal,
    *,
    package_id: str,
    account_id: str | None = None,
    idempotency_key: str | None = None,
    client: stripe.StripeClient | None = None,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> CheckoutStart:
    """Create a Stripe Checkout Session for a credit package and record it.

    Args:
        idempotency_key: one per buyer's click (the page keeps it across reruns), so
            a double submit opens one session; default a fresh key.
        account_id: the account to credit: the viewer's own by default; only an admin
            may name another.
    Returns: CheckoutStart (send the browser to its `url`).
    Raises: PermissionDenied, UnknownPackage (missing or inactive), ConfigurationError
        (no Stripe key, or purchases not offered to the account), StripeUnavailable.
    """
    account_id = target_account(viewer, account_id)
    if not billing_enabled(engine, account_id):
        raise ConfigurationError(
            f"purchases are not offered to account {account_id!r} "
            "(PRICING_ENABLE_BILLING, PRICING_BILLING_ROLLOUT)"
        )
    user_id, email = _buyer(viewer, account_id)
    settings = settings or get_settings()
    client = client or stripe_api.stripe_client(settings)
    package = get_package(engine, package_id)
    if not package.active:
        raise UnknownPackage(f"credit package {package_id!r} is no longer sold")
    at = now or datetime.now(UTC)
    key = f"checkout-create:{account_id}:{idempotency_key or uuid.uuid4().hex}"
    customer = ensure_customer(engine, account_id, client=client, email=email, now=at)
    params = checkout_params(
        package,
        account_id=account_id,
        user_id=user_id,
        settings=settings,
        email=email,
        customer=customer,
    )
    session = stripe_api.create_session(client, params, idempotency_key=key)
    session_id, url = session.get("id"), session.get("url")
    if not isinstance(session_id, str) or not SESSION_ID.match(session_id) or not url:
        raise stripe_api.StripeUnavailable(f"Stripe returned an unusable session {session_id!r}")

    def record(conn: Connection) -> None:
        insert_session(conn, session_id, account_id, package, user_id=user_id, now=at)

    idempotent_write(engine, record)
    return CheckoutStart(session_id, url)


def _buyer(viewer: Principal, account_id: str) -> tuple[str | None, str | None]:
    """(user id, email) recorded on a session: the viewer's when buying for their own
    account; none when an admin buys for another account."""
    if account_id != viewer.account_id:
        return None, None
    return viewer.user_id, viewer.email


# ---------------------------------------------------------------- demo mode


def simulate_purchase(
    engine: Engine,
    viewer: Principal,
    *,
    package_id: str,
    account_id: str | None = None,
    idempotency_key: str | None = None,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> Fulfilment:
    """Demo mode only: buy a package without Stripe, through the same fulfilment code
    with a simulated paid session (id `cs_sim_...`, recorded as simulated).

    Args: idempotency_key: one per click; the same key simulates one purchase.
        account_id: the viewer's own account by default; only an admin may name another.
    Raises: PermissionDenied outside demo mode or for another account, UnknownPackage.
    """
    account_id = target_account(viewer, account_id)
    user_id, _ = _buyer(viewer, account_id)
    settings = settings or get_settings()
    if not demo_enabled(settings):
        raise PermissionDenied("simulated purchases are only possible in demo mode")
    package = get_package(engine, package_id)
    if not package.active:
        raise UnknownPackage(f"credit package {package_id!r} is no longer sold")
    nonce = idempotency_key or uuid.uuid4().hex
    digest = hashlib.sha256(f"{account_id}\0{nonce}".encode()).hexdigest()[:32]
    sid = f"{SIMULATED_PREFIX}{digest}"
    session = {
        "id": sid,
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": package.price_cents,
        "currency": package.currency,
        "client_reference_id": account_id,
        "metadata": {"account_id": account_id, "package_id": package.id},
        "line_items": {
            "data": [
                {"quantity": 1, "amount_total": package.price_cents, "currency": package.currency}
            ]
        },
        "payment_intent": None,
    }
    at = now or datetime.now(UTC)

    def work(conn: Connection) -> Fulfilment:
        insert_session(conn, sid, account_id, package, user_id=user_id, now=at, simulated=True)
        return fulfil_session_on(conn, session, now=at, account_id=account_id)

    return idempotent_write(engine, work)


# ---------------------------------------------------------------- history


def list_purchases(
    engine: Engine, viewer: Principal, *, account_id: str | None = None, limit: int = 50
) -> list[Purchase]:
    """The viewer's account's checkout sessions (admins: `account_id`'s), newest
    first, with status, refunds and receipt.

    Raises: PermissionDenied when a member names another account.
    """
    account_id = target_account(viewer, account_id)
    c = checkout_sessions.c
    query = (
        select(checkout_sessions, credit_packages.c.name.label("package_name"))
        .select_from(
            checkout_sessions.outerjoin(credit_packages, credit_packages.c.id == c.package_id)
        )
        .where(c.account_id == account_id)
        .order_by(c.created_at.desc(), c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        Purchase(
            session_id=r.id,
            package_name=r.package_name or r.package_id,
            price=cents_to_usd(r.amount_cents),
            currency=r.currency,
            credit=r.credits + r.bonus,
            status=r.status,
            refunded=cents_to_usd(r.refunded_cents),
            dispute_status=r.dispute_status,
            receipt_url=r.receipt_url,
            simulated=r.simulated,
            created_at=r.created_at,
            fulfilled_at=r.fulfilled_at,
        )
        for r in rows
    ]
