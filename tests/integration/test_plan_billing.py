"""Stripe subscription states applied to `subscriptions` (exactly once), and plan
changes in demo mode."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from pricing_core.adapters.storage import run_write
from pricing_core.config import get_settings
from pricing_core.domain.errors import ConfigurationError
from pricing_core.domain.plans import PlanError
from pricing_core.domain.principal import Principal
from pricing_core.ledger.wallets import create_account
from pricing_core.plans.billing import (
    ChangeKind,
    SwitchMode,
    apply_subscription_on,
    request_plan_change,
    switch_mode,
)
from pricing_core.plans.subscriptions import current_plan, subscription_history

ACCT = Principal("acct", "acct")

START = datetime(2025, 3, 1, tzinfo=UTC)
PRICES = '{"starter": "price_starter", "professional": "price_pro"}'


@pytest.fixture
def stripe_prices(monkeypatch):
    monkeypatch.setenv("PRICING_STRIPE_PLAN_PRICES", PRICES)
    get_settings.cache_clear()


def subscription(status: str = "active", price: str = "price_starter", **metadata) -> dict:
    return {
        "id": "sub_1",
        "object": "subscription",
        "status": status,
        "customer": "cus_1",
        "metadata": {"account_id": "acct"} | metadata,
        "items": {"data": [{"id": "si_1", "price": {"id": price}}]},
    }


def apply(engine, sub: dict, at: datetime) -> str:
    return run_write(engine, lambda conn: apply_subscription_on(conn, sub, now=at))


def test_a_subscription_state_is_applied_once_and_repeats_change_nothing(engine, stripe_prices):
    create_account(engine, "acct", name="A", now=START)
    assert apply(engine, subscription(), START).startswith("switched")
    for later in (1, 2):  # the same state again (a duplicate or a late "updated")
        assert apply(engine, subscription(), START + timedelta(hours=later)).startswith("unchanged")
    [row] = subscription_history(engine, "acct")
    assert (row.plan_code, row.source, row.stripe_subscription_id) == ("starter", "stripe", "sub_1")
    assert row.started_at == START and row.ended_at is None


def test_a_price_change_switches_plan_and_cancellation_returns_to_pay_as_you_go(
    engine, stripe_prices
):
    create_account(engine, "acct", name="A", now=START)
    apply(engine, subscription(), START)
    apply(engine, subscription(price="price_pro"), START + timedelta(days=3))
    assert current_plan(engine, "acct", now=START + timedelta(days=4)).code == "professional"
    ended = apply(engine, subscription("canceled", "price_pro"), START + timedelta(days=9))
    assert ended.startswith("ended")
    assert apply(engine, subscription("canceled", "price_pro"), START + timedelta(days=10)) == (
        "unchanged: subscription 'sub_1' is not 'acct''s current plan"
    )
    history = subscription_history(engine, "acct")
    assert [(s.plan_code, s.started_at.day, s.ended_at.day) for s in history] == [
        ("starter", 1, 4),
        ("professional", 4, 10),
    ]
    assert current_plan(engine, "acct", now=START + timedelta(days=20)).code == "payg"


@pytest.mark.parametrize(
    ("sub", "outcome"),
    [
        (subscription(price="price_unknown"), "ignored: subscription 'sub_1' has no known plan"),
        ({**subscription(), "metadata": {}}, "ignored: subscription 'sub_1' names no account"),
        (subscription("incomplete"), "unchanged: subscription 'sub_1' is 'incomplete'"),
    ],
)
def test_subscriptions_we_cannot_place_change_nothing(engine, stripe_prices, sub, outcome):
    create_account(engine, "acct", name="A", now=START)
    assert apply(engine, sub, START).startswith(outcome)
    assert subscription_history(engine, "acct") == []


def test_in_demo_mode_a_plan_change_is_immediate(engine):
    create_account(engine, "acct", name="A", now=START)
    assert switch_mode() is SwitchMode.DEMO
    change = request_plan_change(engine, ACCT, "professional", now=START)
    assert change.kind is ChangeKind.SWITCHED and "demo mode" in change.message
    assert current_plan(engine, "acct", now=START).code == "professional"
    with pytest.raises(PlanError, match="already on plan 'professional'"):
        request_plan_change(engine, ACCT, "professional", now=START)
    with pytest.raises(PlanError, match="talk to us"):
        request_plan_change(engine, ACCT, "enterprise", now=START)
    back = request_plan_change(engine, ACCT, "payg", now=START + timedelta(1))
    assert back.kind is ChangeKind.SWITCHED
    assert current_plan(engine, "acct", now=START + timedelta(2)).code == "payg"


def test_without_stripe_or_demo_mode_plans_cannot_change(engine, monkeypatch):
    monkeypatch.setenv("PRICING_DEMO", "off")
    get_settings.cache_clear()
    create_account(engine, "acct", name="A", now=START)
    assert switch_mode() is SwitchMode.UNAVAILABLE
    with pytest.raises(ConfigurationError, match="PRICING_STRIPE_PLAN_PRICES"):
        request_plan_change(engine, ACCT, "starter", now=START)
    assert current_plan(engine, "acct", now=START).monthly_fee == D("0")
