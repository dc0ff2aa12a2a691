"""Auto top-up through the real Stripe SDK against the fake server: a charge that
takes the balance below the threshold starts one top-up (32 racing charges too), the
worker charges the card saved at checkout off-session, and the credit is posted once,
on `payment_intent.succeeded`, whatever the order or number of deliveries. A declining
card is retried with backoff and turns auto top-up off after the third failure.

Expected balances are the test's own sums of the fixed prices and the top-up amount."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricing_core.access.apikeys import create_api_key, reset_default_limiter
from pricing_core.adapters import storage
from pricing_core.adapters.schema import ledger_entries
from pricing_core.adapters.schema_notify import notifications
from pricing_core.adapters.schema_payments import topup_attempts, topups
from pricing_core.admin.prices import set_operation_price
from pricing_core.billing.autotopup import configure_auto_topup, get_auto_topup
from pricing_core.billing.customers import add_card_url, list_payment_methods, manage_methods_url
from pricing_core.billing.fulfilment import fulfil_checkout
from pricing_core.billing.topups import run_topups
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account, get_wallet
from pricing_core.metering.record import record_usage
from tests.admin_support import ADMIN
from tests.integration.stripe_helpers import deliver, open_session, webhook_client

OWNER = Principal("u1", "acct")
PRICE = Decimal("0.25")  # per image
START = Decimal(5) + Decimal(20)  # opening credit + the Popular pack ($17.99 -> $20)


def setup_account(engine, fake, *, card: str = "visa") -> None:
    """$5 opening credit, then the Popular pack bought through Checkout with `card`
    (saved for later use), and a fixed $0.25 price per image."""
    create_account(engine, "acct", name="Acct", user_id="u1", opening_credit=Decimal(5))
    set_operation_price(
        engine, ADMIN, "image_generation", price=PRICE, provider_cost=Decimal("0.05"),
        effective_from=None, reason="test price",
    )  # fmt: skip
    fake.card_for_next_payment = card
    sid = open_session(engine, "acct", "popular-v1", "buy-1")
    fake.pay(sid)
    assert fulfil_checkout(engine, sid, viewer=OWNER).is_credited
    assert get_wallet(engine, "acct").balance == START


def image(n: int) -> UsageEvent:
    return UsageEvent(f"img-{n}", "acct", "u1", "image_generation", "openai", "dall-e-3", 0, 0)


def enable(engine, threshold: str = "20", amount: str = "10") -> None:
    configure_auto_topup(
        engine, OWNER, enabled=True, threshold=Decimal(threshold), amount=Decimal(amount),
        monthly_max=Decimal(50),
    )  # fmt: skip


def rows(engine, table):
    with engine.connect() as conn:
        return conn.execute(sa.select(table).order_by(table.c.id)).all()


def topup_credits(engine) -> list[Decimal]:
    le = ledger_entries.c
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(le.amount).where(le.idempotency_key.like("topup:%")).order_by(le.id)
            ).scalars()
        )


def intent_event(fake, kind: str, intent_id: str, **changes):
    snapshot = {**fake.payment_intents[intent_id], **changes}
    return fake.event(kind, snapshot)


def test_checkout_saves_the_card_and_the_portal_manages_it(engine, fake_stripe):
    setup_account(engine, fake_stripe)
    [method] = list_payment_methods(engine, OWNER)
    assert method.last4 == "4242" and "Visa ending 4242" in method.label
    [request] = [r for r in fake_stripe.requests if r["path"] == "/v1/checkout/sessions"]
    assert request["params"]["payment_intent_data"]["setup_future_usage"] == "off_session"
    assert request["params"]["invoice_creation"]["enabled"] == "true"
    url = manage_methods_url(engine, OWNER)
    portal = fake_stripe.portal_sessions[url.rsplit("/", 1)[1]]
    assert portal["customer"] == request["params"]["customer"]
    assert portal["return_url"].endswith("/billing")


def test_bad_settings_are_refused_and_change_nothing(engine, fake_stripe):
    create_account(engine, "acct", name="Acct", user_id="u1", opening_credit=Decimal(5))
    for kwargs in (
        {"amount": Decimal("0.5")},  # under $1.00
        {"amount": Decimal("10.001")},  # not whole cents
        {"amount": Decimal(10), "package_id": "popular-v1"},  # both
        {},  # neither
        {"amount": Decimal(60)},  # more than the monthly maximum
    ):
        with pytest.raises(InvalidUsage):
            configure_auto_topup(
                engine, OWNER, enabled=True, threshold=Decimal(1), monthly_max=Decimal(50),
                **kwargs,
            )  # fmt: skip
    with pytest.raises(InvalidUsage):
        configure_auto_topup(
            engine, OWNER, enabled=True, threshold=Decimal(0), amount=Decimal(10),
            monthly_max=Decimal(50),
        )  # fmt: skip
    assert get_auto_topup(engine, OWNER) is None


@pytest.mark.postgres
def test_32_concurrent_charges_start_one_topup_credited_once(pg_engine, fake_stripe):
    engine = pg_engine
    setup_account(engine, fake_stripe)
    enable(engine)  # below $20: buy $10
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda n: record_usage(engine, image(n)), range(32)))
    assert all(r.price == PRICE for r in results)
    after_charges = START - 32 * PRICE  # 17.00: the $20 line was crossed once
    assert get_wallet(engine, "acct").balance == after_charges
    [topup] = rows(engine, topups)
    assert (topup.status, topup.amount_cents, topup.credits) == ("pending", 1000, Decimal(10))

    run = run_topups(engine)
    assert (run.charged, run.failed) == (1, 0)
    [topup] = rows(engine, topups)
    assert topup.status == "processing" and topup.payment_intent in fake_stripe.payment_intents
    assert topup_credits(engine) == []  # nothing before Stripe says succeeded

    client = webhook_client()
    succeeded = intent_event(fake_stripe, "payment_intent.succeeded", topup.payment_intent)
    assert deliver(client, fake_stripe, succeeded).status_code == 200
    assert topup_credits(engine) == [Decimal(10)]
    assert get_wallet(engine, "acct").balance == after_charges + 10
    assert rows(engine, topups)[0].status == "succeeded"
    assert run_topups(engine).charged == 0  # nothing left to do
    assert verify_ledger(engine).ok


@pytest.mark.postgres
def test_duplicate_and_out_of_order_deliveries_change_nothing(pg_engine, fake_stripe):
    engine = pg_engine
    setup_account(engine, fake_stripe)
    enable(engine, threshold="25")  # the first charge crosses it
    record_usage(engine, image(1))
    run_topups(engine)
    [topup] = rows(engine, topups)
    intent = topup.payment_intent
    client = webhook_client()
    # a stale "failed" snapshot first, then success twice (a redelivery and a new event
    # id), then the stale failure again: Stripe's current state decides every time
    stale = intent_event(
        fake_stripe, "payment_intent.payment_failed", intent, status="requires_payment_method"
    )
    succeeded = intent_event(fake_stripe, "payment_intent.succeeded", intent)
    again = intent_event(fake_stripe, "payment_intent.succeeded", intent)
    for event in (stale, succeeded, succeeded, again, stale):
        assert deliver(client, fake_stripe, event).status_code == 200
    assert topup_credits(engine) == [Decimal(10)]
    assert get_wallet(engine, "acct").balance == START - PRICE + 10
    assert get_auto_topup(engine, OWNER).failures == 0
    assert [a.outcome for a in rows(engine, topup_attempts)] == ["succeeded"]
    # a Checkout payment's intent is not a top-up: ignored
    checkout_intent = next(p for p in fake_stripe.payment_intents if p != intent)
    other = intent_event(fake_stripe, "payment_intent.succeeded", checkout_intent)
    assert deliver(client, fake_stripe, other).json()["status"] == "ignored"
    assert topup_credits(engine) == [Decimal(10)]


@pytest.mark.postgres
def test_a_declining_card_disables_topup_after_three_failures(pg_engine, fake_stripe):
    engine = pg_engine
    setup_account(engine, fake_stripe, card="declined")
    enable(engine, threshold="25")
    record_usage(engine, image(1))
    t0 = datetime.now(UTC)
    for at in (t0, t0 + timedelta(minutes=16), t0 + timedelta(minutes=16 + 121)):
        assert run_topups(engine, now=at).failed == 1
        assert run_topups(engine, now=at).failed == 0  # backing off: nothing due yet
    [topup] = rows(engine, topups)
    assert topup.status == "failed" and topup.attempts == 3
    settings = get_auto_topup(engine, OWNER)
    assert not settings.enabled and "3 payments in a row failed" in settings.disabled_reason
    assert [a.outcome for a in rows(engine, topup_attempts)] == ["declined"] * 3
    failed = [n for n in rows(engine, notifications) if n.kind == "payment_failed"]
    assert len(failed) == 3
    assert topup_credits(engine) == []
    assert get_wallet(engine, "acct").balance == START - PRICE
    record_usage(engine, image(2))  # off now: no new top-up
    assert len(rows(engine, topups)) == 1


def test_a_card_that_needs_its_owner_is_a_failure_too(engine, fake_stripe):
    setup_account(engine, fake_stripe, card="authentication_required")
    enable(engine, threshold="25")
    record_usage(engine, image(1))
    assert run_topups(engine).failed == 1
    [attempt] = rows(engine, topup_attempts)
    assert attempt.outcome == "requires_action" and attempt.payment_intent
    [topup] = rows(engine, topups)
    assert topup.status == "pending" and topup.last_error
    assert topup_credits(engine) == []


def test_the_api_lists_the_saved_card_stripes_invoice_and_autotopup(engine, fake_stripe):
    setup_account(engine, fake_stripe)
    enable(engine)
    client = webhook_client()
    [session] = fake_stripe.sessions.values()
    completed = fake_stripe.event("checkout.session.completed", session)
    assert deliver(client, fake_stripe, completed).status_code == 200  # keeps the invoice
    create_account(engine, "other", name="Other", user_id="o1", opening_credit=Decimal(1))
    reset_default_limiter()
    own = {"Authorization": f"Bearer {create_api_key(engine, OWNER).secret}"}
    other = {"Authorization": f"Bearer {create_api_key(engine, Principal('o1', 'other')).secret}"}
    methods = client.get("/api/v1/billing/methods", headers=own).json()
    [card] = methods["payment_methods"]
    assert (card["brand"], card["last4"]) == ("visa", "4242")
    topup = methods["auto_topup"]
    assert (topup["threshold"], topup["amount"], topup["monthly_max"]) == ("20", "10", "50")
    documents = client.get("/api/v1/billing/invoices", headers=own).json()
    [invoice] = documents["invoices"]
    assert (invoice["amount_paid"], invoice["status"]) == ("17.99", "paid")
    assert invoice["hosted_invoice_url"].startswith(fake_stripe.url)
    assert documents["statements"] == []  # the month has not ended
    assert client.get("/api/v1/billing/invoices", headers=other).json()["invoices"] == []
    assert client.get("/api/v1/billing/methods", headers=other).json() == {
        "account_id": "other", "payment_methods": [], "auto_topup": None,
    }  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    threshold=st.one_of(st.text(max_size=12), st.decimals(allow_nan=True, places=4)),
    amount=st.one_of(st.text(max_size=12), st.decimals(allow_nan=True, places=3)),
)
def test_hostile_amounts_are_saved_exactly_or_refused_with_nothing_written(
    sqlite_url, threshold, amount
):
    engine = storage.open_database(sqlite_url)
    create_account(engine, "acct", name="Acct", user_id="u1", opening_credit=Decimal(5))
    before = get_auto_topup(engine, OWNER)
    try:
        saved = configure_auto_topup(
            engine, OWNER, enabled=True, threshold=threshold, amount=amount,
            monthly_max=Decimal(1000),
        )  # fmt: skip
    except InvalidUsage:
        assert get_auto_topup(engine, OWNER) == before
        return
    assert saved.threshold == Decimal(str(threshold).strip()) > 0
    assert saved.amount == Decimal(str(amount).strip())
    assert saved.amount * 100 == int(saved.amount * 100) and saved.amount >= 1


def test_enabling_below_the_threshold_requests_a_topup_and_off_cancels_it(engine, fake_stripe):
    setup_account(engine, fake_stripe)  # balance $25
    enable(engine, threshold="30")
    [topup] = rows(engine, topups)
    assert (topup.status, topup.balance_at_request) == ("pending", START)
    configure_auto_topup(
        engine, OWNER, enabled=False, threshold="30", amount="10", monthly_max="50"
    )
    assert rows(engine, topups)[0].status == "canceled"
    assert run_topups(engine).charged == 0 and topup_credits(engine) == []


def test_a_worker_killed_after_its_claim_is_retried_with_the_same_key(engine, fake_stripe):
    from pricing_core.billing.topups import _claim

    setup_account(engine, fake_stripe)
    enable(engine, threshold="25")
    record_usage(engine, image(1))
    [topup] = rows(engine, topups)
    t0 = datetime.now(UTC)
    assert _claim(engine, topup.id, t0) is not None  # ... and the worker dies here
    assert run_topups(engine, now=t0 + timedelta(minutes=1)).charged == 0  # still its claim
    fake_stripe.fail_next = [503]  # then Stripe is unreachable: not the card's fault
    run = run_topups(engine, now=t0 + timedelta(minutes=11))
    assert (run.charged, run.failed) == (0, 1)
    assert get_auto_topup(engine, OWNER).failures == 0
    assert run_topups(engine, now=t0 + timedelta(minutes=27)).charged == 1
    keys = [
        r["idempotency_key"] for r in fake_stripe.requests if r["path"] == "/v1/payment_intents"
    ]
    assert keys == [f"topup:{topup.id}:1"]  # the attempt number the dead worker had
    [charged] = rows(engine, topups)
    assert charged.status == "processing" and charged.attempts == 1
    assert [a.outcome for a in rows(engine, topup_attempts)] == ["error", "succeeded"]


def test_a_card_added_without_buying_is_used_for_topups(engine, fake_stripe):
    """Checkout in setup mode saves a card (a SetupIntent); auto top-up charges it."""
    create_account(engine, "acct", name="Acct", user_id="u1", opening_credit=Decimal(5))
    assert list_payment_methods(engine, OWNER) == []
    url = add_card_url(engine, OWNER, idempotency_key="click-1")
    assert add_card_url(engine, OWNER, idempotency_key="click-1") == url  # a double click
    sid = url.rsplit("/", 1)[1]
    session = fake_stripe.sessions[sid]
    assert (session["mode"], session["amount_total"]) == ("setup", 0)
    fake_stripe.pay(sid)
    assert fake_stripe.setup_intents[fake_stripe.sessions[sid]["setup_intent"]]["status"] == (
        "succeeded"
    )
    [card] = list_payment_methods(engine, OWNER)
    configure_auto_topup(
        engine, OWNER, enabled=True, threshold="6", amount="10", monthly_max="10"
    )  # below already: requested now
    assert run_topups(engine).charged == 1
    [intent] = [r for r in fake_stripe.requests if r["path"] == "/v1/payment_intents"]
    assert intent["params"]["payment_method"] == card.id
    assert intent["params"]["off_session"] == "true"
