"""Credits as the unit people see (PRICING_UNIT=credits, 10 credits per USD), on both
back ends: the preset's packs and prices, a purchase through the real Stripe SDK
against the fake server, an image charged per unit, and the API and CSV agreeing.
Expected credit figures are the source's price list, not the code's."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from starlette.applications import Starlette

from pricing_core.access.apikeys import create_api_key, reset_default_limiter
from pricing_core.adapters.audit import list_audit
from pricing_core.adapters.schema import operation_prices
from pricing_core.admin.packages import PackTerms, retire_package, save_package
from pricing_core.admin.presets import apply_credit_preset
from pricing_core.analytics import ledger_csv, usage_events_csv
from pricing_core.api.http import routes
from pricing_core.billing.fulfilment import fulfil_checkout
from pricing_core.billing.packages import UnknownPackage, list_packages
from pricing_core.config import get_settings
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account, get_wallet
from pricing_core.metering.record import record_usage
from tests.admin_support import ADMIN
from tests.integration.stripe_helpers import open_session

STUDIO = Principal("u1", "studio")
# the source's list: operation, model or style ("" = any other), credits per unit
SOURCE_PRICES = {
    ("image_generation", "dall-e-3"): 10,
    ("image_generation", "gemini-pro-vision"): 8,
    ("image_generation", "stable-diffusion"): 3,
    ("image_editing", ""): 15,
    ("video_generation", ""): 50,
    ("meme_generation", ""): 5,
    ("style_transfer", "ghibli"): 8,
    ("style_transfer", "cartoon"): 6,
}
SOURCE_PACKS = {"Starter": (50, "4.99"), "Popular": (200, "17.99"), "Pro": (500, "39.99"),
                "Enterprise": (2000, "139.99")}  # fmt: skip


@pytest.fixture
def credits_mode(monkeypatch):
    monkeypatch.setenv("PRICING_UNIT", "credits")
    monkeypatch.setenv("PRICING_CREDITS_PER_USD", "10")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def studio(engine, credits_mode):
    apply_credit_preset(engine, ADMIN)
    create_account(engine, "studio", name="Studio", user_id="u1", opening_credit=Decimal(0))
    return engine


def credits(usd: Decimal) -> Decimal:
    return usd * 10


def package(engine, name: str):
    [found] = [p for p in list_packages(engine) if p.name == name]
    return found


def buy(engine, fake, name: str, key: str) -> None:
    sid = open_session(engine, "studio", package(engine, name).id, key)
    fake.pay(sid)
    fulfil_checkout(engine, sid, account_id="studio")


def test_the_preset_sells_the_source_packs_and_sets_every_source_price(studio):
    on_sale = {p.name: (credits(p.total_credit), str(p.price)) for p in list_packages(studio)}
    assert on_sale == {n: (Decimal(c), p) for n, (c, p) in SOURCE_PACKS.items()}
    assert [p.name for p in list_packages(studio) if p.popular] == ["Popular"]
    with studio.connect() as conn:
        rows = conn.execute(sa.select(operation_prices)).all()
    assert {(r.operation, r.model): credits(r.price) for r in rows} == SOURCE_PRICES
    again = apply_credit_preset(studio, ADMIN)
    assert again == (4, 0)  # nothing new: the same terms and prices
    with studio.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(operation_prices)).scalar() == 8


def test_popular_adds_200_credits_and_two_dall_e_images_take_20(studio, fake_stripe):
    buy(studio, fake_stripe, "Popular", "k1")
    assert credits(get_wallet(studio, "studio").balance) == 200
    at = datetime.now(UTC)
    event = UsageEvent(
        "img-1", "studio", "u1", "image_generation", "openai", "dall-e-3", 0, 0,
        created_at=at, quantity=2,
    )  # fmt: skip
    result = record_usage(studio, event)
    assert credits(result.price) == 20
    assert result.explanation == (
        "fixed price for image_generation (dall-e-3): 10 credits/unit x 2 = 20 credits"
    )
    assert credits(get_wallet(studio, "studio").balance) == 180
    assert verify_ledger(studio).ok

    # the API, both CSV downloads and the ledger view say the same
    reset_default_limiter()
    key = {"Authorization": f"Bearer {create_api_key(studio, STUDIO).secret}"}
    with TestClient(Starlette(routes=routes())) as client:
        body = client.get("/api/v1/balance", headers=key).json()
    assert body["balance"] == "18" and body["credits"] == {
        "per_usd": "10", "balance": "180", "held": "0", "available": "180",
    }  # fmt: skip
    today = at.astimezone(get_settings().tz).date()
    usage = list(csv.DictReader(io.StringIO(usage_events_csv(
        studio, STUDIO, start=today - timedelta(days=1), end=today + timedelta(days=1),
    ))))  # fmt: skip
    assert [(u["request_id"], u["price_usd"], u["price_credits"]) for u in usage] == [
        ("img-1", "2", "20")
    ]
    ledger = list(csv.DictReader(io.StringIO(ledger_csv(
        studio, STUDIO, start=date(2000, 1, 1), end=today + timedelta(days=1)
    ))))  # fmt: skip
    assert [(r["amount_credits"], r["balance_after_credits"]) for r in ledger] == [
        ("200", "200"),
        ("-20", "180"),
    ]


def test_editing_a_pack_changes_new_purchases_only_with_an_audit_row(studio, fake_stripe):
    old = package(studio, "Popular")
    sid = open_session(studio, "studio", old.id, "before-edit")  # opened on the old terms
    edited = save_package(
        studio, ADMIN, "popular", PackTerms("Popular", "17.99", 250, 0, True), reason="promo"
    )
    assert (edited.version, edited.id) == (old.version + 1, f"popular-v{old.version + 1}")
    fake_stripe.pay(sid)
    fulfil_checkout(studio, sid, account_id="studio")
    assert credits(get_wallet(studio, "studio").balance) == 200  # the terms it was sold on
    with pytest.raises(UnknownPackage, match="no longer sold"):
        open_session(studio, "studio", old.id, "after-edit")
    buy(studio, fake_stripe, "Popular", "after-edit-new")
    assert credits(get_wallet(studio, "studio").balance) == 450
    retire_package(studio, ADMIN, "pro", reason="too many packs")
    assert "Pro" not in [p.name for p in list_packages(studio)]
    audits = [
        (a.action, a.target, a.reason)
        for a in list_audit(studio, ADMIN, action_prefix="package.")
        if a.reason != "credit price list preset"
    ]
    assert sorted(audits) == [
        ("package.retire", "pro", "too many packs"),
        ("package.save", "popular", "promo"),
    ]
    [promo] = [
        a for a in list_audit(studio, ADMIN, action_prefix="package.") if a.reason == "promo"
    ]
    assert (promo.before["id"], promo.after["id"]) == (old.id, edited.id)
    assert verify_ledger(studio).ok


@pytest.mark.parametrize(
    ("terms", "match"),
    [
        (PackTerms("Popular", "17.999", 200), "whole number of cents"),
        (PackTerms("Popular", "0", 200), "price must be above 0"),
        (PackTerms("Popular", "17.99", 0), "credits"),
        (PackTerms("", "17.99", 200), "name"),
        (PackTerms("Popular", "17.99", "0.000000001"), "nano-USD"),
        (PackTerms("Popular", 17.99, 200), "float"),
    ],
)
def test_a_bad_pack_is_refused_and_nothing_changes(studio, terms, match):
    before = list_packages(studio, include_inactive=True)
    with pytest.raises(InvalidUsage, match=match):
        save_package(studio, ADMIN, "popular", terms, reason="bad")
    assert list_packages(studio, include_inactive=True) == before


def test_a_rate_that_splits_a_nano_usd_is_refused(monkeypatch):
    monkeypatch.setenv("PRICING_CREDITS_PER_USD", "3")
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="whole number of nano-USD"):
        get_settings()
    get_settings.cache_clear()


def test_the_api_lists_fixed_prices_and_estimates_a_quantity(studio):
    reset_default_limiter()
    key = {"Authorization": f"Bearer {create_api_key(studio, STUDIO).secret}"}
    with TestClient(Starlette(routes=routes())) as client:
        listed = client.get("/api/v1/pricing/models", headers=key).json()["fixed_prices"]
        estimate = client.post(
            "/api/v1/estimate",
            json={"model": "dall-e-3", "operation": "image_generation", "prompt_tokens": 0,
                  "max_output_tokens": 0, "quantity": 4},
            headers=key,
        )  # fmt: skip
    got = {(f["operation"], f["model"] or ""): (f["price"], f["credits"]) for f in listed}
    assert got == {k: (str(Decimal(c) / 10), str(c)) for k, c in SOURCE_PRICES.items()}
    assert estimate.status_code == 200, estimate.text
    assert estimate.json()["price"] == "4"  # 4 x 10 credits = $4.00


def test_operators_publish_plans_and_set_enterprise_fees_from_the_cli(engine):
    from typer.testing import CliRunner

    from pricing_core.cli.main import app
    from pricing_core.plans.subscriptions import account_plans

    create_account(engine, "bigco", name="BigCo", opening_credit=Decimal(0))
    runner = CliRunner()
    done = runner.invoke(app, ["plans", "publish", "starter", "--name", "Starter", "--fee", "6",
                               "--included", "1200", "--overage", "0.0002", "--cap", "60",
                               "--reason", "new terms"])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "starter v2: Starter, $6.00 a month" in done.stdout
    fee = runner.invoke(app, ["plans", "set-fee", "bigco", "enterprise", "900", "--reason", "deal"])
    assert fee.exit_code == 0, fee.output
    plans = {p.code: p for p in account_plans(engine, "bigco")}
    assert (plans["starter"].version, plans["starter"].monthly_fee) == (2, Decimal(6))
    assert plans["starter"].included_messages == 1200
    assert plans["enterprise"].monthly_fee == Decimal(900)
    refused = runner.invoke(app, ["plans", "publish", "starter", "--name", "Starter",
                                  "--fee", "abc", "--reason", "x"])  # fmt: skip
    assert refused.exit_code == 2 and "monthly fee" in refused.output
    kinds = [a.action for a in list_audit(engine, ADMIN)]
    assert any("plan" in k for k in kinds) and len(kinds) >= 2
