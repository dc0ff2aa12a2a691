"""AppTest for every admin page: renders for an admin on the real trace, refuses members."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
import streamlit as st
from streamlit.testing.v1 import AppTest

from pricing_core.access import auth
from pricing_core.adapters import storage
from pricing_core.analytics import prices as price_views
from pricing_core.domain.money import format_money
from tests.admin_support import ADMIN, MEMBER, seed_small
from tests.admin_trace import import_real_trace

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    "admin_revenue",
    "admin_usage",
    "admin_prices",
    "admin_offers",
    "admin_truth",
    "admin_accounts",
    "admin_billing",
    "admin_integrity",
]
NANO = Decimal("1e-9")


@pytest.fixture
def db(sqlite_url, monkeypatch):
    monkeypatch.setenv("PRICING_DATABASE_URL", sqlite_url)
    from pricing_core.config import get_settings

    get_settings.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()
    engine = storage.open_database(sqlite_url)
    yield engine
    st.cache_resource.clear()
    st.cache_data.clear()


def run_page(name: str, principal, monkeypatch, **state) -> AppTest:
    monkeypatch.setattr(auth, "current_principal", lambda *a, **k: principal)
    at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def usd(nanos: int) -> Decimal:
    return (Decimal(nanos) * NANO).quantize(NANO)


@pytest.mark.parametrize("page", PAGES)
def test_a_member_opening_an_admin_page_is_refused(page, db, monkeypatch):
    seed_small(db)
    at = run_page(page, MEMBER, monkeypatch)
    assert not at.exception
    assert any("Admins only" in e.value for e in at.error), [e.value for e in at.error]
    assert not at.metric and not at.dataframe


def test_the_revenue_page_shows_the_ledger_totals_on_the_real_trace(db, monkeypatch, tmp_path):
    import_real_trace(db, tmp_path, rows=1500)
    with db.connect() as conn:
        price, cost = conn.execute(
            sa.text("SELECT SUM(price), SUM(provider_cost) FROM usage_events")
        ).one()
        balances = defaultdict(int)
        for account, amount in conn.execute(
            sa.text("SELECT account_id, amount FROM ledger_entries")
        ):
            balances[account] += amount
    at = run_page("admin_revenue", ADMIN, monkeypatch)
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Usage revenue"] == format_money(usd(price))
    assert metrics["Provider cost"] == format_money(usd(cost))
    assert metrics["Margin"] == format_money(usd(price - cost))
    assert metrics["Prepaid liability"] == format_money(
        usd(sum(b for b in balances.values() if b > 0))
    )
    assert len(at.get("plotly_chart")) >= 3


def test_the_demo_admin_toggle_opens_the_admin_section(db, monkeypatch):
    seed_small(db)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["demo_account"] = "alice"
    at.run()
    with pytest.raises(ValueError, match="admin_revenue"):  # not in a member's navigation
        at.switch_page("pages/admin_revenue.py")

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["demo_account"] = "alice"
    at.session_state["demo_admin"] = True
    at.run()
    assert not at.exception, at.exception
    at.switch_page("pages/admin_revenue.py")
    # AppTest runs the chosen page file by itself (without app.py's sidebar), so the
    # toggle's state is set again as the sidebar would keep it
    at.session_state["demo_admin"] = True
    at.run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Revenue"], [e.value for e in at.error]


def test_the_accounts_page_lists_accounts_and_adjusts_a_balance_with_an_audit_row(
    db, monkeypatch, tmp_path
):
    import_real_trace(db, tmp_path, rows=300)
    at = run_page("admin_accounts", ADMIN, monkeypatch)
    assert not at.exception, at.exception
    at.text_input(key="accounts_query").set_value("user-3").run()
    assert at.selectbox(key="accounts_pick").value == "trace-user-3"
    with db.connect() as conn:
        before = conn.execute(
            sa.text("SELECT SUM(amount) FROM ledger_entries WHERE account_id = 'trace-user-3'")
        ).scalar_one()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Balance"] == format_money(usd(before))

    at.text_input(key="adjust_amount").set_value("250")
    at.text_area(key="adjust_reason").set_value("compensation for an outage")
    at.button(key="adjust_submit").click().run()
    assert any("confirmation" in w.value for w in at.warning), [w.value for w in at.warning]
    at.checkbox(key="adjust_confirm").check()
    at.button(key="adjust_submit").click().run()
    assert not at.exception, at.exception
    assert any("Applied $250.00" in s.value for s in at.success), [e.value for e in at.error]
    with db.connect() as conn:
        after = conn.execute(
            sa.text("SELECT SUM(amount) FROM ledger_entries WHERE account_id = 'trace-user-3'")
        ).scalar_one()
        actor, reason = conn.execute(
            sa.text("SELECT actor, reason FROM audit_log WHERE account_id = 'trace-user-3'")
        ).one()
    assert after - before == 250 * 10**9
    assert (actor, reason) == ("ops@example.com", "compensation for an outage")

    at.radio(key="adjust_mode").set_value("Set to")
    at.text_input(key="adjust_amount").set_value("50")
    at.text_area(key="adjust_reason").set_value("set after the outage")
    at.button(key="adjust_submit").click().run()
    assert not at.exception, at.exception
    assert any("the balance is now $50.00" in s.value for s in at.success), [
        e.value for e in at.error
    ]
    with db.connect() as conn:
        assert (
            conn.execute(
                sa.text("SELECT SUM(amount) FROM ledger_entries WHERE account_id = 'trace-user-3'")
            ).scalar_one()
            == 50 * 10**9
        )


def test_the_bulk_grant_form_reports_each_row_and_a_resubmission_grants_nothing(
    db, monkeypatch, tmp_path
):
    import_real_trace(db, tmp_path, rows=50)
    at = run_page("admin_accounts", ADMIN, monkeypatch)
    at.text_area(key="grant_targets").set_value("trace-user-1\ntrace-user-2\nnobody\ntrace-user-2")
    at.text_input(key="grant_amount").set_value("3")
    at.text_input(key="grant_reason").set_value("launch week")
    at.text_input(key="grant_batch").set_value("launch-1")
    at.button(key="grant_submit").click().run()
    assert not at.exception, at.exception
    assert [s.value for s in at.success] == ["2 done · 1 unknown account · 1 duplicate in list"]
    at.button(key="grant_submit").click().run()
    assert [s.value for s in at.success] == [
        "2 already applied · 1 unknown account · 1 duplicate in list"
    ]
    with db.connect() as conn:
        grants = conn.execute(
            sa.text(
                "SELECT account_id, amount FROM ledger_entries WHERE kind = 'grant' "
                "AND idempotency_key = 'grant:launch-1' ORDER BY account_id"
            )
        ).all()
    assert [tuple(g) for g in grants] == [("trace-user-1", 3 * 10**9), ("trace-user-2", 3 * 10**9)]


def test_the_price_book_previews_then_saves_a_markup_with_history(db, monkeypatch, tmp_path):

    import_real_trace(db, tmp_path, rows=200)
    at = run_page("admin_prices", ADMIN, monkeypatch)
    assert not at.exception, at.exception
    models = at.dataframe[0].value["model"].tolist()
    with db.connect() as conn:
        used = conn.execute(sa.text("SELECT DISTINCT provider, model FROM usage_events")).all()
    assert sorted(models) == sorted(f"{p}/{m}" for p, m in used)
    model = models[0]
    at.selectbox(key="price_model").set_value(model)
    at.text_input(key="price_markup").set_value("1.5")
    at.text_input(key="price_reason").set_value("cover support costs")
    at.button(key="price_preview").click().run()
    assert not at.exception, at.exception
    assert not at.button(key="price_save").disabled
    # the trace is from 2023: nothing in the last 30 days to reprice
    preview = at.dataframe[1].value
    assert preview["model"].tolist() == [model, "total"]
    assert preview["difference"].tolist() == [Decimal(0), Decimal(0)]
    at.button(key="price_save").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    [row] = price_views.price_history(db, ADMIN)
    assert (row.subject, row.actor, row.reason) == (
        model,
        "ops@example.com",
        "cover support costs",
    )
    assert row.change == "markup 1.5"


def test_the_usage_explorer_shows_usage_by_model_and_the_days_high_cost_accounts(
    db, monkeypatch, tmp_path
):
    import_real_trace(db, tmp_path, rows=600)
    from pricing_core.config import get_settings

    monkeypatch.setenv("PRICING_HIGH_COST_USD", "0.000000001")  # every spender is listed
    get_settings.cache_clear()
    at = run_page("admin_usage", ADMIN, monkeypatch)
    assert not at.exception, at.exception
    with db.connect() as conn:
        by_model = {
            f"{p}/{m}": n
            for p, m, n in conn.execute(
                sa.text("SELECT provider, model, COUNT(*) FROM usage_events GROUP BY 1, 2")
            )
        }
        by_account = dict(
            conn.execute(
                sa.text("SELECT account_id, SUM(price) FROM usage_events GROUP BY account_id")
            ).all()
        )
    models = at.dataframe[0].value
    shown = dict(zip(models["model"], models["requests"], strict=True))
    assert shown == by_model
    # numbers reach the table as numbers, so a click on the header sorts 465 < 1,101
    assert models["requests"].dtype.kind == "i"
    high = at.dataframe[3].value  # the trace's day is the last day with usage
    top = max(by_account, key=by_account.get)
    assert high["account"].iloc[0].endswith(f"({top})")
    assert high["spend that day"].iloc[0] == usd(by_account[top])
    assert any("No unpriced usage" in s.value for s in at.success)


def test_the_integrity_page_reports_a_clean_ledger_with_its_counts(db, monkeypatch, tmp_path):
    n = import_real_trace(db, tmp_path, rows=300)
    at = run_page("admin_integrity", ADMIN, monkeypatch)
    assert not at.exception, at.exception
    assert not at.success  # the full ledger check runs on request
    at.button[0].click().run()
    assert not at.exception, at.exception
    with db.connect() as conn:
        entries = conn.execute(sa.text("SELECT COUNT(*) FROM ledger_entries")).scalar_one()
        wallets = conn.execute(sa.text("SELECT COUNT(*) FROM wallets")).scalar_one()
    [ok] = at.success
    assert ok.value.startswith(
        f"Ledger OK: {wallets} wallets, {entries:,} ledger entries and {n:,} usage"
    )
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rejected API requests"] == "0" and metrics["Unpriced usage events"] == "0"


def test_the_integrity_page_reconciles_with_stripe_and_credits_a_dropped_payment_once(
    db, monkeypatch, fake_stripe
):
    from pricing_core.ledger.wallets import create_account, get_wallet
    from tests.integration.stripe_helpers import paid_session

    create_account(db, "acct", name="Ada", opening_credit=Decimal(1))
    sid = paid_session(db, fake_stripe)  # paid at Stripe, webhook never arrived
    at = run_page("admin_integrity", ADMIN, monkeypatch)
    assert any("Sessions created since" in d.label for d in at.date_input)
    at.button[1].click().run()  # "Reconcile with Stripe": report only
    assert not at.exception, at.exception
    [found] = [d for d in at.dataframe if "finding" in d.value.columns]
    assert list(found.value["finding"]) == ["paid_not_credited"]
    assert list(found.value["session"]) == [sid] and list(found.value["fixed"]) == ["no"]
    assert get_wallet(db, "acct").balance == Decimal(1)

    for _ in range(2):  # the second run finds nothing left to credit
        at.button[2].click().run()
        assert not at.exception, at.exception
    assert get_wallet(db, "acct").balance == Decimal(1) + Decimal(20)  # the Popular pack
    assert any("agree on every credit-pack session" in s.value for s in at.success)
    with db.connect() as conn:
        audited = conn.execute(
            sa.text("SELECT actor, action, target FROM audit_log WHERE account_id = 'acct'")
        ).all()
    assert [(a.action, a.target) for a in audited] == [
        ("stripe.reconcile_fix", f"checkout_session:{sid}")
    ]


def test_the_integrity_page_says_when_stripe_is_not_configured(db, monkeypatch):
    seed_small(db)
    at = run_page("admin_integrity", ADMIN, monkeypatch)
    assert any("Stripe is not configured" in i.value for i in at.info)


def test_the_integrity_page_counts_real_api_rejections_and_webhook_failures(db, monkeypatch):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from pricing_core.api.http import routes
    from pricing_core.config import get_settings

    monkeypatch.setenv("PRICING_STRIPE_WEBHOOK_SECRET", "whsec_" + "k" * 24)
    get_settings.cache_clear()
    seed_small(db)
    client = TestClient(Starlette(routes=routes()))
    statuses = [
        client.get("/api/v1/balance").status_code,  # no key
        client.get("/api/v1/balance", headers={"Authorization": "Bearer pck_nope"}).status_code,
        client.post("/stripe/webhook", content=b"{}").status_code,  # unsigned
    ]
    assert statuses == [401, 401, 400]
    at = run_page("admin_integrity", ADMIN, monkeypatch)
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rejected API requests"] == "2"
    assert metrics["Webhook failures"] == "1"


def test_the_integrity_page_lists_notifications_and_filters_them_by_status(db, monkeypatch):
    from datetime import UTC, datetime

    from pricing_core.adapters.outbox import Kind, enqueue_on
    from pricing_core.adapters.storage import run_write

    seed_small(db)
    now = datetime.now(UTC)
    run_write(db, lambda conn: enqueue_on(conn, key="k1", kind=Kind.LOW_BALANCE,
                                          account_id="alice", payload={}, now=now))  # fmt: skip
    at = run_page("admin_integrity", ADMIN, monkeypatch)
    [log] = [d for d in at.dataframe if "kind" in d.value.columns and "attempts" in d.value.columns]
    assert list(log.value["kind"]) == ["low_balance"] and list(log.value["status"]) == ["pending"]
    at.selectbox(key="notification_status").set_value("sent").run()
    assert not at.exception
    assert any("No notification yet" in i.value for i in at.info)


def test_the_integrity_page_shows_the_provider_shape_table(db, monkeypatch):
    from pricing_core.catalog.provider_shapes import CASES

    seed_small(db)
    at = run_page("admin_integrity", ADMIN, monkeypatch)
    assert not at.exception, at.exception
    assert any(
        f"{len(CASES)} of {len(CASES)} payloads cost what the providers publish" in c.value
        for c in at.caption
    )
    [table] = [d for d in at.dataframe if "published" in d.value.columns]
    assert list(table.value["result"]) == ["ok"] * len(CASES)
    assert [Decimal(str(v)) for v in table.value["published"]] == [c.expected for c in CASES]


def test_the_pricing_truth_page_adds_a_custom_model_and_shows_a_bill(db, monkeypatch):
    from pricing_core.admin.provider_bills import BillFormat, import_bill

    seed_small(db)
    today = st_today()
    import_bill(db, ADMIN, "openai", BillFormat.CSV,
                f"date,model,cost_usd\n{today.isoformat()},gpt-4o,1.5\n", source="t")  # fmt: skip
    at = run_page("admin_truth", ADMIN, monkeypatch)
    assert not at.exception, at.exception
    for key, value in (("cm_provider", "acme"), ("cm_model", "acme-9"), ("cm_rate0", "2"),
                       ("cm_rate1", "8"), ("cm_reason", "launch day")):  # fmt: skip
        at.text_input(key=key).input(value)
    [add] = [b for b in at.button if b.label == "Add the model"]
    at = add.click().run()
    assert not at.exception, at.exception
    assert any("acme/acme-9 is priced from now on;" in s.value for s in at.success), [
        e.value for e in at.error
    ]
    [models] = [d for d in at.dataframe if "input $/MTok" in d.value.columns]
    assert list(models.value["model"]) == ["acme/acme-9"]
    [bill] = [d for d in at.dataframe if "billed" in d.value.columns]
    assert Decimal(str(bill.value["billed"].iloc[0])) == Decimal("1.5")
    assert list(bill.value["flag"])[0] == "over tolerance"  # nothing of ours that day


def st_today():
    from datetime import UTC, datetime

    return datetime.now(UTC).date()


def test_with_a_clickhouse_copy_revenue_shows_the_same_figures_and_integrity_its_watermark(
    db, monkeypatch, tmp_path
):
    from pricing_core.analytics import warehouse, warehouse_sync
    from pricing_core.config import get_settings

    n = import_real_trace(db, tmp_path, rows=300)

    def shown() -> tuple[dict[str, str], list]:
        at = run_page("admin_revenue", ADMIN, monkeypatch)
        assert not at.exception, at.exception
        return {m.label: m.value for m in at.metric}, [d.value for d in at.dataframe]

    metrics, tables = shown()
    monkeypatch.setenv("PRICING_ANALYTICS_URL", f"chdb://{tmp_path / 'warehouse'}")
    get_settings.cache_clear()
    st.cache_data.clear()
    assert warehouse_sync.sync(db, warehouse.configured()).events == n
    copied_metrics, copied_tables = shown()
    assert copied_metrics == metrics and len(copied_tables) == len(tables) > 1
    assert all(a.equals(b) for a, b in zip(copied_tables, tables, strict=True))
    at = run_page("admin_integrity", ADMIN, monkeypatch)
    assert not at.exception, at.exception
    assert any(f"events up to id {n:,} copied; 0 since" in c.value for c in at.caption)


def test_packs_and_plans_are_edited_from_their_page_as_new_versions(db, monkeypatch):
    from pricing_core.adapters.audit import list_audit
    from pricing_core.billing.packages import list_packages

    seed_small(db)
    at = run_page("admin_offers", ADMIN, monkeypatch)
    assert not at.exception, at.exception
    for key, value in (("pk_code", "popular"), ("pk_name", "Popular"), ("pk_price", "17.99"),
                       ("pk_credit", "25"), ("pk_reason", "winter promo")):  # fmt: skip
        at.text_input(key=key).set_value(value)
    at.button(key="pk_save").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [popular] = [p for p in list_packages(db) if p.code == "popular"]
    assert (popular.id, popular.total_credit, str(popular.price)) == ("popular-v2", 25, "17.99")
    at.text_input(key="pk_reason").set_value("")
    at.button(key="pk_save").click().run()
    assert [e.value for e in at.error] == ["a reason is required"]

    for key, value in (("pl_code", "starter"), ("pl_name", "Starter"), ("pl_fee", "6"),
                       ("pl_overage", "0.0002"), ("pl_reason", "new terms")):  # fmt: skip
        at.text_input(key=key).set_value(value)
    at.button(key="pl_publish").click().run()
    assert not at.error, [e.value for e in at.error]
    assert any("Starter v2 is on offer" in s.value for s in at.success)
    actions = sorted(a.action for a in list_audit(db, ADMIN))
    assert "package.save" in actions and any(a.startswith("plan") for a in actions), actions
