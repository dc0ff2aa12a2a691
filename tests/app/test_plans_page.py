"""AppTest of the plans page: a light and a heavy account see the plan recommended for
their own usage and the savings, computed here independently; demo switching."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN
from decimal import Decimal as D
from pathlib import Path

import pytest
import streamlit as st
from genai_prices import Usage, calc_price
from sqlalchemy import insert
from streamlit.testing.v1 import AppTest

from pricing_core.access import auth
from pricing_core.adapters import storage
from pricing_core.adapters.schema import operation_prices
from pricing_core.config import get_settings
from pricing_core.domain.periods import month_bounds, previous_months
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.wallets import create_account
from pricing_core.metering.batch import record_usage_batch
from pricing_core.plans.subscriptions import SubscriptionSource
from pricing_core.plans.switching import switch_plan

ROOT = Path(__file__).resolve().parents[2]
IMAGE_PRICE = D("0.25")  # a fixed price per image_generation call


def past_months() -> list[datetime]:
    """Noon on the 15th of each of the last 3 calendar months (UTC), oldest first."""
    now = datetime.now(UTC)
    return [
        month_bounds(m, UTC)[0] + timedelta(days=14, hours=12)
        for m in previous_months(now.strftime("%Y-%m"), 3)
    ]


@pytest.fixture
def db(sqlite_url, monkeypatch):
    monkeypatch.setenv("PRICING_DATABASE_URL", sqlite_url)
    # an operator who counts fixed-price images as plan messages (the default counts
    # token-priced calls only): the heavy account's images are what a plan would save
    monkeypatch.setenv("PRICING_PLAN_MESSAGE_OPERATIONS", "chat_message,image_generation")
    get_settings.cache_clear()
    st.cache_resource.clear()
    engine = storage.open_database(sqlite_url)
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(operation_prices).values(
                operation="image_generation",
                effective_from=long_ago,
                price=IMAGE_PRICE,
                provider_cost=D("0.1"),
                created_at=long_ago,
            )
        )
    for account in ("light", "heavy"):
        create_account(engine, account, name=account.title(), opening_credit=D("100"), now=long_ago)
    # light has been on Starter all along: its messages were included (charged 0)
    switch_plan(engine, "light", "starter", source=SubscriptionSource.DEMO, now=long_ago)
    events = []
    for m, at in enumerate(past_months()):
        events += [light_message(f"l{m}-{i}", at + timedelta(minutes=i)) for i in range(5)]
        events += [
            UsageEvent(
                request_id=f"h{m}-{i}",
                account_id="heavy",
                user_id="heavy",
                operation="image_generation",
                provider="openai",
                model="dall-e-3",
                input_tokens=0,
                output_tokens=0,
                created_at=at + timedelta(minutes=i),
            )
            for i in range(40)
        ]
    result = record_usage_batch(engine, events)
    assert not result.rejected and result.recorded == len(events)
    yield engine
    st.cache_resource.clear()


def light_message(request_id: str, at: datetime) -> UsageEvent:
    return UsageEvent(
        request_id=request_id,
        account_id="light",
        user_id="light",
        operation="chat_message",
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=1020 + len(request_id),
        output_tokens=129,
        created_at=at,
    )


def light_payg_price(event: UsageEvent) -> D:
    exact = calc_price(
        Usage(input_tokens=event.input_tokens, output_tokens=event.output_tokens),
        event.model,
        provider_id=event.provider,
        genai_request_timestamp=event.created_at,
    ).total_price
    return (exact * D("1.25")).quantize(D("1e-9"), ROUND_HALF_EVEN)


def cents(amount: D) -> str:
    """The issue's money rule, written out: cents from a cent up, else 4 significant digits."""
    if amount >= D("0.01"):
        return f"${amount.quantize(D('0.01'), ROUND_HALF_EVEN):,}"
    step = D(1).scaleb(amount.adjusted() - 3)
    return f"${amount.quantize(step, ROUND_HALF_EVEN).normalize():f}"


def open_page(account: str, monkeypatch) -> AppTest:
    viewer = Principal(account, account, demo=True)
    monkeypatch.setattr(auth, "current_principal", lambda *a, **k: viewer)
    return AppTest.from_file(str(ROOT / "pages" / "plans.py"), default_timeout=60).run()


def test_a_heavy_account_is_told_to_switch_to_starter_and_how_much_it_saves(db, monkeypatch):
    at = open_page("heavy", monkeypatch)
    assert not at.exception, at.exception
    # 40 images x $0.25 = $10 a month pay-as-you-go for 3 months, nothing yet this month:
    # pay-as-you-go $30 over 4 months, Starter 4 x $5 = $20 -> save $10 / 4 = $2.50 a month
    assert [s.value for s in at.success] == [
        "Switch to Starter and save $2.50/month (based on your last 3 months and this "
        "month's projection)."
    ]
    table = at.dataframe[0].value
    assert list(table.columns) == [
        "Month",
        "Messages",
        "Pay as you go (current)",
        "Starter (recommended)",
        "Professional",
    ]
    assert list(table["Pay as you go (current)"]) == ["$10.00"] * 3 + ["$0.00", "$30.00"]
    assert list(table["Starter (recommended)"]) == ["$5.00"] * 4 + ["$20.00"]
    assert table["Month"].iloc[3].endswith("(projected)")
    assert {m.label: m.value for m in at.metric}["Current plan"] == "Pay as you go"
    assert len(at.get("plotly_chart")) == 2


def test_a_light_account_on_starter_is_told_to_go_back_to_pay_as_you_go(db, monkeypatch):
    payg = sum(
        light_payg_price(light_message(f"l{m}-{i}", at + timedelta(minutes=i)))
        for m, at in enumerate(past_months())
        for i in range(5)
    )
    saving = (4 * D("5") - payg) / 4  # Starter's fee for 4 months minus what 15 messages cost
    at = open_page("light", monkeypatch)
    assert not at.exception, at.exception
    assert [s.value for s in at.success] == [
        f"Switch to Pay as you go and save {cents(saving)}/month (based on your last 3 "
        "months and this month's projection)."
    ]
    table = at.dataframe[0].value
    assert table["Messages"].tolist() == ["5", "5", "5", "0", "15"]
    assert table["Pay as you go (recommended)"].iloc[-1] == cents(payg)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Current plan"] == "Starter" and metrics["Estimated bill this month"] == "$5.00"
    assert at.get("progress")[0].proto.text == "0 of 1,000 included messages used this month"


def test_the_progress_bar_shows_this_months_messages_against_the_allowance(db, monkeypatch):
    now = datetime.now(UTC)
    start = month_bounds(now.strftime("%Y-%m"), UTC)[0]
    moments = [start + (now - start) * i / 300 for i in range(250)]
    result = record_usage_batch(db, [light_message(f"now-{i}", at) for i, at in enumerate(moments)])
    assert result.recorded == 250
    at = open_page("light", monkeypatch)
    bar = at.get("progress")[0]
    assert bar.proto.value == 25  # 250 of 1,000
    assert bar.proto.text == "250 of 1,000 included messages used this month"


def test_in_demo_mode_switching_is_immediate_and_labelled(db, monkeypatch):
    at = open_page("heavy", monkeypatch)
    assert any("DEMO MODE" in c.value for c in at.caption)
    at.selectbox[0].select("starter")
    at.button[0].click()
    at.run()
    assert not at.exception, at.exception
    assert [s.value for s in at.success][-1] == (
        "Switched to Starter (demo mode: immediate, no payment)."
    )
    assert {m.label: m.value for m in at.metric}["Current plan"] == "Starter"
    assert any(s.value.startswith("You are on the cheapest plan") for s in at.info)


def test_with_stripe_switching_goes_through_checkout_and_the_return_confirms_it(
    db, fake_stripe, monkeypatch
):
    monkeypatch.setenv("PRICING_STRIPE_PLAN_PRICES", '{"starter": "price_s", "professional": "p"}')
    get_settings.cache_clear()
    at = open_page("heavy", monkeypatch)
    assert not any("DEMO MODE" in c.value for c in at.caption)
    at.selectbox[0].select("starter")
    at.button[0].click()
    at.run()
    assert not at.exception, at.exception
    [link] = at.get("link_button")
    assert link.proto.label == "Continue to Stripe Checkout"
    session_id = link.proto.url.rsplit("/", 1)[1]
    assert fake_stripe.sessions[session_id]["mode"] == "subscription"
    assert {m.label: m.value for m in at.metric}["Current plan"] == "Pay as you go"

    fake_stripe.pay(session_id)  # the customer pays, Stripe redirects back
    back = AppTest.from_file(str(ROOT / "pages" / "plans.py"), default_timeout=60)
    back.query_params["checkout"] = "success"
    back.query_params["session_id"] = session_id
    back.run()
    assert not back.exception, back.exception
    assert "confirmed by Stripe" in back.success[0].value
    assert {m.label: m.value for m in back.metric}["Current plan"] == "Starter"


def test_an_account_without_usage_gets_no_zero_dollar_pay_as_you_go_line(db, monkeypatch):
    import json

    create_account(db, "fresh", name="Fresh", opening_credit=D("5"))
    at = open_page("fresh", monkeypatch)
    assert not at.exception
    assert not any("$0.00/message" in c.value or "$0 per message" in c.value
                   for c in at.caption)  # fmt: skip
    assert any("Only the plans' fees are drawn" in c.value for c in at.caption)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    break_even = [c for c in charts if c["layout"].get("xaxis", {}).get("title", {}).get("text")
                  == "messages per month"]  # fmt: skip
    names = {t.get("name") for t in break_even[0]["data"]}
    assert "Pay-as-you-go" not in names and "Starter" in names


def test_a_young_account_gets_no_estimated_bill_just_as_the_overview_gets_no_projection(
    db, monkeypatch
):
    """Issue 21, item 5: with 3 days of usage, Plans must not estimate a bill that the
    Overview calls "n/a"; both say why."""
    young = datetime.now(UTC) - timedelta(days=3)
    create_account(db, "young", name="Young", opening_credit=D("10"), now=young)
    events = [
        replace(light_message(f"young-{i}", young + timedelta(hours=i)), account_id="young",
                user_id="young")
        for i in range(30)
    ]  # fmt: skip
    assert record_usage_batch(db, events).recorded == 30
    at = open_page("young", monkeypatch)
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Estimated bill this month"] == "n/a"
    assert any("Too little history to project: 3 complete days" in c.value for c in at.caption)

    overview = AppTest.from_file(str(ROOT / "pages" / "overview.py"), default_timeout=60).run()
    assert not overview.exception, overview.exception
    assert {m.label: m.value for m in overview.metric}["Projected this month"] == "n/a"
