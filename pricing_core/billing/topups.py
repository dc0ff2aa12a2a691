"""Auto top-up payments: the worker that charges the saved card off-session, and the
webhook handlers that credit the wallet exactly once.

`run_topups` claims each due `topups` row (pending -> processing, one statement, so
two workers never charge the same row), creates an off-session PaymentIntent keyed
`topup:<id>:<attempt>` (a retried request is the same payment at Stripe), and keeps
the intent's id. The credit is posted only by `apply_payment_intent_on`, which the
`payment_intent.*` webhooks call with the intent's current state read from Stripe
(and `run_topups` for an intent whose event is late): ledger key `topup:<id>`, so
duplicates and late or out-of-order events change nothing. A claim whose worker
died before Stripe answered is given back after `LATE_EVENT` and retried with the
same key.

A decline or a card that needs its owner (`authentication_required`) is recorded as
an attempt, tells the users (a `payment_failed` notification) and retries after
`BACKOFF`; the third failure in a row gives the top-up up and turns auto top-up off,
with the reason shown on the Billing page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.engine import Connection

from pricing_core.adapters.outbox import Kind, enqueue_on
from pricing_core.adapters.schema_payments import auto_topups, topup_attempts, topups
from pricing_core.adapters.storage import run_write
from pricing_core.billing import stripe_api
from pricing_core.billing.autotopup import FAILURES_TO_DISABLE, forget_threshold
from pricing_core.billing.customers import customer_of, saved_cards
from pricing_core.billing.webhooks import EventContext, Route
from pricing_core.ledger.wallets import EntryKind, post_entry

BACKOFF = (timedelta(minutes=15), timedelta(hours=2))  # after the 1st and 2nd failure
LATE_EVENT = timedelta(minutes=10)  # ask Stripe about an intent whose event is this late
TOPUP_KIND = "auto_topup"  # PaymentIntent metadata: which intents are ours to credit


@dataclass(slots=True)
class TopupRun:
    """What one `run_topups` pass did (counts)."""

    charged: int = 0  # PaymentIntents that succeeded (credited when the event comes)
    failed: int = 0  # attempts that failed (declined, needs the owner, Stripe down)
    settled: int = 0  # late intents whose state was read from Stripe and applied
    outcomes: list[str] = field(default_factory=list)


def _claim(engine: Engine, topup_id: int, now: datetime) -> Any | None:
    def work(conn: Connection) -> Any | None:
        claimed = conn.execute(
            update(topups)
            .where(topups.c.id == topup_id, topups.c.status == "pending")
            .values(status="processing", attempts=topups.c.attempts + 1, updated_at=now)
            .returning(*topups.c)
        ).first()
        return claimed

    return run_write(engine, work)


def _attempt_on(
    conn: Connection,
    row: Any,
    outcome: str,
    *,
    now: datetime,
    intent: str | None,
    error: str | None,
) -> None:
    conn.execute(
        insert(topup_attempts).values(
            account_id=row.account_id,
            topup_id=row.id,
            attempt=row.attempts,
            payment_intent=intent,
            outcome=outcome,
            error=error,
            created_at=now,
        )
    )


def _fail_on(
    conn: Connection, row: Any, *, outcome: str, error: str, intent: str | None, now: datetime
) -> str:
    """Record a failed attempt: notify, and retry later or give up (3 in a row)."""
    _attempt_on(conn, row, outcome, now=now, intent=intent, error=error)
    a = auto_topups.c
    failures = conn.execute(
        update(auto_topups)
        .where(a.account_id == row.account_id)
        .values(failures=a.failures + 1, updated_at=now)
        .returning(a.failures)
    ).scalar_one()
    enqueue_on(
        conn,
        key=f"payment_failed:topup:{row.id}:{row.attempts}",
        kind=Kind.PAYMENT_FAILED,
        account_id=row.account_id,
        payload={"amount": str(row.credits), "auto_topup": True, "reason": error},
        now=now,
    )
    if failures >= FAILURES_TO_DISABLE:
        reason = f"{failures} payments in a row failed (last: {error})"
        conn.execute(
            update(auto_topups)
            .where(a.account_id == row.account_id)
            .values(enabled=False, disabled_reason=reason, updated_at=now)
        )
        status, retry_at = "failed", now
    else:
        status, retry_at = "pending", now + BACKOFF[min(failures, len(BACKOFF)) - 1]
    conn.execute(
        update(topups)
        .where(topups.c.id == row.id)
        .values(status=status, next_attempt_at=retry_at, last_error=error, updated_at=now)
    )
    return f"top-up {row.id} attempt {row.attempts} {outcome}: {error}"


def _charge(
    engine: Engine, client: stripe.StripeClient, row: Any, now: datetime
) -> tuple[bool, str]:
    """Charge the top-up's card once. Returns (Stripe took the payment, what happened)."""
    customer = customer_of(engine, row.account_id)
    try:
        cards = saved_cards(client, customer) if customer else []
        if not cards:
            error = "no saved card: buy a pack once with a card, or add one on Stripe"
            return False, run_write(
                engine,
                lambda conn: _fail_on(
                    conn, row, outcome="declined", error=error, intent=None, now=now
                ),
            )
        params = {
            "amount": row.amount_cents,
            "currency": row.currency,
            "customer": customer,
            "payment_method": cards[0].id,
            "description": "Auto top-up",
            "metadata": {
                "kind": TOPUP_KIND,
                "account_id": row.account_id,
                "topup_id": str(row.id),
            },
        }
        intent = stripe_api.charge_off_session(
            client, params, idempotency_key=f"topup:{row.id}:{row.attempts}"
        )
    except stripe_api.PaymentDeclined as exc:
        outcome = "requires_action" if exc.requires_action else "declined"
        error, intent_id = str(exc), exc.payment_intent
        return False, run_write(
            engine,
            lambda conn: _fail_on(
                conn, row, outcome=outcome, error=error, intent=intent_id, now=now
            ),
        )
    except stripe_api.StripeUnavailable as exc:
        message = str(exc)
        return False, run_write(engine, lambda conn: _retry_later_on(conn, row, message, now))

    def keep(conn: Connection) -> str:
        _attempt_on(conn, row, "succeeded", now=now, intent=intent["id"], error=None)
        conn.execute(
            update(topups)
            .where(topups.c.id == row.id)
            .values(payment_intent=intent["id"], updated_at=now)
        )
        return f"top-up {row.id} charged ({intent['id']})"

    return True, run_write(engine, keep)


def _retry_later_on(conn: Connection, row: Any, error: str, now: datetime) -> str:
    """Stripe was unreachable: not the card's fault, so no failure is counted; the
    attempt number is given back, so the retry reuses the idempotency key and Stripe
    answers with the payment it may already have made."""
    _attempt_on(conn, row, "error", now=now, intent=None, error=error)
    conn.execute(
        update(topups)
        .where(topups.c.id == row.id)
        .values(
            status="pending",
            attempts=topups.c.attempts - 1,
            next_attempt_at=now + BACKOFF[0],
            last_error=error,
            updated_at=now,
        )
    )
    return f"top-up {row.id}: {error}"


def apply_payment_intent_on(conn: Connection, intent: dict[str, Any], *, now: datetime) -> str:
    """Apply an auto top-up PaymentIntent's current state (read from Stripe): credit
    the wallet once when it succeeded with the top-up's amount; record a failure
    when the top-up's current attempt failed; otherwise nothing."""
    t = topups.c
    row = conn.execute(
        select(topups).where(t.payment_intent == intent.get("id")).with_for_update()
    ).first()
    if row is None:
        return f"ignored: no top-up for payment {intent.get('id')!r}"
    status = intent.get("status")
    if status == "succeeded":
        if row.status == "succeeded":
            return f"top-up {row.id} already credited"
        received = intent.get("amount_received")
        if received != row.amount_cents or intent.get("currency") != row.currency:
            return (
                f"top-up {row.id} not credited: Stripe received {received} {intent.get('currency')}"
            )
        post_entry(
            conn,
            account_id=row.account_id,
            amount=row.credits,
            kind=EntryKind.PURCHASE,
            idempotency_key=f"topup:{row.id}",
            reference=str(intent["id"]),
            reason="auto top-up",
            now=now,
        )
        conn.execute(
            update(topups)
            .where(t.id == row.id)
            .values(status="succeeded", credited_at=now, last_error=None, updated_at=now)
        )
        conn.execute(
            update(auto_topups).where(auto_topups.c.account_id == row.account_id).values(failures=0)
        )
        return f"top-up {row.id} credited {row.credits} USD"
    if status in ("requires_payment_method", "requires_action", "canceled"):
        if row.status != "processing":
            return f"top-up {row.id} is {row.status}: nothing to do"
        error = (intent.get("last_payment_error") or {}).get("message") or f"payment {status}"
        outcome = "requires_action" if status == "requires_action" else "declined"
        return _fail_on(conn, row, outcome=outcome, error=error, intent=intent["id"], now=now)
    return f"top-up {row.id}: payment is {status}"


def run_topups(
    engine: Engine,
    *,
    client: stripe.StripeClient | None = None,
    now: datetime | None = None,
    limit: int = 100,
) -> TopupRun:
    """Charge every due top-up once, and settle those whose webhook is late.

    Raises: ConfigurationError without a Stripe key (nothing is claimed then)."""
    at = now or datetime.now(UTC)
    client = client or stripe_api.stripe_client()
    run = TopupRun()
    t = topups.c
    # A worker that died between its claim and Stripe's answer left its row
    # "processing" without an intent: give the attempt back, so the retry sends the
    # same idempotency key and Stripe answers with the payment it may have made.
    run_write(
        engine,
        lambda conn: conn.execute(
            update(topups)
            .where(
                t.status == "processing",
                t.payment_intent.is_(None),
                t.updated_at <= at - LATE_EVENT,
            )
            .values(status="pending", attempts=t.attempts - 1, updated_at=at)
        ),
    )
    with engine.connect() as conn:
        due = (
            conn.execute(
                select(t.id)
                .where(t.status == "pending", t.next_attempt_at <= at)
                .order_by(t.next_attempt_at, t.id)
                .limit(limit)
            )
            .scalars()
            .all()
        )
        late = (
            conn.execute(
                select(t.payment_intent)
                .where(
                    t.status == "processing",
                    t.payment_intent.is_not(None),
                    t.updated_at <= at - LATE_EVENT,
                )
                .limit(limit)
            )
            .scalars()
            .all()
        )
    for topup_id in due:
        row = _claim(engine, topup_id, at)
        if row is None:
            continue  # another worker has it
        charged, outcome = _charge(engine, client, row, at)
        run.charged += charged
        run.failed += not charged
        run.outcomes.append(outcome)
    for intent_id in late:
        intent = stripe_api.retrieve_payment_intent(client, intent_id)

        def settle(conn: Connection, intent: dict[str, Any] = intent) -> str:
            return apply_payment_intent_on(conn, intent, now=at)

        run.outcomes.append(run_write(engine, settle))
        run.settled += 1
    forget_threshold()
    return run


def _ours(obj: dict[str, Any]) -> bool:
    return (obj.get("metadata") or {}).get("kind") == TOPUP_KIND


def payment_intent_event(ctx: EventContext) -> str:
    """Any `payment_intent.*` event of an auto top-up: apply the intent's current state."""
    try:
        intent = stripe_api.retrieve_payment_intent(ctx.client, str(ctx.object.get("id")))
    except stripe_api.StripeObjectMissing as exc:
        return f"ignored: {exc}"
    ctx.account_id = (intent.get("metadata") or {}).get("account_id")
    return ctx.commit(lambda conn: apply_payment_intent_on(conn, intent, now=ctx.now))


# The auto top-up routes, joined with the other areas' in `api.http`.
ROUTES: tuple[Route, ...] = (
    Route(
        (
            "payment_intent.succeeded",
            "payment_intent.payment_failed",
            "payment_intent.requires_action",
            "payment_intent.canceled",
        ),
        payment_intent_event,
        when=_ours,
    ),
)
