"""POST /stripe/webhook through the real HTTP route: signatures, duplicates, ordering,
failures, refunds and disputes. Events are signed exactly as Stripe signs them."""

from __future__ import annotations

import json
import time
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from pricing_core.adapters.schema_billing import stripe_events
from pricing_core.admin.accounts import adjust_balance
from pricing_core.billing import checkout, fulfilment, sessions
from pricing_core.billing.webhooks import event_counts
from pricing_core.domain.principal import Principal
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account, get_wallet
from tests.fakes.stripe_server import sign
from tests.integration.stripe_helpers import (
    counts,
    deliver,
    open_session,
    paid_session,
    purchase_entries,
    webhook_client,
)

ACCT = Principal("acct", "acct")

OPENING = Decimal("1")
NANO = Decimal("1e-9")


@pytest.fixture
def acct(engine):
    create_account(engine, "acct", name="Ada", opening_credit=OPENING)
    return "acct"


@pytest.fixture
def client():
    return webhook_client()


def completed(fake, sid: str, kind: str = "checkout.session.completed") -> dict:
    return fake.event(kind, fake.session_object(sid))


def balance(engine) -> Decimal:
    return get_wallet(engine, "acct").balance


def event_rows(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(stripe_events).order_by(stripe_events.c.received_at)).all()


def test_the_same_event_delivered_five_times_credits_once(engine, fake_stripe, acct, client):
    sid = paid_session(engine, fake_stripe)
    event = completed(fake_stripe, sid)
    replies = [deliver(client, fake_stripe, event) for _ in range(5)]
    assert [r.status_code for r in replies] == [200] * 5
    assert [r.json()["status"] for r in replies] == ["processed"] + ["duplicate"] * 4
    assert balance(engine) == OPENING + Decimal("20")
    (row,) = event_rows(engine)
    assert (row.status, row.attempts, row.account_id) == ("processed", 5, "acct")
    assert event_counts(engine) == {"processed": 1}
    assert verify_ledger(engine).ok


def test_async_payment_succeeded_arriving_before_completed_credits_once(
    engine, fake_stripe, acct, client
):
    sid = open_session(engine)
    fake_stripe.pay(sid, async_payment=True)
    completed_snapshot = completed(fake_stripe, sid)  # taken while still unpaid
    assert fulfilment.fulfil_checkout(engine, sid).outcome == sessions.Outcome.PROCESSING
    fake_stripe.settle_async(sid, succeeded=True)
    succeeded = completed(fake_stripe, sid, "checkout.session.async_payment_succeeded")
    assert deliver(client, fake_stripe, succeeded).status_code == 200
    assert balance(engine) == OPENING + Decimal("20")
    assert deliver(client, fake_stripe, completed_snapshot).status_code == 200
    assert deliver(client, fake_stripe, succeeded).json()["status"] == "duplicate"
    assert balance(engine) == OPENING + Decimal("20")
    assert verify_ledger(engine).ok


def test_a_completed_async_payment_shows_processing_until_it_fails(
    engine, fake_stripe, acct, client
):
    sid = open_session(engine)
    fake_stripe.pay(sid, async_payment=True)
    assert deliver(client, fake_stripe, completed(fake_stripe, sid)).status_code == 200
    (purchase,) = checkout.list_purchases(engine, ACCT)
    assert purchase.status == "processing"
    fake_stripe.settle_async(sid, succeeded=False)
    failed = completed(fake_stripe, sid, "checkout.session.async_payment_failed")
    assert deliver(client, fake_stripe, failed).status_code == 200
    assert checkout.list_purchases(engine, ACCT)[0].status == "failed"
    assert fulfilment.fulfil_checkout(engine, sid).outcome == sessions.Outcome.FAILED
    assert balance(engine) == OPENING
    assert deliver(client, fake_stripe, failed).status_code == 200  # a repeat: one email
    with engine.connect() as conn:
        told = conn.execute(sa.text("SELECT kind, account_id, key FROM notifications")).all()
    assert [tuple(r) for r in told] == [
        ("payment_failed", ACCT.account_id, f"payment_failed:{sid}")
    ]


def test_an_expired_session_is_marked_and_never_credited(engine, fake_stripe, acct, client):
    sid = open_session(engine)
    fake_stripe.expire(sid)
    assert (
        deliver(
            client, fake_stripe, completed(fake_stripe, sid, "checkout.session.expired")
        ).status_code
        == 200
    )
    assert checkout.list_purchases(engine, ACCT)[0].status == "expired"
    assert fulfilment.fulfil_checkout(engine, sid).outcome == sessions.Outcome.EXPIRED
    assert balance(engine) == OPENING


def _post(client, body: bytes, signature: str | None):
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return client.post("/stripe/webhook", content=body, headers=headers)


@pytest.mark.parametrize(
    "case",
    [
        "bad signature",
        "stale timestamp",
        "malformed JSON",
        "signature over a different body",
        "no signature header",
        "not an event",
    ],
)
def test_a_forged_stale_or_malformed_delivery_is_rejected_with_nothing_written(
    engine, fake_stripe, acct, client, case
):
    sid = paid_session(engine, fake_stripe)
    body = json.dumps(completed(fake_stripe, sid)).encode()
    secret = fake_stripe.webhook_secret
    if case == "bad signature":
        reply = _post(client, body, sign(body, "whsec_not_the_secret"))
    elif case == "stale timestamp":
        reply = _post(client, body, sign(body, secret, int(time.time()) - 301))
    elif case == "malformed JSON":
        garbage = b'{"id": "evt_1", "type": "checkout.session.completed", '
        reply = _post(client, garbage, sign(garbage, secret))
    elif case == "signature over a different body":
        other = json.dumps(completed(fake_stripe, sid)).encode()  # another event id
        reply = _post(client, body, sign(other, secret))
    elif case == "no signature header":
        reply = _post(client, body, None)
    else:
        bare = b'{"id": "evt_1", "type": "x", "data": []}'
        reply = _post(client, bare, sign(bare, secret))
    assert reply.status_code == 400, reply.text
    assert secret not in reply.text
    assert counts(engine) == (1, 0, 0)  # the opening grant only; no event, no fulfilment
    assert balance(engine) == OPENING


def test_an_unknown_event_type_is_acknowledged_and_ignored(engine, fake_stripe, acct, client):
    reply = deliver(client, fake_stripe, fake_stripe.event("customer.created", {"id": "cus_1"}))
    assert reply.status_code == 200 and reply.json()["status"] == "ignored"
    assert [r.status for r in event_rows(engine)] == ["ignored"]
    assert event_counts(engine) == {"ignored": 1}
    assert counts(engine)[0] == 1


def test_a_stripe_outage_while_processing_returns_500_and_a_retry_credits_once(
    engine, fake_stripe, acct, client
):
    sid = paid_session(engine, fake_stripe)
    event = completed(fake_stripe, sid)
    fake_stripe.fail_next = [500] * 10  # more than the SDK's own retries
    reply = deliver(client, fake_stripe, event)
    assert reply.status_code == 500
    assert balance(engine) == OPENING
    (row,) = event_rows(engine)
    assert row.status == "failed" and "Stripe" in row.last_error
    assert event_counts(engine) == {"failed": 1}
    fake_stripe.fail_next = []
    assert deliver(client, fake_stripe, event).json()["status"] == "processed"
    assert balance(engine) == OPENING + Decimal("20")
    assert verify_ledger(engine).ok


def test_a_failure_inside_the_fulfilment_transaction_writes_nothing(
    engine, fake_stripe, acct, client, monkeypatch
):
    sid = paid_session(engine, fake_stripe)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    # fails after the purchase and bonus entries were written in the transaction
    monkeypatch.setattr(fulfilment, "set_session", broken)
    reply = deliver(client, fake_stripe, completed(fake_stripe, sid))
    assert reply.status_code == 500
    assert purchase_entries(engine, sid) == []
    assert balance(engine) == OPENING
    (row,) = event_rows(engine)
    assert row.status == "failed" and "disk full" in row.last_error
    assert checkout.list_purchases(engine, ACCT)[0].status == "open"
    assert verify_ledger(engine).ok


def _refund_share(total: Decimal, refunded_cents: int, paid_cents: int) -> Decimal:
    return (total * refunded_cents / paid_cents).quantize(NANO, ROUND_HALF_EVEN)


def test_a_refund_delivered_twice_debits_once(engine, fake_stripe, acct, client):
    sid = paid_session(engine, fake_stripe)
    deliver(client, fake_stripe, completed(fake_stripe, sid))
    pi = fake_stripe.sessions[sid]["payment_intent"]
    refund = fake_stripe.refund(payment_intent=pi, amount=900)
    charge = fake_stripe.charges[refund["charge"]]
    events = [
        fake_stripe.event("charge.refunded", charge),
        fake_stripe.event("refund.created", refund),
    ]
    for event in events + events:  # each delivered twice, and both name the same refund
        assert deliver(client, fake_stripe, event).status_code == 200
    taken = _refund_share(Decimal("20"), 900, 1799)
    assert balance(engine) == OPENING + Decimal("20") - taken
    kinds = [k for k, _ in purchase_entries(engine, sid)]
    assert kinds == ["purchase", "bonus", "refund"]
    assert checkout.list_purchases(engine, ACCT)[0].refunded == Decimal("9.00")
    assert verify_ledger(engine).ok


def test_partial_refunds_that_add_up_to_the_payment_take_back_exactly_the_credit(
    engine, fake_stripe, acct, client
):
    sid = paid_session(engine, fake_stripe)
    deliver(client, fake_stripe, completed(fake_stripe, sid))
    pi = fake_stripe.sessions[sid]["payment_intent"]
    for cents in (333, 333, 1133):
        refund = fake_stripe.refund(payment_intent=pi, amount=cents)
        deliver(client, fake_stripe, fake_stripe.event("refund.created", refund))
    assert balance(engine) == OPENING
    assert verify_ledger(engine).ok


def test_a_refund_after_the_credits_were_spent_leaves_the_balance_negative(
    engine, fake_stripe, acct, client
):
    sid = paid_session(engine, fake_stripe)
    deliver(client, fake_stripe, completed(fake_stripe, sid))
    adjust_balance(engine, OPS, "acct", Decimal("-20.5"), reason="spent", idempotency_key="t-spent")
    pi = fake_stripe.sessions[sid]["payment_intent"]
    refund = fake_stripe.refund(payment_intent=pi)
    deliver(
        client,
        fake_stripe,
        fake_stripe.event("charge.refunded", fake_stripe.charges[refund["charge"]]),
    )
    assert balance(engine) == OPENING + Decimal("20") - Decimal("20.5") - Decimal("20")
    assert balance(engine) < 0
    assert verify_ledger(engine).ok


def test_a_refund_that_fails_later_gives_the_credit_back(engine, fake_stripe, acct, client):
    sid = paid_session(engine, fake_stripe)
    deliver(client, fake_stripe, completed(fake_stripe, sid))
    pi = fake_stripe.sessions[sid]["payment_intent"]
    refund = fake_stripe.refund(payment_intent=pi, amount=1799, status="pending")
    deliver(client, fake_stripe, fake_stripe.event("refund.created", refund))
    assert balance(engine) == OPENING
    failed = fake_stripe.set_refund_status(refund["id"], "failed")
    for _ in range(2):
        deliver(client, fake_stripe, fake_stripe.event("refund.failed", failed))
    assert balance(engine) == OPENING + Decimal("20")
    assert verify_ledger(engine).ok


def test_a_refund_arriving_before_the_purchase_was_fulfilled_is_still_applied(
    engine, fake_stripe, acct, client
):
    sid = paid_session(engine, fake_stripe)  # no webhook, buyer never returned
    pi = fake_stripe.sessions[sid]["payment_intent"]
    refund = fake_stripe.refund(payment_intent=pi, amount=1799)
    deliver(client, fake_stripe, fake_stripe.event("refund.created", refund))
    deliver(client, fake_stripe, completed(fake_stripe, sid))
    assert balance(engine) == OPENING
    assert [k for k, _ in purchase_entries(engine, sid)] == ["purchase", "bonus", "refund"]
    assert verify_ledger(engine).ok


@pytest.mark.parametrize(("closing", "expected"), [("won", Decimal("20")), ("lost", Decimal("0"))])
def test_a_dispute_holds_the_credit_back_then_releases_or_keeps_it(
    engine, fake_stripe, acct, client, closing, expected
):
    sid = paid_session(engine, fake_stripe)
    deliver(client, fake_stripe, completed(fake_stripe, sid))
    charge_id = fake_stripe.payment_intents[fake_stripe.sessions[sid]["payment_intent"]][
        "latest_charge"
    ]
    dispute = fake_stripe.dispute(charge_id)
    for _ in range(2):
        deliver(client, fake_stripe, fake_stripe.event("charge.dispute.created", dispute))
    assert balance(engine) == OPENING
    assert checkout.list_purchases(engine, ACCT)[0].dispute_status == "held"
    closed = fake_stripe.set_dispute_status(dispute["id"], closing)
    for _ in range(2):
        deliver(client, fake_stripe, fake_stripe.event("charge.dispute.closed", closed))
    assert balance(engine) == OPENING + expected
    assert checkout.list_purchases(engine, ACCT)[0].dispute_status == closing
    assert verify_ledger(engine).ok


def test_without_an_endpoint_secret_the_webhook_refuses_with_503(
    engine, fake_stripe, acct, client, monkeypatch
):
    from pricing_core.config import get_settings

    monkeypatch.delenv("PRICING_STRIPE_WEBHOOK_SECRET")
    get_settings.cache_clear()
    sid = paid_session(engine, fake_stripe)
    assert deliver(client, fake_stripe, completed(fake_stripe, sid)).status_code == 503
    assert counts(engine) == (1, 0, 0)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
_bodies = st.one_of(
    st.binary(max_size=300),
    _json.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {
            "id": st.text(max_size=12),
            "type": st.sampled_from(["checkout.session.completed", "charge.refunded", "x"]),
            "data": st.one_of(_json, st.fixed_dictionaries({"object": _json})),
        }
    ).map(lambda v: json.dumps(v).encode()),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=_bodies)
def test_a_correctly_signed_but_hostile_body_never_credits_anything(sqlite_url, monkeypatch, body):
    from pricing_core.config import get_settings

    monkeypatch.setenv("PRICING_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("PRICING_STRIPE_WEBHOOK_SECRET", "whsec_hostile")
    monkeypatch.setenv("PRICING_STRIPE_SECRET_KEY", "sk_test_unused")
    monkeypatch.setenv("PRICING_STRIPE_API_BASE", "http://127.0.0.1:9")  # nothing listens
    get_settings.cache_clear()
    from pricing_core.adapters.storage import make_engine

    engine = make_engine(sqlite_url)
    try:
        before = counts(engine)
        reply = webhook_client().post(
            "/stripe/webhook",
            content=body,
            headers={"Stripe-Signature": sign(body, "whsec_hostile")},
        )
        assert reply.status_code in (200, 400, 500), reply.text
        entries, _, fulfilled = counts(engine)
        assert (entries, fulfilled) == (before[0], before[2])
        if reply.status_code == 400:
            assert counts(engine) == before
    finally:
        engine.dispose()


def test_secrets_never_appear_in_errors_replies_logs_or_the_event_log(
    engine, fake_stripe, acct, client, caplog
):
    import logging

    from pricing_core.billing.stripe_api import StripeUnavailable
    from pricing_core.config import get_settings

    caplog.set_level(logging.DEBUG)
    key, secret = fake_stripe.api_key, fake_stripe.webhook_secret
    sid = paid_session(engine, fake_stripe)
    fake_stripe.api_key = "sk_test_rotated"  # the configured key no longer works
    with pytest.raises(StripeUnavailable) as failure:
        open_session(engine, key="after-rotation")
    reply = deliver(client, fake_stripe, completed(fake_stripe, sid))
    assert reply.status_code == 500
    (row,) = event_rows(engine)
    texts = [str(failure.value), reply.text, caplog.text, row.last_error, repr(get_settings())]
    assert "Invalid API Key" in row.last_error
    for text in texts:
        assert key not in text and secret not in text


def test_the_same_event_delivered_five_times_at_once_credits_once(engine, fake_stripe, acct):
    import threading

    sid = paid_session(engine, fake_stripe)
    event = completed(fake_stripe, sid)
    barrier = threading.Barrier(5)
    replies: list[tuple[int, str]] = []

    def hook() -> None:
        client = webhook_client()
        barrier.wait()
        reply = deliver(client, fake_stripe, event)
        replies.append((reply.status_code, reply.json().get("status")))

    threads = [threading.Thread(target=hook) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(replies) == [(200, "duplicate")] * 4 + [(200, "processed")]
    assert balance(engine) == OPENING + Decimal("20")
    assert event_counts(engine) == {"processed": 1}
    assert verify_ledger(engine).ok


OPS = Principal("ops", "ops", role="admin", email="ops@example.com")
