"""AppTest for the Billing pages: the member's statements, invoices and auto top-up
form, and the admins' payment metrics and billing records. Expected figures are
computed here from what the test posted, not read from the pages' code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
import streamlit as st
from streamlit.testing.v1 import AppTest

from pricing_core.access import auth
from pricing_core.adapters import storage
from pricing_core.adapters.schema_payments import auto_topups, stripe_customers, topup_attempts
from pricing_core.billing.invoices import store_invoice_on
from pricing_core.config import get_settings
from pricing_core.domain.principal import Principal
from pricing_core.ledger.wallets import EntryKind, create_account, credit
from pricing_core.plans.records import generate_billing_records
from tests.admin_support import ADMIN

ROOT = Path(__file__).resolve().parents[2]
ALICE = Principal("alice", "alice")
OCTOBER = datetime(2026, 10, 5, 12, tzinfo=UTC)


@pytest.fixture
def db(sqlite_url, monkeypatch):
    monkeypatch.setenv("PRICING_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()
    engine = storage.open_database(sqlite_url)
    create_account(engine, "alice", name="Alice", opening_credit=Decimal(5), now=OCTOBER)
    credit(engine, "alice", Decimal(20), kind=EntryKind.PURCHASE, idempotency_key="buy",
           now=OCTOBER + timedelta(days=1))  # fmt: skip
    yield engine
    st.cache_resource.clear()
    st.cache_data.clear()


def run_page(name: str, principal, monkeypatch) -> AppTest:
    monkeypatch.setattr(auth, "current_principal", lambda *a, **k: principal)
    at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def rows(at: AppTest, index: int = 0) -> list[dict]:
    return at.dataframe[index].value.to_dict("records")


def test_the_billing_page_lists_statements_and_stripe_invoices(db, monkeypatch):
    assert generate_billing_records(db, now=datetime(2026, 11, 2, tzinfo=UTC)) == 1
    with db.begin() as conn:
        conn.execute(
            sa.insert(stripe_customers).values(
                account_id="alice", customer_id="cus_1", created_at=OCTOBER
            )
        )
        store_invoice_on(
            conn,
            {"id": "in_1", "customer": "cus_1", "number": "INV-0001", "status": "paid",
             "amount_due": 1799, "amount_paid": 1799, "currency": "usd",
             "description": "Credit pack", "hosted_invoice_url": "https://pay.example/in_1",
             "invoice_pdf": "https://pay.example/in_1.pdf", "created": 1791000000},
            now=OCTOBER,
        )  # fmt: skip
    at = run_page("billing", ALICE, monkeypatch)
    [statement] = rows(at, 0)
    assert statement["Period"] == "October 2026"
    assert statement["Opening"] == "$0.00" and statement["Bought"] == "$20.00"
    assert statement["Closing"] == "$25.00" and statement["Status"] == "Paid"
    [invoice] = rows(at, 1)
    assert invoice["Number"] == "INV-0001" and invoice["Amount"] == "$17.99 USD"
    assert invoice["Invoice"] == "https://pay.example/in_1"
    assert [b.label for b in at.get("download_button")] == ["Download PDF", "Download all as CSV"]
    assert any("not set up" in i.value for i in at.info)  # no Stripe key here


def test_an_empty_account_sees_what_comes_and_saves_auto_topup(db, monkeypatch):
    at = run_page("billing", ALICE, monkeypatch)
    shown = " ".join(c.value for c in at.caption)
    assert "No statements yet" in shown and "No invoices yet" in shown
    assert "No top-ups yet" in shown
    form = {t.label: t for t in at.text_input}
    form["Amount (USD)"].input("0.50")
    at.radio[0].set_value("An amount")
    at.toggle[0].set_value(True)
    at.button[0].click().run()
    assert any("at least $1.00" in e.value for e in at.error)
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(auto_topups)).scalar() == 0
    form = {t.label: t for t in at.text_input}
    form["Amount (USD)"].input("15")
    form["When the balance falls below (USD)"].input("2")
    at.button[0].click().run()
    assert any("Auto top-up saved" in s.value for s in at.success)
    with db.connect() as conn:
        saved = conn.execute(sa.select(auto_topups)).one()
    assert (saved.enabled, saved.threshold, saved.amount_cents) == (True, Decimal(2), 1500)


def test_a_disabled_topup_shows_a_banner(db, monkeypatch):
    with db.begin() as conn:
        conn.execute(
            sa.insert(auto_topups).values(
                account_id="alice", enabled=False, threshold=Decimal(1), amount_cents=1000,
                monthly_max_cents=5000, failures=3, updated_at=OCTOBER,
                disabled_reason="3 payments in a row failed (last: card declined)",
            )
        )  # fmt: skip
    for page in ("billing", "overview", "usage"):  # on every page, once
        at = run_page(page, ALICE, monkeypatch)
        banners = [e.value for e in at.error if "Auto top-up is off" in e.value]
        assert len(banners) == 1 and "3 payments in a row failed" in banners[0], page


def test_the_admin_page_shows_payment_metrics_and_every_account_record(db, monkeypatch):
    create_account(db, "bob", name="Bob", opening_credit=Decimal(3), now=OCTOBER)
    generate_billing_records(db, now=datetime(2026, 11, 2, tzinfo=UTC))
    now = datetime.now(UTC)
    with db.begin() as conn:
        for n, outcome in enumerate(["succeeded", "succeeded", "declined"]):
            conn.execute(
                sa.insert(topup_attempts).values(
                    account_id="alice", topup_id=1, attempt=n + 1, outcome=outcome,
                    created_at=now,
                )
            )  # fmt: skip
    at = run_page("admin_billing", ADMIN, monkeypatch)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Success rate"] == "66.7%"  # 2 of 3
    assert shown["Declines"] == "1"
    records = {r["Account"]: r for r in rows(at, 0)}
    assert set(records) == {"Alice (alice)", "Bob (bob)"}
    assert records["Bob (bob)"]["Closing"] == "$3.00"
    assert len(at.get("plotly_chart")) == 1


def test_a_member_cannot_open_the_admin_billing_page(db, monkeypatch):
    monkeypatch.setattr(auth, "current_principal", lambda *a, **k: ALICE)
    at = AppTest.from_file(str(ROOT / "pages" / "admin_billing.py"), default_timeout=60).run()
    assert not at.dataframe and not at.metric


def test_saved_cards_are_listed_and_manage_opens_stripes_portal(db, monkeypatch, fake_stripe):
    from pricing_core.billing.customers import ensure_customer
    from pricing_core.billing.stripe_api import stripe_client

    customer = ensure_customer(db, "alice", client=stripe_client())
    fake_stripe.attach_card(customer, "visa")
    at = run_page("billing", ALICE, monkeypatch)
    assert any("Visa ending 4242 (expires 12/2034)" in m.value for m in at.markdown)
    [manage] = [b for b in at.button if b.label == "Manage payment methods"]
    manage.click().run()
    [link] = at.get("link_button")
    portal = link.proto.url
    assert portal.startswith(f"{fake_stripe.url}/portal/")
    assert fake_stripe.portal_sessions[portal.rsplit("/", 1)[1]]["customer"] == customer
    [add] = [b for b in at.button if b.label == "Add a card"]
    add.click().run()
    [link] = at.get("link_button")
    session = fake_stripe.sessions[link.proto.url.rsplit("/", 1)[1]]
    assert (session["mode"], session["customer"]) == ("setup", customer)
