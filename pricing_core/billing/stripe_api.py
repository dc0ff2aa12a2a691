"""The Stripe API, through the official `stripe` SDK, as plain dicts.

Every call goes through a `stripe.StripeClient` built from the settings
(`PRICING_STRIPE_SECRET_KEY`, and `PRICING_STRIPE_API_BASE` when tests point the SDK
at a local fake). Results are converted to plain `dict`s at once, so the rest of
the package (and the demo's simulated sessions) handle one shape. Stripe's errors
become `StripeUnavailable` (a `PricingError`); the secret key never appears in a
message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import stripe

from pricing_core.config import Settings, get_settings
from pricing_core.domain.errors import ConfigurationError, PricingError

# What fulfilment needs in one call: the line items (to verify the amount) and the
# charge (for the receipt link), as in Stripe's fulfilment guide.
SESSION_EXPAND = ["line_items", "payment_intent.latest_charge"]


class StripeUnavailable(PricingError):
    """A Stripe API call failed (network, authentication, invalid request)."""


class StripeObjectMissing(PricingError):
    """Stripe answered 404: it has no such object (e.g. a session of another account
    or mode). Asking again will not change that."""


def payments_configured(settings: Settings | None = None) -> bool:
    """True when a Stripe secret key is set (real checkout is possible)."""
    settings = settings or get_settings()
    key = settings.stripe_secret_key
    return key is not None and bool(key.get_secret_value().strip())


def stripe_client(settings: Settings | None = None) -> stripe.StripeClient:
    """A Stripe client from the settings.

    Raises: ConfigurationError when `PRICING_STRIPE_SECRET_KEY` is not set.
    """
    settings = settings or get_settings()
    if not payments_configured(settings):
        raise ConfigurationError(
            "payments are not configured: set PRICING_STRIPE_SECRET_KEY to enable Stripe Checkout"
        )
    assert settings.stripe_secret_key is not None
    options: dict[str, Any] = {}
    if settings.stripe_api_base:
        options["base_addresses"] = {"api": settings.stripe_api_base.rstrip("/")}
    return stripe.StripeClient(settings.stripe_secret_key.get_secret_value(), **options)


def _plain(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _call(what: str, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        return _plain(fn(*args, **kwargs))
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            raise StripeObjectMissing(f"Stripe {what}: no such object") from None
        raise StripeUnavailable(f"Stripe {what} failed: {exc.user_message or exc}") from None
    except stripe.StripeError as exc:
        # user_message/str(exc) never contain the full secret key (Stripe masks it).
        raise StripeUnavailable(f"Stripe {what} failed: {exc.user_message or exc}") from None


def create_session(
    client: stripe.StripeClient, params: dict[str, Any], *, idempotency_key: str
) -> dict[str, Any]:
    """POST /v1/checkout/sessions with an Idempotency-Key. Returns the session dict."""
    return _call(
        "create checkout session",
        client.v1.checkout.sessions.create,
        params,  # type: ignore[arg-type]
        {"idempotency_key": idempotency_key},
    )


def retrieve_session(client: stripe.StripeClient, session_id: str) -> dict[str, Any]:
    """GET /v1/checkout/sessions/:id with line items and the charge expanded."""
    return _call(
        f"retrieve checkout session {session_id!r}",
        client.v1.checkout.sessions.retrieve,
        session_id,
        {"expand": SESSION_EXPAND},
    )


def list_sessions(
    client: stripe.StripeClient,
    *,
    created_gte: int | None = None,
    payment_intent: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Every Checkout Session (newest first), following Stripe's pagination.

    Args: created_gte: Unix seconds; payment_intent: only that payment's session.
    """
    params: dict[str, Any] = {"limit": 100}
    if created_gte is not None:
        params["created"] = {"gte": created_gte}
    if payment_intent is not None:
        params["payment_intent"] = payment_intent
    try:
        page = client.v1.checkout.sessions.list(params)  # type: ignore[arg-type]
        for session in page.auto_paging_iter():
            yield _plain(session)
    except stripe.StripeError as exc:
        raise StripeUnavailable(
            f"Stripe list checkout sessions failed: {exc.user_message or exc}"
        ) from None


def list_refunds(client: stripe.StripeClient, charge_id: str) -> list[dict[str, Any]]:
    """Every refund of a charge, in its current state."""
    try:
        page = client.v1.refunds.list({"charge": charge_id, "limit": 100})
        return [_plain(r) for r in page.auto_paging_iter()]
    except stripe.StripeError as exc:
        raise StripeUnavailable(
            f"Stripe list refunds of {charge_id!r} failed: {exc.user_message or exc}"
        ) from None


def retrieve_refund(client: stripe.StripeClient, refund_id: str) -> dict[str, Any]:
    """GET /v1/refunds/:id (its current status)."""
    return _call(f"retrieve refund {refund_id!r}", client.v1.refunds.retrieve, refund_id)


def retrieve_dispute(client: stripe.StripeClient, dispute_id: str) -> dict[str, Any]:
    """GET /v1/disputes/:id (its current status)."""
    return _call(f"retrieve dispute {dispute_id!r}", client.v1.disputes.retrieve, dispute_id)


# ---------------------------------------------------------------- subscriptions (plans)


def retrieve_subscription(client: stripe.StripeClient, subscription_id: str) -> dict[str, Any]:
    """GET /v1/subscriptions/:id (its current state)."""
    return _call(
        f"retrieve subscription {subscription_id!r}",
        client.v1.subscriptions.retrieve,
        subscription_id,
    )


def update_subscription(
    client: stripe.StripeClient, subscription_id: str, params: dict[str, Any]
) -> dict[str, Any]:
    """POST /v1/subscriptions/:id (e.g. swap the item's Price)."""
    return _call(
        f"update subscription {subscription_id!r}",
        client.v1.subscriptions.update,
        subscription_id,
        params,  # type: ignore[arg-type]
    )


def cancel_subscription(client: stripe.StripeClient, subscription_id: str) -> dict[str, Any]:
    """DELETE /v1/subscriptions/:id (cancel now)."""
    return _call(
        f"cancel subscription {subscription_id!r}",
        client.v1.subscriptions.cancel,
        subscription_id,
    )


# ---------------------------------------------------------------- customers, cards, top-ups


def create_customer(
    client: stripe.StripeClient, params: dict[str, Any], *, idempotency_key: str
) -> dict[str, Any]:
    """POST /v1/customers with an Idempotency-Key (one customer per account)."""
    return _call(
        "create customer",
        client.v1.customers.create,
        params,  # type: ignore[arg-type]
        {"idempotency_key": idempotency_key},
    )


def list_card_methods(client: stripe.StripeClient, customer_id: str) -> list[dict[str, Any]]:
    """GET /v1/customers/:id/payment_methods?type=card: the saved cards, newest first."""
    try:
        page = client.v1.customers.payment_methods.list(customer_id, {"type": "card", "limit": 20})
        return [_plain(m) for m in page.data]
    except stripe.StripeError as exc:
        raise StripeUnavailable(
            f"Stripe list payment methods failed: {exc.user_message or exc}"
        ) from None


def create_portal_session(
    client: stripe.StripeClient, customer_id: str, return_url: str
) -> dict[str, Any]:
    """POST /v1/billing_portal/sessions: Stripe's page where the customer manages cards."""
    return _call(
        "create billing portal session",
        client.v1.billing_portal.sessions.create,
        {"customer": customer_id, "return_url": return_url},
    )


class PaymentDeclined(PricingError):
    """Stripe refused an off-session payment. Attributes: code (`card_declined`,
    `authentication_required`...), payment_intent (its id, when Stripe made one)."""

    def __init__(self, message: str, *, code: str | None, payment_intent: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.payment_intent = payment_intent

    @property
    def requires_action(self) -> bool:
        return self.code == "authentication_required"


def charge_off_session(
    client: stripe.StripeClient, params: dict[str, Any], *, idempotency_key: str
) -> dict[str, Any]:
    """POST /v1/payment_intents with `confirm` and `off_session` (a saved card, nobody
    present). Returns the PaymentIntent dict.

    Raises: PaymentDeclined (HTTP 402: declined, or the bank wants the customer to
    authenticate), StripeUnavailable (anything else)."""
    try:
        return _plain(
            client.v1.payment_intents.create(
                {**params, "confirm": True, "off_session": True},  # type: ignore[typeddict-item]
                {"idempotency_key": idempotency_key},
            )
        )
    except stripe.CardError as exc:
        error = exc.error
        intent = getattr(error, "payment_intent", None) if error is not None else None
        intent_id = intent.get("id") if isinstance(intent, dict) else getattr(intent, "id", None)
        raise PaymentDeclined(
            f"the card was declined: {exc.user_message or exc}",
            code=exc.code,
            payment_intent=intent_id,
        ) from None
    except stripe.StripeError as exc:
        raise StripeUnavailable(
            f"Stripe create payment intent failed: {exc.user_message or exc}"
        ) from None


def retrieve_payment_intent(client: stripe.StripeClient, intent_id: str) -> dict[str, Any]:
    """GET /v1/payment_intents/:id (its current status)."""
    return _call(
        f"retrieve payment intent {intent_id!r}", client.v1.payment_intents.retrieve, intent_id
    )


def retrieve_invoice(client: stripe.StripeClient, invoice_id: str) -> dict[str, Any]:
    """GET /v1/invoices/:id (its current status, hosted page and PDF links)."""
    return _call(f"retrieve invoice {invoice_id!r}", client.v1.invoices.retrieve, invoice_id)
