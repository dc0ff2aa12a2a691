"""The account's Stripe customer and its saved cards.

Checkout opens every session for the account's customer with
`setup_future_usage=off_session`, so the card paid with is saved for auto top-up
(Stripe's "save payment details during payment"); `add_card_url` saves one without
buying (Checkout in setup mode). Cards are listed through the SDK
and managed on Stripe's Customer Portal; we store only the customer id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe
from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema_payments import stripe_customers
from pricing_core.adapters.storage import dialect_insert, run_write
from pricing_core.billing import stripe_api
from pricing_core.config import Settings, get_settings
from pricing_core.domain.principal import Principal, target_account


@dataclass(frozen=True, slots=True)
class PaymentMethod:
    """A saved card, as Stripe describes it (never the number)."""

    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int

    @property
    def label(self) -> str:
        expires = f"{self.exp_month:02d}/{self.exp_year}"
        return f"{self.brand.title()} ending {self.last4} (expires {expires})"


def customer_of(engine: Engine, account_id: str) -> str | None:
    """The account's Stripe customer id, or None before its first checkout."""
    with engine.connect() as conn:
        return customer_on(conn, account_id)


def customer_on(conn: Connection, account_id: str) -> str | None:
    c = stripe_customers.c
    return conn.execute(select(c.customer_id).where(c.account_id == account_id)).scalar()


def account_for_customer(conn: Connection, customer_id: str | None) -> str | None:
    """The account whose Stripe customer this is (None: not one of ours)."""
    if not customer_id:
        return None
    c = stripe_customers.c
    return conn.execute(select(c.account_id).where(c.customer_id == customer_id)).scalar()


def ensure_customer(
    engine: Engine,
    account_id: str,
    *,
    client: stripe.StripeClient,
    email: str | None = None,
    now: datetime | None = None,
) -> str:
    """The account's Stripe customer id, created once (`POST /v1/customers`, keyed by
    the account, so concurrent first checkouts make one customer).

    Raises: StripeUnavailable."""
    found = customer_of(engine, account_id)
    if found is not None:
        return found
    params: dict[str, Any] = {"metadata": {"account_id": account_id}}
    if email:
        params["email"] = email
    created = stripe_api.create_customer(client, params, idempotency_key=f"customer:{account_id}")
    customer_id = str(created["id"])
    at = now or datetime.now(UTC)

    def work(conn: Connection) -> None:
        conn.execute(
            dialect_insert(conn, stripe_customers)
            .values(account_id=account_id, customer_id=customer_id, created_at=at)
            .on_conflict_do_nothing(index_elements=["account_id"])
        )

    run_write(engine, work)
    return customer_of(engine, account_id) or customer_id


def _method(raw: dict[str, Any]) -> PaymentMethod:
    card = raw.get("card") or {}
    return PaymentMethod(
        id=str(raw["id"]),
        brand=str(card.get("brand") or "card"),
        last4=str(card.get("last4") or "????"),
        exp_month=int(card.get("exp_month") or 0),
        exp_year=int(card.get("exp_year") or 0),
    )


def saved_cards(client: stripe.StripeClient, customer_id: str) -> list[PaymentMethod]:
    """The customer's saved cards, newest first (Stripe's order). Raises: StripeUnavailable."""
    return [_method(m) for m in stripe_api.list_card_methods(client, customer_id)]


def list_payment_methods(
    engine: Engine,
    viewer: Principal,
    *,
    account_id: str | None = None,
    client: stripe.StripeClient | None = None,
) -> list[PaymentMethod]:
    """The viewer's account's saved cards (admins: `account_id`'s); [] before the
    first checkout. Raises: PermissionDenied, ConfigurationError (no Stripe key),
    StripeUnavailable."""
    account_id = target_account(viewer, account_id)
    customer_id = customer_of(engine, account_id)
    if customer_id is None:
        return []
    return saved_cards(client or stripe_api.stripe_client(), customer_id)


def add_card_url(
    engine: Engine,
    viewer: Principal,
    *,
    idempotency_key: str | None = None,
    client: stripe.StripeClient | None = None,
    settings: Settings | None = None,
) -> str:
    """A Stripe Checkout Session in setup mode: the viewer saves a card for auto
    top-up without buying anything; it returns to the Billing page. Returns its URL.

    Args: idempotency_key: one per click (a double submit opens one session).
    Raises: ConfigurationError (no Stripe key), StripeUnavailable."""
    account_id = target_account(viewer)
    settings = settings or get_settings()
    client = client or stripe_api.stripe_client(settings)
    customer_id = ensure_customer(engine, account_id, client=client, email=viewer.email)
    base = f"{settings.public_url.rstrip('/')}/billing"
    session = stripe_api.create_session(
        client,
        {
            "mode": "setup",
            "customer": customer_id,
            "currency": "usd",
            "metadata": {"account_id": account_id, "kind": "add_card"},
            "success_url": f"{base}?card=added",
            "cancel_url": base,
        },
        idempotency_key=f"add-card:{account_id}:{idempotency_key or uuid.uuid4().hex}",
    )
    return str(session["url"])


def manage_methods_url(
    engine: Engine,
    viewer: Principal,
    *,
    client: stripe.StripeClient | None = None,
    settings: Settings | None = None,
) -> str:
    """A Stripe Customer Portal session for the viewer's account, where cards are
    added, removed and made default; it returns to the Billing page.

    Raises: ConfigurationError (no Stripe key), StripeUnavailable."""
    account_id = target_account(viewer)
    settings = settings or get_settings()
    client = client or stripe_api.stripe_client(settings)
    customer_id = ensure_customer(engine, account_id, client=client, email=viewer.email)
    back = f"{settings.public_url.rstrip('/')}/billing"
    return str(stripe_api.create_portal_session(client, customer_id, back)["url"])
