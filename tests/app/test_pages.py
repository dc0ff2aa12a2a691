"""AppTest for every end-user page, as a demo account with data and as an empty
account. Key numbers are checked against values computed here from the ledger and
the events (SQL) or from genai-prices, never copied from the page's own code."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import streamlit as st
from genai_prices import Usage, calc_price
from streamlit.testing.v1 import AppTest

from pricing_core.access import auth
from pricing_core.adapters import storage
from pricing_core.config import get_settings
from pricing_core.demo.accounts import ACCOUNTS
from pricing_core.demo.seed import seed_demo
from pricing_core.domain.money import format_money
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.wallets import create_account
from pricing_core.metering.record import record_usage

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PAGES = ["overview", "chats", "usage", "transactions", "budget", "pricing", "billing"]
NANO = Decimal("1e-9")


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with the demo data (seed 0, up to now), seeded once per session."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    engine = storage.make_engine(f"sqlite:///{path}")
    storage.upgrade(engine)
    seed_demo(engine, seed=0)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


def use_database(monkeypatch: pytest.MonkeyPatch, url: str) -> sa.Engine:
    monkeypatch.setenv("PRICING_DATABASE_URL", url)
    get_settings.cache_clear()
    return storage.open_database(url)


@pytest.fixture
def demo_db(demo_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> sa.Engine:
    path = tmp_path / "demo.db"
    shutil.copy(demo_template, path)
    return use_database(monkeypatch, f"sqlite:///{path}")


@pytest.fixture
def small_db(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> sa.Engine:
    """An account with nothing at all, and one with a single known request."""
    engine = use_database(monkeypatch, sqlite_url)
    create_account(engine, "empty", name="Empty Account", opening_credit=Decimal(0))
    create_account(engine, "alice", name="Alice", opening_credit=Decimal(10))
    return engine


def view_as(monkeypatch: pytest.MonkeyPatch, account_id: str) -> None:
    def fake(*args, **kwargs):  # noqa: ARG001
        return Principal(account_id, account_id)

    monkeypatch.setattr(auth, "current_principal", fake)


def open_page(page: str, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    at.switch_page(f"pages/{page}.py")
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def texts(at: AppTest) -> str:
    kinds = ("title", "markdown", "caption", "info", "warning", "error", "success")
    parts = [e.value for kind in kinds for e in getattr(at, kind)]
    parts += [m.label + " " + m.value for m in at.metric]
    return "\n".join(str(p) for p in parts)


def scalar(engine: sa.Engine, sql: str, **params: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql), params).scalar_one() or 0)


def usd(nanos: int) -> Decimal:
    return Decimal(nanos).scaleb(-9)


def spend_text(amount: Decimal) -> str:
    """Spend totals: 2 decimals, except a sub-cent total, which must not read $0.00."""
    if 0 < abs(amount) < Decimal("0.01"):
        return format_money(amount)
    return format_money(amount)


def month_start_utc() -> datetime:
    now = datetime.now(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


# ---------------------------------------------------------------- demo account with data


def test_the_overview_shows_the_balance_and_this_months_spend_from_the_ledger(demo_db, monkeypatch):
    view_as(monkeypatch, "ada")
    at = open_page("overview")
    balance = usd(
        scalar(demo_db, "SELECT SUM(amount) FROM ledger_entries WHERE account_id = 'ada'")
    )
    month = usd(
        scalar(
            demo_db,
            "SELECT SUM(price) FROM usage_events WHERE account_id = 'ada' AND created_at >= :start",
            start=month_start_utc().replace(tzinfo=None),
        )
    )
    shown = metrics(at)
    assert shown["Balance"] == format_money(balance)
    assert shown["Spent this month"] == spend_text(month)
    assert "Healthy" in texts(at)
    assert "At your pace of the last 14 days" in texts(at)
    assert len(at.get("plotly_chart")) == 1  # the 30-day spend trend
    top = scalar_text(
        demo_db,
        "SELECT model FROM usage_events WHERE account_id = 'ada' AND created_at >= :start "
        "GROUP BY model ORDER BY SUM(price) DESC LIMIT 1",
        start=month_start_utc().replace(tzinfo=None),
    )
    assert "Top models this month" in texts(at) and top in texts(at)
    recent = at.dataframe[0].value
    assert len(recent) == 20  # the last 20 ledger entries
    # each charge reads as model, chat and tokens, never as a raw request id
    usage = recent[recent["Type"] == "usage"]["Description"].tolist()
    assert usage and not any(d.startswith("request ") or "demo0-" in d for d in usage)
    titled = scalar_text(
        demo_db,
        "SELECT c.title FROM ledger_entries l JOIN usage_events e ON e.ledger_entry_id = l.id "
        "JOIN chats c ON c.account_id = e.account_id AND c.chat_id = e.chat_id "
        "WHERE l.account_id = 'ada' AND l.kind = 'usage' ORDER BY l.id DESC LIMIT 1",
    )
    assert f"chat '{titled}'" in usage[0] or f'chat "{titled}"' in usage[0]


@pytest.mark.parametrize(
    ("account", "state"),
    [("sofia", "Low balance"), ("kenji", "Critical"), ("tom", "Owes credit")],
)
def test_the_balance_state_follows_the_thresholds(demo_db, monkeypatch, account, state):
    view_as(monkeypatch, account)
    at = open_page("overview")
    balance = usd(
        scalar(demo_db, "SELECT SUM(amount) FROM ledger_entries WHERE account_id = :a", a=account)
    )
    assert metrics(at)["Balance"] == format_money(balance)
    assert state in texts(at)
    if balance < 0:
        assert f"owes {format_money(-balance)}" in texts(at)


def test_a_chat_opened_by_url_shows_its_cost_as_genai_prices_computes_it(demo_db, monkeypatch):
    view_as(monkeypatch, "ada")
    with demo_db.connect() as conn:
        chat_id = conn.execute(
            sa.text(
                "SELECT chat_id FROM chats WHERE account_id = 'ada' "
                "ORDER BY requests DESC, chat_id LIMIT 1"
            )
        ).scalar_one()
        events = conn.execute(
            sa.text(
                "SELECT provider, model, input_tokens, output_tokens, created_at FROM usage_events "
                "WHERE account_id = 'ada' AND chat_id = :c ORDER BY created_at"
            ),
            {"c": chat_id},
        ).all()
    expected = Decimal(0)
    for provider, model, input_tokens, output_tokens, created_at in events:
        at_time = datetime.fromisoformat(str(created_at)).replace(tzinfo=UTC)
        exact = calc_price(
            Usage(input_tokens=input_tokens, output_tokens=output_tokens), model,
            provider_id=provider, genai_request_timestamp=at_time,
        ).total_price  # fmt: skip
        expected += (exact * Decimal("1.25")).quantize(NANO, ROUND_HALF_EVEN)
    at = open_page("chats", chat=chat_id)
    assert metrics(at)["Cost"] == format_money(expected)
    assert metrics(at)["Requests"] == f"{len(events):,}"
    requests = at.table[0].value
    assert len(requests) == len(events)
    assert requests["How it was charged"].str.contains("; our price ").all()


def test_another_accounts_chat_by_url_shows_nothing_of_it(demo_db, monkeypatch):
    with demo_db.connect() as conn:
        title, cost = conn.execute(
            sa.text(
                "SELECT title, cost FROM chats WHERE account_id = 'ada' ORDER BY chat_id LIMIT 1"
            )
        ).one()
    view_as(monkeypatch, "lena")
    at = open_page("chats", chat="ada-chat-001")
    assert "Chat not found" in texts(at)
    shown = texts(at)
    assert title not in shown and "ada" not in shown.lower()
    assert format_money(usd(cost)) not in shown
    assert not at.metric and not at.dataframe


def test_the_chats_table_lists_the_accounts_chats_and_searches_them(demo_db, monkeypatch):
    view_as(monkeypatch, "grace")
    at = open_page("chats")
    count = scalar(demo_db, "SELECT COUNT(*) FROM chats WHERE account_id = 'grace'")
    table = at.dataframe[0].value
    assert len(table) == count
    assert table["Cost"].sum() == usd(
        scalar(demo_db, "SELECT SUM(price) FROM usage_events WHERE account_id = 'grace'")
    )
    at.text_input(key="chat_search").input("grace-chat-001").run()
    assert at.dataframe[0].value["Chat"].tolist() == [
        scalar_text(
            demo_db,
            "SELECT title FROM chats WHERE account_id = 'grace' AND chat_id = 'grace-chat-001'",
        )
    ]
    at.selectbox[0].select("grace-chat-001").run()
    assert (
        at.query_params["chat"] == ["grace-chat-001"] or at.query_params["chat"] == "grace-chat-001"
    )


def scalar_text(engine: sa.Engine, sql: str, **params: object) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def test_the_usage_page_charts_cost_by_model_and_operation(demo_db, monkeypatch):
    view_as(monkeypatch, "maya")
    at = open_page("usage")
    total = usd(scalar(demo_db, "SELECT SUM(price) FROM usage_events WHERE account_id = 'maya'"))
    requests = scalar(demo_db, "SELECT COUNT(*) FROM usage_events WHERE account_id = 'maya'")
    assert metrics(at)["Cost"] == spend_text(total)
    assert metrics(at)["Requests"] == f"{requests:,}"
    assert len(at.get("plotly_chart")) == 4  # stacked by model, by operation, and two shares
    models = at.dataframe[0].value
    assert set(models["Model"]) == {"gpt-image-1", "gemini-2.5-flash"}
    at.get("button_group")[0].set_value("week").run() if at.get("button_group") else None
    assert not at.exception


def test_the_transactions_page_shows_the_running_balance(demo_db, monkeypatch):
    view_as(monkeypatch, "northwind")
    at = open_page("transactions")
    balance = usd(
        scalar(demo_db, "SELECT SUM(amount) FROM ledger_entries WHERE account_id = 'northwind'")
    )
    rows = at.dataframe[0].value
    assert rows["Balance after"].iloc[0] == format_money(balance)
    assert "adjustment" in set(rows["Type"]) and "grant" in set(rows["Type"])
    usage_days = scalar(
        demo_db,
        "SELECT COUNT(DISTINCT date(created_at)) FROM ledger_entries "
        "WHERE account_id = 'northwind' AND kind = 'usage'",
    )
    assert (rows["Type"] == "usage").sum() >= usage_days  # grouped per day, not per request
    assert len(rows) < scalar(
        demo_db, "SELECT COUNT(*) FROM ledger_entries WHERE account_id = 'northwind'"
    )
    latest = rows[rows["Type"] == "usage"].iloc[0]
    at.selectbox[0].select_index(0).run()  # the newest usage day expands to its entries
    entries = at.dataframe[1].value
    day = latest["Value date"][:10]
    assert len(entries) == int(latest["Description"].split()[1].replace(",", ""))
    assert {v[:10] for v in entries["Value date"]} == {day}
    assert entries["Balance after"].iloc[0] == latest["Balance after"]
    at.multiselect(key="tx_kinds").select("adjustment").run()
    assert at.dataframe[0].value["Type"].tolist() == ["adjustment"]


def test_the_budget_page_shows_this_months_spend(demo_db, monkeypatch):
    view_as(monkeypatch, "ada")
    at = open_page("budget")
    month = usd(
        scalar(
            demo_db,
            "SELECT SUM(price) FROM usage_events WHERE account_id = 'ada' AND created_at >= :start",
            start=month_start_utc().replace(tzinfo=None),
        )
    )
    assert metrics(at)[f"Spent in {month_start_utc():%Y-%m}"] == spend_text(month)
    assert metrics(at)["Monthly budget"] == "none"


# ---------------------------------------------------------------- an empty account


@pytest.mark.parametrize("page", PAGES)
def test_every_page_has_a_friendly_empty_state(small_db, monkeypatch, page):
    view_as(monkeypatch, "empty")
    at = open_page(page)
    assert not at.error
    shown = texts(at)
    if page == "overview":
        assert metrics(at)["Balance"] == "$0.00"
        assert metrics(at)["Spent this month"] == "$0.00"
        assert "No usage yet" in shown
    elif page == "chats":
        assert "No chats yet" in shown
    elif page == "pricing":
        assert "No fixed prices yet" in shown and "No model has been used yet" in shown
    elif page == "usage":
        assert "No usage yet" in shown
    elif page == "transactions":
        assert "No transactions yet" in shown
    elif page == "billing":
        assert "No statements yet" in shown and "No top-ups yet" in shown
    else:
        assert "No budget set" in shown


# ---------------------------------------------------------------- budget form and banner


def test_an_invalid_budget_is_refused_and_nothing_is_saved(small_db, monkeypatch):
    view_as(monkeypatch, "alice")
    at = open_page("budget")
    at.text_input[0].input("-5")
    at.button[0].click().run()
    assert any("must be positive" in e.value for e in at.error)
    at.text_input[0].input("10")
    at.text_input[1].input("50, 120")
    at.button[0].click().run()
    assert any("between 1 and 100" in e.value for e in at.error)
    assert scalar(small_db, "SELECT COUNT(*) FROM budgets") == 0


def test_crossing_a_budget_threshold_shows_a_banner_on_every_page(small_db, monkeypatch):
    event = UsageEvent(
        "r1", "alice", "alice", "chat_message", "openai", "gpt-4o", 0, 100_000, chat_id="c1"
    )
    price = record_usage(small_db, event).price
    assert price == Decimal("1.25")  # 100k output tokens x $10/MTok x 1.25
    view_as(monkeypatch, "alice")
    at = open_page("budget")
    at.text_input[0].input("2")
    at.button[0].click().run()
    assert not at.exception and any("saved" in s.value for s in at.success)
    assert (
        scalar(small_db, "SELECT monthly_limit FROM budgets WHERE account_id = 'alice'")
        == 2 * 10**9
    )
    for page in PAGES:
        shown = open_page(page)
        banners = [w.value for w in shown.warning]
        assert any("62.5% of your monthly budget" in b and "50%" in b for b in banners), (
            page,
            banners,
        )


# ---------------------------------------------------------------- demo mode


def test_an_empty_database_in_demo_mode_is_seeded_and_shows_the_first_account(
    sqlite_url, monkeypatch
):
    engine = use_database(monkeypatch, sqlite_url)
    at = AppTest.from_file(APP, default_timeout=300).run()
    assert not at.exception, [e.value for e in at.exception]
    assert scalar(engine, "SELECT COUNT(*) FROM accounts") == len(ACCOUNTS)
    assert any("DEMO MODE" in c.value for c in at.sidebar.caption)
    picker = at.sidebar.selectbox(key="demo_account")
    first = scalar_text(engine, "SELECT id FROM accounts ORDER BY name, id LIMIT 1")
    assert picker.value == first
    balance = usd(
        scalar(engine, "SELECT SUM(amount) FROM ledger_entries WHERE account_id = :a", a=first)
    )
    assert metrics(at)["Balance"] == format_money(balance)
    picker.select("tom").run()
    assert "Owes credit" in texts(at)


def test_the_account_in_the_url_is_preselected_in_demo_mode(demo_db):
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["account"] = "grace"
    at.run()
    assert at.sidebar.selectbox(key="demo_account").value == "grace"
    assert "Grace Hopper" in texts(at)


def test_the_demo_budget_of_grace_shows_its_meter_and_banner(demo_db, monkeypatch):
    view_as(monkeypatch, "grace")
    at = open_page("overview")
    limit = usd(scalar(demo_db, "SELECT monthly_limit FROM budgets WHERE account_id = 'grace'"))
    month = usd(
        scalar(
            demo_db,
            "SELECT SUM(price) FROM usage_events "
            "WHERE account_id = 'grace' AND created_at >= :start",
            start=month_start_utc().replace(tzinfo=None),
        )
    )
    percent = (month * 100 / limit).quantize(Decimal("0.1"))
    assert any(f"({percent}%) used" in p.proto.text for p in at.get("progress"))
    banner = any(f"used {percent}% of your monthly budget" in w.value for w in at.warning)
    # The demo sets Grace's budget 85 % used (unless the month is only minutes old).
    assert banner == (month * 100 >= limit * 50)


def test_a_long_chat_is_paged(small_db, monkeypatch):
    from datetime import timedelta

    from pricing_core.metering.batch import record_usage_batch

    start = datetime.now(UTC) - timedelta(hours=3)
    events = [
        UsageEvent(f"r{i:03d}", "alice", "alice", "chat_message", "openai", "gpt-4o-mini", 100, 10,
                   chat_id="long", created_at=start + timedelta(seconds=i))
        for i in range(105)
    ]  # fmt: skip
    assert record_usage_batch(small_db, events).recorded == 105
    view_as(monkeypatch, "alice")
    at = open_page("chats", chat="long")
    assert any("Requests 1 to 100 of 105" in c.value for c in at.caption)
    assert len(at.table[0].value) == 100
    at.number_input(key="chat_page").set_value(2).run()
    assert any("Requests 101 to 105 of 105" in c.value for c in at.caption)
    assert len(at.table[0].value) == 5


def test_an_account_with_many_chats_sees_the_latest_hundred_and_can_show_more(
    small_db, monkeypatch
):
    from datetime import timedelta

    from pricing_core.metering.batch import record_usage_batch

    start = datetime.now(UTC) - timedelta(hours=5)
    events = [
        UsageEvent(f"r{i:03d}", "alice", "alice", "chat_message", "openai", "gpt-4o-mini", 100, 10,
                   chat_id=f"c{i:03d}", created_at=start + timedelta(seconds=i))
        for i in range(130)
    ]  # fmt: skip
    assert record_usage_batch(small_db, events).recorded == 130
    view_as(monkeypatch, "alice")
    at = open_page("chats")
    assert any("The 100 latest of 130 chats" in c.value for c in at.caption)
    table = at.dataframe[0].value
    assert len(table) == 100
    assert table["Chat"].iloc[0] == "c129"  # the latest activity first
    at.button[0].click().run()
    assert any(c.value.startswith("130 chats.") for c in at.caption)
    assert len(at.dataframe[0].value) == 130
    assert not at.button  # nothing more to show


def test_times_are_shown_in_the_configured_time_zone(small_db, monkeypatch):
    monkeypatch.setenv("PRICING_TIMEZONE", "Asia/Tokyo")
    get_settings.cache_clear()
    view_as(monkeypatch, "alice")
    at = open_page("overview")
    assert "times in Asia/Tokyo" in texts(at)
    shown = at.dataframe[0].value["When"].iloc[0]
    with small_db.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT created_at FROM ledger_entries WHERE account_id = 'alice'")
        ).scalar_one()
    utc = datetime.fromisoformat(str(stored)).replace(tzinfo=UTC)
    assert shown == utc.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M JST")


@pytest.mark.parametrize("page", [*PAGES, "plans"])
def test_every_page_shows_the_balance_in_the_sidebar_coloured_by_its_state(
    small_db, monkeypatch, page
):
    view_as(monkeypatch, "empty")  # $0.00: below the critical threshold
    at = open_page(page)
    sidebar = [m.value for m in at.sidebar.markdown]
    assert "Balance :red[**$0.00**]  \n:red-badge[:material/error: Critical: almost empty]" in (
        sidebar
    ), sidebar
    links = [e.proto.label for e in at.sidebar.get("page_link")]
    assert "Buy credits" in links, links
    view_as(monkeypatch, "alice")
    at = open_page(page)
    assert any(m.value.startswith("Balance :green[**$10.00**]") for m in at.sidebar.markdown)


def test_an_account_in_its_grace_period_sees_what_would_be_refused(small_db, monkeypatch):
    view_as(monkeypatch, "empty")  # created just now, $0.00
    at = open_page("overview")
    assert not any("would be refused" in w.value for w in at.warning)  # no rollout yet
    monkeypatch.setenv("PRICING_ENFORCEMENT_GRACE_DAYS", "7")
    get_settings.cache_clear()
    st.cache_data.clear()  # the settings changed under the running app
    at = open_page("chats")
    [notice] = [w.value for w in at.warning if "would be refused" in w.value]
    assert notice.startswith("Spending limits are enforced from ")
    assert "insufficient balance on account 'empty'" in notice
    view_as(monkeypatch, "alice")  # $10.00: in grace too, nothing to refuse
    at = open_page("overview")
    assert any("Nothing would be refused now" in i.value for i in at.info)


def test_the_notifications_page_turns_a_kind_off_for_the_viewer_only(small_db, monkeypatch):
    from pricing_core.adapters.outbox import Kind
    from pricing_core.notify.preferences import low_balance_line, preferences

    view_as(monkeypatch, "alice")
    at = open_page("notifications")
    labels = [t.label for t in at.toggle]
    assert Kind.LOW_BALANCE.label in labels and Kind.HIGH_COST_REPORT.label not in labels
    assert all(t.value for t in at.toggle)  # everything on by default
    at.toggle(key="notify_low_balance").set_value(False).run()
    assert not at.exception and any("Saved" in s.value for s in at.success)
    alice, other = Principal("alice", "alice"), Principal("empty", "empty")
    assert preferences(small_db, alice)[Kind.LOW_BALANCE] is False
    assert preferences(small_db, other)[Kind.LOW_BALANCE] is True
    at = open_page("notifications")
    assert at.toggle(key="notify_low_balance").value is False
    at.text_input(key="low_balance_line_input").set_value("2.5")
    at.button(key="low_balance_line_save").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert low_balance_line(small_db, alice) == Decimal("2.5")
    at.text_input(key="low_balance_line_input").set_value("two")
    at.button(key="low_balance_line_save").click().run()
    assert any("low-balance line" in e.value for e in at.error)


def test_a_single_day_of_usage_is_labelled_with_its_date_not_a_time(small_db, monkeypatch):
    import json

    record_usage(
        small_db,
        UsageEvent("one", "alice", "alice", "chat_message", "openai", "gpt-4o-mini", 1180, 312),
    )
    view_as(monkeypatch, "alice")
    at = open_page("usage")
    today = datetime.now(get_settings().tz).date().isoformat()
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert figure["layout"]["xaxis"]["type"] == "category"  # not a time axis: no "00:00:00"
    assert {x for trace in figure["data"] for x in trace["x"]} == {today}
    assert figure["layout"]["legend"]["y"] < -0.2  # the legend sits below the dates


def test_imported_usage_is_listed_on_the_day_it_happened_not_the_day_it_was_posted(
    small_db, monkeypatch
):
    """Issue 21, item 6: usage recorded today for calls made days ago sits on its own
    value date, sorted by it; *Posted* is today."""
    from datetime import timedelta

    tz = get_settings().tz
    now = datetime.now(tz)
    older, newer = now - timedelta(days=5), now - timedelta(days=2)
    for request_id, at_time in (("old", older), ("new", newer)):
        event = UsageEvent(
            request_id, "alice", "alice", "chat_message", "openai", "gpt-4o-mini", 1000, 200,
            created_at=at_time,
        )  # fmt: skip
        record_usage(small_db, event)
    view_as(monkeypatch, "alice")
    at = open_page("transactions")
    rows = at.dataframe[0].value
    assert rows["Type"].tolist() == ["grant", "usage", "usage"]  # newest value date first
    assert [v[:10] for v in rows["Value date"]] == [
        now.date().isoformat(), newer.date().isoformat(), older.date().isoformat()
    ]  # fmt: skip
    assert {v[:10] for v in rows["Posted"]} == {now.date().isoformat()}


def test_a_short_range_of_usage_links_to_its_hours_in_explore(small_db, monkeypatch):
    """Issue 21, item 7: the Usage page's rollups are daily; a range of a few days links
    to Explore's hourly view of the same days and filters, which counts every request."""
    from urllib.parse import parse_qs

    for n in range(3):
        record_usage(small_db, UsageEvent(f"h{n}", "alice", "alice", "chat_message", "openai",
                                          "gpt-4o-mini", 1000 + n, 100))  # fmt: skip
    view_as(monkeypatch, "alice")
    at = open_page("usage")
    [link] = [m.value for m in at.markdown if "hour by hour in Explore" in m.value]
    query = link.split("](explore?", 1)[1].rstrip(")")
    params = {k: v[0] for k, v in parse_qs(query).items()}
    assert params["step"] == "hour" and params["group"] == "model"
    explore_at = open_page("explore", **params)
    assert explore_at.query_params["step"] in ("hour", ["hour"])
    shown = explore_at.dataframe[0].value
    charged = scalar(small_db, "SELECT SUM(price) FROM usage_events WHERE account_id = 'alice'")
    assert sum(Decimal(str(v)) for v in shown["Cost"]) == usd(charged) > 0
