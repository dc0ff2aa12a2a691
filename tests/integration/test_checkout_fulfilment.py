"""Buying a credit pack through the real stripe SDK against the fake Stripe API:
the session's parameters, and fulfilment exactly once from the page, the webhook,
or both at the same time."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricing_core.billing import checkout, sessions
from pricing_core.billing.checkout import simulate_purchase
from pricing_core.billing.fulfilment import fulfil_checkout
from pricing_core.billing.sessions import Outcome
from pricing_core.domain.errors import ConfigurationError, InvalidUsage, PermissionDenied
from pricing_core.domain.principal import Principal
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account, get_wallet
from tests.integration.stripe_helpers import (
    PACKS,
    counts,
    deliver,
    open_session,
    paid_session,
    purchase_entries,
    webhook_client,
)

ACCT = Principal("acct", "acct")

OPENING = Decimal("1")


@pytest.fixture
def acct(engine):
    create_account(engine, "acct", name="Ada", opening_credit=OPENING)
    return "acct"


def test_the_checkout_session_is_created_with_the_parameters_stripe_needs(
    engine, fake_stripe, acct
):
    sid = open_session(engine, package="pro-v1", key="click-1")
    call = [r for r in fake_stripe.requests if r["method"] == "POST"][-1]
    params = call["params"]
    assert call["path"] == "/v1/checkout/sessions"
    assert call["idempotency_key"] == "checkout-create:acct:click-1"
    assert params["mode"] == "payment"
    (item,) = params["line_items"]
    assert item["quantity"] == "1"
    assert item["price_data"]["currency"] == "usd"
    assert item["price_data"]["unit_amount"] == str(PACKS["pro-v1"][0])
    assert item["price_data"]["product_data"]["name"] == "Pro credit pack"
    assert params["client_reference_id"] == "acct"
    assert params["metadata"]["account_id"] == "acct"
    assert params["metadata"]["package_id"] == "pro-v1"
    assert (
        params["success_url"]
        == "http://localhost:8501/buy_credits?session_id={CHECKOUT_SESSION_ID}"
    )
    assert params["cancel_url"].startswith("http://localhost:8501/buy_credits")
    assert sid in fake_stripe.sessions


def test_a_double_submitted_click_opens_one_session(engine, fake_stripe, acct):
    first = open_session(engine, key="same-click")
    second = open_session(engine, key="same-click")
    assert first == second
    assert len(fake_stripe.sessions) == 1
    assert len(checkout.list_purchases(engine, ACCT)) == 1


def test_buying_a_package_from_the_success_page_credits_it_once(engine, fake_stripe, acct):
    sid = open_session(engine)
    assert fulfil_checkout(engine, sid).outcome == Outcome.NOT_PAID
    fake_stripe.pay(sid)
    results = [fulfil_checkout(engine, sid, account_id="acct") for _ in range(3)]
    assert [r.outcome for r in results] == [Outcome.CREDITED] + [Outcome.ALREADY_CREDITED] * 2
    assert get_wallet(engine, "acct").balance == OPENING + PACKS["popular-v1"][1]
    assert results[0].balance == OPENING + Decimal("20")
    assert [(k, a) for k, a in purchase_entries(engine, sid)] == [
        ("purchase", Decimal("18")),
        ("bonus", Decimal("2")),
    ]
    (purchase,) = checkout.list_purchases(engine, ACCT)
    assert purchase.status == "complete" and purchase.price == Decimal("17.99")
    assert purchase.receipt_url and purchase.receipt_url.startswith(
        fake_stripe.url + "/receipts/ch_"
    )
    assert verify_ledger(engine).ok


def test_a_webhook_alone_credits_the_purchase(engine, fake_stripe, acct):
    sid = paid_session(engine, fake_stripe, package="enterprise-v1")
    reply = deliver(
        webhook_client(),
        fake_stripe,
        fake_stripe.event("checkout.session.completed", fake_stripe.session_object(sid)),
    )
    assert reply.status_code == 200 and reply.json()["status"] == "processed"
    assert get_wallet(engine, "acct").balance == OPENING + Decimal("175")
    assert verify_ledger(engine).ok


def test_page_and_webhooks_fulfilling_at_the_same_time_credit_once(engine, fake_stripe, acct):
    sid = paid_session(engine, fake_stripe)
    session = fake_stripe.session_object(sid)
    events = [fake_stripe.event("checkout.session.completed", session) for _ in range(3)]
    barrier = threading.Barrier(6)
    page_outcomes: list[Outcome] = []
    hook_replies: list[tuple[int, str]] = []
    errors: list[BaseException] = []

    def page() -> None:
        barrier.wait()
        try:
            page_outcomes.append(fulfil_checkout(engine, sid).outcome)
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    def hook(event: dict) -> None:
        client = webhook_client()
        barrier.wait()
        reply = deliver(client, fake_stripe, event)
        hook_replies.append((reply.status_code, reply.json().get("status")))

    threads = [threading.Thread(target=page) for _ in range(3)]
    threads += [threading.Thread(target=hook, args=(e,)) for e in events]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert hook_replies == [(200, "processed")] * 3
    assert set(page_outcomes) <= {Outcome.CREDITED, Outcome.ALREADY_CREDITED}
    assert len(page_outcomes) == 3 and page_outcomes.count(Outcome.CREDITED) <= 1
    assert get_wallet(engine, "acct").balance == OPENING + Decimal("20")
    assert len(purchase_entries(engine, sid)) == 2
    assert verify_ledger(engine).ok


def test_an_amount_that_does_not_match_the_package_is_not_credited(engine, fake_stripe, acct):
    sid = paid_session(engine, fake_stripe)
    fake_stripe.tamper(sid, amount_total=1)
    result = fulfil_checkout(engine, sid)
    assert result.outcome == Outcome.MISMATCH
    assert "amount_total 1 cents != package price 1799 cents" in result.message
    reply = deliver(
        webhook_client(),
        fake_stripe,
        fake_stripe.event("checkout.session.completed", fake_stripe.session_object(sid)),
    )
    assert reply.status_code == 200
    assert get_wallet(engine, "acct").balance == OPENING
    (purchase,) = checkout.list_purchases(engine, ACCT)
    assert purchase.status == "mismatch"
    assert verify_ledger(engine).ok


def test_a_session_in_another_currency_is_not_credited(engine, fake_stripe, acct):
    sid = paid_session(engine, fake_stripe)
    fake_stripe.tamper(sid, currency="eur")
    assert fulfil_checkout(engine, sid).outcome == Outcome.MISMATCH
    assert get_wallet(engine, "acct").balance == OPENING


def test_the_page_cannot_fulfil_another_accounts_session(engine, fake_stripe, acct):
    create_account(engine, "other", name="Bob", opening_credit=OPENING)
    sid = paid_session(engine, fake_stripe)
    with pytest.raises(PermissionDenied, match=sid):
        fulfil_checkout(engine, sid, account_id="other")
    assert counts(engine)[0] == 2  # the two opening grants only


def test_checkout_without_a_stripe_key_says_payments_are_not_configured(engine, acct):
    with pytest.raises(ConfigurationError, match="PRICING_STRIPE_SECRET_KEY"):
        checkout.create_checkout(engine, ACCT, package_id="starter-v1")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.one_of(st.text(max_size=300), st.integers(), st.none(), st.just("cs_../../v1/charges")))
def test_a_hostile_session_id_is_refused_before_any_stripe_call(engine, acct, session_id):
    if isinstance(session_id, str) and sessions.SESSION_ID.match(session_id):
        return
    with pytest.raises(InvalidUsage, match="not a checkout session id"):
        fulfil_checkout(engine, session_id)  # type: ignore[arg-type]


def test_a_simulated_purchase_is_impossible_outside_demo_mode(engine, acct, monkeypatch):
    monkeypatch.setenv("PRICING_DEMO", "off")
    from pricing_core.config import get_settings

    get_settings.cache_clear()
    with pytest.raises(PermissionDenied, match="demo mode"):
        simulate_purchase(engine, ACCT, package_id="starter-v1")
    assert get_wallet(engine, "acct").balance == OPENING


def test_a_simulated_purchase_in_demo_mode_goes_through_fulfilment_once(engine, acct, monkeypatch):
    monkeypatch.setenv("PRICING_DEMO", "on")
    from pricing_core.config import get_settings

    get_settings.cache_clear()
    first = simulate_purchase(engine, ACCT, package_id="pro-v1", idempotency_key="c1")
    again = simulate_purchase(engine, ACCT, package_id="pro-v1", idempotency_key="c1")
    assert (first.outcome, again.outcome) == (Outcome.CREDITED, Outcome.ALREADY_CREDITED)
    assert first.session_id.startswith("cs_sim_")
    assert get_wallet(engine, "acct").balance == OPENING + Decimal("46")
    assert fulfil_checkout(engine, first.session_id).outcome == Outcome.ALREADY_CREDITED
    (purchase,) = checkout.list_purchases(engine, ACCT)
    assert purchase.simulated
    monkeypatch.setenv("PRICING_DEMO", "off")
    get_settings.cache_clear()
    with pytest.raises(PermissionDenied):
        simulate_purchase(engine, ACCT, package_id="pro-v1", idempotency_key="c2")
    assert verify_ledger(engine).ok
