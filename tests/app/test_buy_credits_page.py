"""AppTest of the Buy credits page, with and without Stripe configured."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from pricing_core.access import auth
from pricing_core.adapters import storage
from pricing_core.admin.accounts import adjust_balance
from pricing_core.config import get_settings
from pricing_core.domain.principal import Principal
from pricing_core.ledger.wallets import create_account, get_wallet

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(sqlite_url, monkeypatch):
    monkeypatch.setenv("PRICING_DATABASE_URL", sqlite_url)
    for name in ("PRICING_STRIPE_SECRET_KEY", "PRICING_STRIPE_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    st.cache_resource.clear()
    engine = storage.open_database(sqlite_url)
    create_account(engine, "ada", name="Ada", opening_credit=Decimal("1"))
    monkeypatch.setattr(
        auth,
        "current_principal",
        lambda *a, **k: Principal("ada", "ada", email="ada@example.com", demo=True),
    )
    return engine


def page(**query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "buy_credits.py"), default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in (*at.warning, *at.success, *at.info, *at.error)]
    return "\n".join(str(p) for p in parts)


def demo(monkeypatch, value: str) -> None:
    monkeypatch.setenv("PRICING_DEMO", value)
    get_settings.cache_clear()


def test_without_stripe_the_packages_show_with_a_notice_that_payments_are_off(db, monkeypatch):
    demo(monkeypatch, "off")
    at = page()
    assert not at.exception
    shown = texts(at)
    assert "Payments are not configured" in shown
    for price in ("$4.99", "$17.99", "$39.99", "$139.99"):
        assert price in shown
    assert "Most popular" in shown
    assert "$0.8995/$1 of credit" in shown  # 17.99 / 20, a rate: never rounded
    assert "$35.00 volume bonus" in shown
    assert [b.label for b in at.button] == []  # nothing to buy, nothing to simulate


def test_in_demo_mode_a_simulated_purchase_credits_the_pack_and_is_labelled(db, monkeypatch):
    demo(monkeypatch, "on")
    at = page()
    assert "DEMO MODE" in texts(at)
    labels = [b.label for b in at.button]
    assert labels == ["Simulate purchase (demo)"] * 4
    at.button(key="sim_popular-v1").click().run()
    assert not at.exception
    assert any("$20.00 of credit added. New balance: $21.00" in s.value for s in at.success)
    assert get_wallet(db, "ada").balance == Decimal("21")
    history = at.dataframe[0].value
    assert list(history["Status"]) == ["complete (simulated)"]
    assert list(history["Paid"]) == ["$17.99 USD"]
    # demo mode never says packs cannot be bought while it offers to simulate one,
    # and a simulated purchase has no receipt column full of "None"
    assert "cannot be bought" not in texts(at)
    assert "Receipt" not in history.columns
    assert "None" not in history.to_csv()


def test_with_stripe_buying_opens_checkout_and_the_return_shows_the_new_balance(
    db, monkeypatch, fake_stripe
):
    st.cache_resource.clear()
    at = page()
    assert "Payments are not configured" not in texts(at)
    assert [b.label for b in at.button] == ["Buy"] * 4
    at.button(key="buy_pro-v1").click().run()
    assert not at.exception
    (sid,) = fake_stripe.sessions
    (link,) = at.get("link_button")
    assert link.proto.url == f"{fake_stripe.url}/pay/{sid}"
    assert fake_stripe.sessions[sid]["amount_total"] == 3999

    fake_stripe.pay(sid)
    back = page(session_id=sid)
    assert not back.exception
    assert any("$46.00 of credit added. New balance: $47.00" in s.value for s in back.success)
    assert back.metric[0].value == "$47.00"
    history = back.dataframe[0].value
    assert list(history["Status"]) == ["complete"]
    assert list(history["Receipt"])[0].startswith(f"{fake_stripe.url}/receipts/")
    again = page(session_id=sid)  # a reload credits nothing more
    assert any("New balance: $47.00" in s.value for s in again.success)
    assert get_wallet(db, "ada").balance == Decimal("47")


def test_a_payment_still_clearing_shows_payment_processing(db, monkeypatch, fake_stripe):
    st.cache_resource.clear()
    at = page()
    at.button(key="buy_starter-v1").click().run()
    (sid,) = fake_stripe.sessions
    fake_stripe.pay(sid, async_payment=True)
    back = page(session_id=sid)
    assert any("Payment processing" in i.value for i in back.info)
    assert get_wallet(db, "ada").balance == Decimal("1")


def test_a_forged_session_id_in_the_url_shows_an_error_and_credits_nothing(
    db, monkeypatch, fake_stripe
):
    at = page(session_id="'; drop table wallets; --")
    assert any("not a checkout session id" in e.value for e in at.error)
    assert get_wallet(db, "ada").balance == Decimal("1")


def test_a_negative_balance_says_the_account_owes_credit(db, monkeypatch):
    demo(monkeypatch, "off")
    adjust_balance(db, OPS, "ada", Decimal("-1"), reason="used", idempotency_key="t-used")
    from datetime import UTC, datetime

    from pricing_core.adapters.storage import run_write
    from pricing_core.ledger.wallets import EntryKind, post_entry

    run_write(
        db,
        lambda conn: post_entry(
            conn,
            account_id="ada",
            amount=Decimal("-2.5"),
            kind=EntryKind.REFUND,
            idempotency_key="refund:re_x",
            floor=None,
            now=datetime.now(UTC),
        ),
    )
    at = page()
    assert at.metric[0].value == "-$2.50"
    assert any("owes $2.50 of credit" in w.value for w in at.warning)
    overview = AppTest.from_file(str(ROOT / "pages" / "overview.py"), default_timeout=60).run()
    assert any("owes $2.50 of credit" in e.value for e in overview.error)


OPS = Principal("ops", "ops", role="admin", email="ops@example.com")
