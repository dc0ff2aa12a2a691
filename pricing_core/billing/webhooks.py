"""Stripe webhooks: signature check, the event inbox, and one handler per event type.

`handle_webhook(engine, payload, signature)` is what `POST /stripe/webhook` calls:

1. verify `Stripe-Signature` with the endpoint secret and the SDK's default tolerance
   (`stripe.WebhookSignature.verify_header`, 300 s), then parse the JSON: any failure
   raises `WebhookRejected` (HTTP 400) before anything is written;
2. record the event id in `stripe_events` (status `received`, attempts + 1) and skip
   one already processed;
3. run the handler registered for the event type. A handler does its Stripe reads
   first, then calls `ctx.commit(work)`: `work` runs in one transaction that also
   claims the event as processed, so the effect and "processed" commit together or
   not at all. A failure is recorded (`failed`, `last_error`) and re-raised (HTTP 500,
   Stripe retries); unknown types are recorded as `ignored` (HTTP 200).

Handlers are passed in explicitly as `Route`s: each area lists its own (`ROUTES` in
`billing.checkout_events` and `plans.events`) and `api.http` joins them. Several routes
may share a type (e.g. `checkout.session.completed` for payment and subscription
mode); the first whose `when(object)` holds runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import stripe
from sqlalchemy import Engine, func, select, update
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema_billing import stripe_events
from pricing_core.adapters.storage import dialect_insert, run_write
from pricing_core.billing import stripe_api
from pricing_core.config import Settings, get_settings
from pricing_core.domain.errors import ConfigurationError, PricingError
from pricing_core.ledger.wallets import idempotent_write

log = logging.getLogger(__name__)


class WebhookRejected(PricingError):
    """The request is not a genuine, well-formed Stripe event (HTTP 400)."""


class EventStatus(StrEnum):
    RECEIVED = "received"
    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"


class Reply(StrEnum):
    """What the endpoint tells Stripe (all HTTP 200)."""

    PROCESSED = "processed"
    DUPLICATE = "duplicate"  # already processed: skipped
    IGNORED = "ignored"  # no handler for this type


@dataclass(frozen=True, slots=True)
class WebhookResult:
    event_id: str
    type: str
    reply: Reply
    outcome: str


@dataclass(slots=True)
class EventContext:
    """What a handler gets: the event, the database, a lazy Stripe client, the time."""

    engine: Engine
    event: dict[str, Any]
    now: datetime
    _client: stripe.StripeClient | None = None
    account_id: str | None = None
    committed: bool = field(default=False)
    duplicate: bool = field(default=False)

    @property
    def object(self) -> dict[str, Any]:
        return self.event["data"]["object"]

    @property
    def client(self) -> stripe.StripeClient:
        if self._client is None:
            self._client = stripe_api.stripe_client()
        return self._client

    def commit(self, work: Callable[[Connection], str]) -> str:
        """Run `work(conn)` and mark the event processed in one transaction.

        If another delivery of the same event committed first, `work` does not run
        and `duplicate` is set. Returns: work's outcome (a sentence).
        """
        event_id = self.event["id"]

        def txn(conn: Connection) -> str:
            claimed = conn.execute(
                update(stripe_events)
                .where(
                    stripe_events.c.id == event_id, stripe_events.c.status != EventStatus.PROCESSED
                )
                .values(status=EventStatus.PROCESSED, processed_at=self.now, last_error=None)
            ).rowcount
            if not claimed:
                self.duplicate = True
                return "already processed"
            outcome = work(conn)
            conn.execute(
                update(stripe_events)
                .where(stripe_events.c.id == event_id)
                .values(outcome=outcome[:2000], account_id=self.account_id)
            )
            return outcome

        outcome = idempotent_write(self.engine, txn)
        self.committed = True
        return outcome


Handler = Callable[[EventContext], str]


@dataclass(frozen=True, slots=True)
class Route:
    """The handler for some event types; `when(event object)` narrows it (e.g. by
    Checkout mode)."""

    types: tuple[str, ...]
    handler: Handler
    when: Callable[[dict[str, Any]], bool] | None = None


def handler_for(routes: Sequence[Route], event: dict[str, Any]) -> Handler | None:
    """The handler of the first route for this event's type and object, or None."""
    for route in routes:
        if event["type"] in route.types and (
            route.when is None or route.when(event["data"]["object"])
        ):
            return route.handler
    return None


def parse_webhook(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """Verify the `Stripe-Signature` header over the raw body and parse the event.

    Uses the SDK's verification with its default tolerance (300 s; older timestamps
    are rejected). Amounts stay exact: JSON numbers with a fraction become Decimal.
    Returns: the event as a dict. Raises: WebhookRejected.
    """
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature, secret, tolerance=stripe.Webhook.DEFAULT_TOLERANCE
        )
    except stripe.SignatureVerificationError as exc:
        raise WebhookRejected(f"invalid Stripe signature: {exc.user_message or exc}") from None
    except UnicodeDecodeError:
        raise WebhookRejected("the webhook body is not UTF-8") from None
    try:
        event = json.loads(payload, parse_float=Decimal)
    except ValueError as exc:
        raise WebhookRejected(f"malformed JSON: {exc}") from None
    if not (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and event["id"].startswith("evt_")
        and len(event["id"]) <= 255
        and isinstance(event.get("type"), str)
        and isinstance(event.get("data"), dict)
        and isinstance(event["data"].get("object"), dict)
    ):
        raise WebhookRejected("not a Stripe event (needs id 'evt_...', type, data.object)")
    return event


def _record_received(engine: Engine, event: dict[str, Any], now: datetime) -> bool:
    """Insert the event as received, or count another delivery. Returns True if it
    was already processed."""
    created = event.get("created")
    stripe_created = (
        datetime.fromtimestamp(created, UTC)
        if isinstance(created, int) and 0 <= created < 2**33  # before year 2242
        else None
    )

    def work(conn: Connection) -> bool:
        stmt = dialect_insert(conn, stripe_events).values(
            id=event["id"],
            type=event["type"][:100],
            status=EventStatus.RECEIVED,
            attempts=1,
            stripe_created_at=stripe_created,
            received_at=now,
        )
        row = conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["id"], set_={"attempts": stripe_events.c.attempts + 1}
            ).returning(stripe_events.c.status)
        ).one()
        return row.status == EventStatus.PROCESSED

    return run_write(engine, work)


def _record_failure(engine: Engine, event_id: str, error: BaseException) -> None:
    message = f"{type(error).__name__}: {error}"[:2000]
    run_write(
        engine,
        lambda conn: conn.execute(
            update(stripe_events)
            .where(stripe_events.c.id == event_id, stripe_events.c.status != EventStatus.PROCESSED)
            .values(status=EventStatus.FAILED, last_error=message)
        ),
    )


def process_event(
    engine: Engine,
    event: dict[str, Any],
    *,
    routes: Sequence[Route],
    client: stripe.StripeClient | None = None,
    now: datetime | None = None,
) -> WebhookResult:
    """Process one verified event exactly once (see the module docstring), with the
    handler of the first matching route in `routes`.

    Returns: WebhookResult. Raises: whatever the handler raised (recorded as failed).
    """
    at = now or datetime.now(UTC)
    event_id, event_type = event["id"], event["type"]
    if _record_received(engine, event, at):
        return WebhookResult(event_id, event_type, Reply.DUPLICATE, "already processed")
    handler = handler_for(routes, event)
    if handler is None:
        run_write(
            engine,
            lambda conn: conn.execute(
                update(stripe_events)
                .where(
                    stripe_events.c.id == event_id, stripe_events.c.status != EventStatus.PROCESSED
                )
                .values(status=EventStatus.IGNORED, outcome="no handler for this event type")
            ),
        )
        return WebhookResult(event_id, event_type, Reply.IGNORED, "no handler for this event type")
    ctx = EventContext(engine, event, at, client)
    try:
        outcome = handler(ctx)
        if not ctx.committed:
            outcome = ctx.commit(lambda conn: outcome)
    except Exception as exc:  # recorded for the admin, then re-raised: Stripe retries
        _record_failure(engine, event_id, exc)
        raise
    reply = Reply.DUPLICATE if ctx.duplicate else Reply.PROCESSED
    return WebhookResult(event_id, event_type, reply, outcome)


def event_counts(engine: Engine) -> dict[str, int]:
    """How many Stripe events are in each status (received, processed, ignored,
    failed), for the admin's integrity page. Rejected deliveries (HTTP 400) are not
    stored, so they are not counted here."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(stripe_events.c.status, func.count()).group_by(stripe_events.c.status)
        ).all()
    return {str(status): int(count) for status, count in rows}


def webhook_secret(settings: Settings | None = None) -> str:
    """The endpoint secret. Raises: ConfigurationError when not set."""
    secret = (settings or get_settings()).stripe_webhook_secret
    if secret is None or not secret.get_secret_value().strip():
        raise ConfigurationError(
            "the Stripe webhook is not configured: set PRICING_STRIPE_WEBHOOK_SECRET"
        )
    return secret.get_secret_value()


def handle_webhook(
    engine: Engine,
    payload: bytes,
    signature: str | None,
    *,
    routes: Sequence[Route],
    settings: Settings | None = None,
    client: stripe.StripeClient | None = None,
    now: datetime | None = None,
) -> WebhookResult:
    """Verify, record and process one webhook delivery.

    Raises: ConfigurationError (no endpoint secret), WebhookRejected (HTTP 400:
    nothing written), or the processing error (HTTP 500: nothing half-written).
    """
    event = parse_webhook(payload, signature, webhook_secret(settings))
    return process_event(engine, event, routes=routes, client=client, now=now)
