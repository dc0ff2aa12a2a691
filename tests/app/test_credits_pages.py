"""AppTest of the member pages in credits (PRICING_UNIT=credits, 10 credits per USD):
Overview, Transactions, Usage and Buy credits show the same amounts in credits, and
a pack's price stays in USD. Expected figures come from the source's price list."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from pricing_core.admin.presets import apply_credit_preset
from pricing_core.billing import checkout
from pricing_core.billing.packages import list_packages
from pricing_core.config import get_settings
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.wallets import create_account
from pricing_core.metering.record import record_usage
from tests.admin_support import ADMIN
from tests.app.test_pages import metrics, open_page, texts, use_database, view_as


@pytest.fixture
def studio(sqlite_url, monkeypatch):
    monkeypatch.setenv("PRICING_UNIT", "credits")
    monkeypatch.setenv("PRICING_CREDITS_PER_USD", "10")
    monkeypatch.setenv("PRICING_DEMO", "on")
    engine = use_database(monkeypatch, sqlite_url)
    apply_credit_preset(engine, ADMIN)
    create_account(engine, "studio", name="Studio", opening_credit=Decimal(0))
    [popular] = [p for p in list_packages(engine) if p.name == "Popular"]
    checkout.simulate_purchase(
        engine, Principal("studio", "studio"), package_id=popular.id, idempotency_key="buy-1"
    )
    event = UsageEvent(
        "img-1", "studio", "studio", "image_generation", "openai", "dall-e-3", 0, 0,
        chat_id="c1", created_at=datetime.now(UTC), quantity=2,
    )  # fmt: skip
    record_usage(engine, event)
    view_as(monkeypatch, "studio")
    yield engine
    get_settings.cache_clear()


def test_overview_shows_the_balance_and_spend_in_credits(studio):
    at = open_page("overview")
    shown = metrics(at)
    assert shown["Balance"] == "180 credits"
    assert shown["Spent this month"] == "20 credits"


def test_transactions_show_the_purchase_and_the_images_in_credits(studio):
    at = open_page("transactions")
    table = at.dataframe[0].value
    assert sorted(table["Amount"]) == ["-20 credits", "200 credits"]
    assert sorted(table["Balance after"]) == ["180 credits", "200 credits"]


def test_usage_shows_the_cost_in_credits(studio):
    at = open_page("usage")
    assert metrics(at)["Cost"] == "20 credits"


def test_buy_credits_shows_packs_in_credits_at_their_usd_price(studio):
    at = open_page("buy_credits")
    shown = texts(at)
    for credit, price in (("50", "$4.99"), ("200", "$17.99"), ("500", "$39.99"),
                          ("2,000", "$139.99")):  # fmt: skip
        assert f"**{credit} credits**" in shown and price in shown
    assert "$0.08995/credit · save 10%" in shown  # 17.99 / 200 against 4.99 / 50
    assert "Balance 180 credits" in shown


# the source's list: model or style (or operation for "any other") -> credits per unit
SOURCE_PRICES = {"dall-e-3": "10", "gemini-pro-vision": "8", "stable-diffusion": "3",
                 "image_editing": "15", "video_generation": "50", "meme_generation": "5",
                 "ghibli": "8", "cartoon": "6"}  # fmt: skip


def test_the_pricing_page_shows_every_source_price_in_credits(studio):
    at = open_page("pricing")
    fixed = at.dataframe[0].value
    shown = {
        (m if m != "any other" else op): p
        for op, m, p in zip(
            fixed["Operation"], fixed["Model or style"], fixed["Price per unit"], strict=True
        )
    }
    assert shown == {k: f"{v} credits" for k, v in SOURCE_PRICES.items()}
    [packs] = [d.value for d in at.dataframe if "Credit" in d.value.columns]
    assert list(packs["Credit"]) == ["50 credits", "200 credits", "500 credits", "2,000 credits"]
    assert list(packs["Price"]) == ["$4.99", "$17.99", "$39.99", "$139.99"]


def test_the_calculator_quotes_what_recording_the_same_call_charges(studio):
    at = open_page("pricing")
    at.selectbox(key="calc_model").select("dall-e-3")
    at.selectbox(key="calc_operation").select("image_generation")
    at.number_input(key="calc_qty").set_value(3)
    at.button(key="calc_go").click().run()
    assert not at.exception
    quoted = metrics(at)["Cost"]
    event = UsageEvent(
        "img-calc", "studio", "studio", "image_generation", "openai", "dall-e-3", 0, 0,
        created_at=datetime.now(UTC), quantity=3,
    )  # fmt: skip
    charged = record_usage(studio, event).price
    assert quoted == "30 credits" == f"{charged * 10:f}".rstrip("0").rstrip(".") + " credits"


def test_the_overview_spend_chart_is_drawn_in_credits(studio):
    at = open_page("overview")
    [chart] = [c for c in at.get("plotly_chart") if "Spend, last 30 days" in c.proto.spec]
    spec = json.loads(chart.proto.spec)
    assert spec["layout"]["yaxis"]["ticksuffix"] == " cr"
    bars = spec["data"][0]
    assert max(float(y) for y in bars["y"]) == 20  # today's two images: 20 credits
    assert "20 credits" in bars["customdata"]
