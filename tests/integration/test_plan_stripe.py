"""Switching plans through Stripe: Checkout in subscription mode on the fake Stripe
API (the real SDK), then signed `customer.subscription.*` webhooks on the product's
real route update `subscriptions` exactly once; duplicates change nothing."""

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from sqlalchemy import func, select

from pricing_core.adapters.schema import audit_log
from pricing_core.adapters.schema_billing import stripe_events, subscriptions
from pricing_core.config import get_settings
from pricing_core.domain.costing import ChargeBasis
from pricing_core.domain.errors import PermissionDenied
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.wallets import create_account
from pricing_core.metering.record import record_usage
from pricing_core.plans.billing import ChangeKind, confirm_plan_checkout, request_plan_change
from pricing_core.plans.subscriptions import current_plan, subscription_history
from tests.integration.stripe_helpers import deliver, webhook_client

ACCT = Principal("acct", "acct")


@pytest.fixture
def stripe_plans(engine, fake_stripe, monkeypatch):
    monkeypatch.setenv(
        "PRICING_STRIPE_PLAN_PRICES",
        '{"starter": "price_starter_monthly", "professional": "price_pro_monthly"}',
    )
    get_settings.cache_clear()
    create_account(engine, "acct", name="A", opening_credit=D("5"))
    return fake_stripe


def state(engine) -> tuple:
    """Everything a webhook may change: the subscription rows and the audit trail."""
    with engine.connect() as conn:
        rows = conn.execute(select(subscriptions).order_by(subscriptions.c.id)).all()
        audits = conn.execute(select(func.count()).select_from(audit_log)).scalar_one()
    return tuple(tuple(r) for r in rows), audits


def subscribe(engine, fake, client, plan="starter"):
    change = request_plan_change(engine, ACCT, plan)
    assert change.kind is ChangeKind.CHECKOUT and change.url.endswith(change.session_id)
    fake.pay(change.session_id)
    sub = fake.subscriptions[fake.sessions[change.session_id]["subscription"]]
    event = fake.event("customer.subscription.created", sub)
    return change, sub, event


def test_a_plan_is_bought_on_stripe_checkout_and_applied_by_the_webhook_once(engine, stripe_plans):
    fake, client = stripe_plans, webhook_client()
    change, sub, created = subscribe(engine, fake, client)
    [call] = [r for r in fake.requests if r["path"] == "/v1/checkout/sessions"]
    assert call["params"]["mode"] == "subscription"
    assert call["params"]["line_items"] == [{"price": "price_starter_monthly", "quantity": "1"}]
    assert call["params"]["subscription_data"]["metadata"]["account_id"] == "acct"
    assert current_plan(engine, "acct").code == "payg"  # nothing before Stripe confirms

    reply = deliver(client, fake, created)
    assert reply.status_code == 200 and reply.json()["status"] == "processed"
    assert current_plan(engine, "acct").code == "starter"
    after_first = state(engine)
    [row] = subscription_history(engine, "acct")
    assert (row.source, row.stripe_subscription_id) == ("stripe", sub["id"])

    # the same event again, and Stripe's other notifications of the same state
    assert deliver(client, fake, created).json()["status"] == "duplicate"
    for event_type in ("customer.subscription.updated", "checkout.session.completed"):
        obj = sub if event_type.startswith("customer") else fake.session_object(change.session_id)
        assert deliver(client, fake, fake.event(event_type, obj)).status_code == 200
    assert confirm_plan_checkout(engine, ACCT, change.session_id).startswith("unchanged")
    assert state(engine) == after_first

    # and the plan now decides usage charges: the first message is included
    result = record_usage(
        engine,
        UsageEvent(
            request_id="r1",
            account_id="acct",
            user_id="acct",
            operation="chat_message",
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=1020,
            output_tokens=129,
        ),
    )
    assert (result.basis, result.price) == (ChargeBasis.INCLUDED, D("0"))


def test_changing_and_cancelling_go_through_stripe_and_apply_on_the_webhook(engine, stripe_plans):
    fake, client = stripe_plans, webhook_client()
    _, sub, created = subscribe(engine, fake, client)
    deliver(client, fake, created)

    change = request_plan_change(engine, ACCT, "professional")
    assert change.kind is ChangeKind.PENDING
    assert current_plan(engine, "acct").code == "starter"  # until Stripe confirms
    updated = fake.event("customer.subscription.updated", fake.subscriptions[sub["id"]])
    deliver(client, fake, updated)
    deliver(client, fake, updated)
    assert current_plan(engine, "acct").code == "professional"

    assert request_plan_change(engine, ACCT, "payg").kind is ChangeKind.PENDING
    assert fake.subscriptions[sub["id"]]["status"] == "canceled"
    deleted = fake.event("customer.subscription.deleted", fake.subscriptions[sub["id"]])
    assert deliver(client, fake, deleted).status_code == 200
    settled = state(engine)
    deliver(client, fake, deleted)
    # a late "updated" with the old state: Stripe is read, and it says canceled
    deliver(client, fake, updated | {"id": "evt_late_update"})
    assert state(engine) == settled
    assert current_plan(engine, "acct").code == "payg"
    history = subscription_history(engine, "acct")
    assert [(s.plan_code, s.ended_at is not None) for s in history] == [
        ("starter", True),
        ("professional", True),
    ]
    with engine.connect() as conn:
        statuses = conn.execute(select(stripe_events.c.status)).scalars().all()
    assert set(statuses) == {"processed"}


def test_a_badly_signed_subscription_webhook_changes_nothing(engine, stripe_plans):
    fake, client = stripe_plans, webhook_client()
    _, _, created = subscribe(engine, fake, client)
    before = state(engine)
    body, headers = fake.signed(created)
    forged = client.post(
        "/stripe/webhook", content=body.replace(b"active", b"activf"), headers=headers
    )
    stale = deliver(client, fake, created, timestamp=int(datetime.now(UTC).timestamp()) - 3600)
    assert (forged.status_code, stale.status_code) == (400, 400)
    assert state(engine) == before and current_plan(engine, "acct").code == "payg"


def test_another_accounts_checkout_session_cannot_be_confirmed(engine, stripe_plans):
    fake = stripe_plans
    create_account(engine, "other", name="O")
    change = request_plan_change(engine, ACCT, "starter")
    fake.pay(change.session_id)
    with pytest.raises(PermissionDenied, match=change.session_id):
        confirm_plan_checkout(engine, Principal("other", "other"), change.session_id)
    assert current_plan(engine, "other").code == "payg"


def test_a_plans_stripe_invoice_is_kept_for_the_account_from_its_webhook(engine, stripe_plans):
    """The subscription is opened for the account's Stripe customer, so Stripe's
    invoice for the plan month (an `invoice.paid` event) lands on the Billing page."""
    from pricing_core.billing.invoices import list_invoices

    fake, client = stripe_plans, webhook_client()
    change, sub, created = subscribe(engine, fake, client)
    [call] = [r for r in fake.requests if r["path"] == "/v1/checkout/sessions"]
    assert call["params"]["customer"] == sub["customer"]
    [invoice] = [i for i in fake.invoices.values() if i["subscription"] == sub["id"]]
    fake.invoices[invoice["id"]]["amount_paid"] = 500  # the fake prices plans at 0
    paid = fake.event("invoice.paid", invoice)
    assert deliver(client, fake, paid).json()["status"] == "processed"
    assert deliver(client, fake, fake.event("invoice.paid", invoice)).status_code == 200
    [kept] = list_invoices(engine, ACCT)
    assert (kept.id, kept.amount_paid, kept.status) == (invoice["id"], D("5"), "paid")
    assert kept.invoice_pdf == invoice["invoice_pdf"]
    other = Principal("o", "other")
    create_account(engine, "other", name="O", opening_credit=D("1"))
    assert list_invoices(engine, other) == []
