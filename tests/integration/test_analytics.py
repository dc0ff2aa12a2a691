"""analytics on both back ends: numbers equal an independent computation from the
events and the ledger; another account's data is never visible."""

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from genai_prices import Usage, calc_price
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select, update

from pricing_core import analytics
from pricing_core.adapters.schema import chats, ledger_entries
from pricing_core.domain.errors import InvalidUsage, PermissionDenied
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.wallets import create_account, credit
from pricing_core.metering.record import record_usage

NOW = datetime(2025, 3, 20, 15, 0, tzinfo=UTC)
NANO = Decimal("1e-9")
ALICE = Principal("alice", "alice")
BOB = Principal("bob", "bob")


def charge(
    model: str, provider: str, input_tokens: int, output_tokens: int, at: datetime
) -> Decimal:
    """What one call should cost the wallet: genai-prices x default markup 1.25, half-even."""
    exact = calc_price(
        Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        model,
        provider_id=provider,
        genai_request_timestamp=at,
    ).total_price
    return (exact * Decimal("1.25")).quantize(NANO, ROUND_HALF_EVEN)  # fmt: skip


CALLS = [
    # (request, account, chat, model, provider, in, out, when)
    ("a1", "alice", "trip", "gpt-4o-mini", "openai", 1020, 129, NOW - timedelta(days=40)),
    ("a2", "alice", "trip", "gpt-4o", "openai", 2000, 300, NOW - timedelta(days=19, hours=1)),
    ("a3", "alice", "code", "gpt-4o", "openai", 500, 50, NOW - timedelta(days=3)),
    ("a4", "alice", "trip", "gpt-4o-mini", "openai", 800, 90, NOW - timedelta(hours=2)),
    ("a5", "alice", "code", "claude-3-5-haiku-latest", "anthropic", 3000, 10,
     NOW - timedelta(hours=1)),
    ("b1", "bob", "secret", "gpt-4o", "openai", 9000, 900, NOW - timedelta(days=1)),
]  # fmt: skip


@pytest.fixture
def data(engine):
    create_account(
        engine, "alice", name="Alice", opening_credit=Decimal("5"), now=NOW - timedelta(days=60)
    )
    create_account(
        engine, "bob", name="Bob", opening_credit=Decimal("5"), now=NOW - timedelta(days=60)
    )
    create_account(
        engine, "empty", name="Empty", opening_credit=Decimal("0"), now=NOW - timedelta(days=1)
    )
    for rid, account, chat, model, provider, i, o, at in CALLS:
        if rid == "a3":  # the ledger is written in time order, like real history
            credit(
                engine,
                "alice",
                Decimal("20"),
                idempotency_key="buy-1",
                now=NOW - timedelta(days=10),
            )
        event = UsageEvent(
            rid,
            account,
            account,
            "chat_message",
            provider,
            model,
            i,
            o,
            chat_id=chat,
            created_at=at,
        )
        record_usage(engine, event, now=at)
    return engine


def expected(rid: str) -> Decimal:
    call = next(c for c in CALLS if c[0] == rid)
    return charge(call[3], call[4], call[5], call[6], call[7])


def test_the_overview_shows_the_balance_and_spend_computed_from_the_ledger_and_prices(data):
    view = analytics.overview(data, ALICE, now=NOW)
    with data.connect() as conn:
        ledger_sum = conn.execute(
            select(func.sum(ledger_entries.c.amount)).where(ledger_entries.c.account_id == "alice")
        ).scalar_one()
    assert (
        view.balance
        == ledger_sum
        == Decimal("25") - sum(expected(r) for r in ("a1", "a2", "a3", "a4", "a5"))
    )
    assert view.available == view.balance
    assert view.spend_today == expected("a4") + expected("a5")
    assert view.spend_this_month == sum(expected(r) for r in ("a2", "a3", "a4", "a5"))
    assert view.spend_last_month == expected("a1")
    assert view.state is analytics.BalanceState.OK
    assert [e.kind for e in view.recent_entries[:2]] == ["usage", "usage"]
    assert view.recent_entries[-1].kind == "grant"
    assert view.has_usage
    # recent activity reads as what happened, not as request ids (chats have no title
    # here, so they are named by their id)
    assert view.entry_descriptions[:2] == (
        "claude-3-5-haiku-latest · chat 'code' · 3,000 → 10 tokens",
        "gpt-4o-mini · chat 'trip' · 800 → 90 tokens",
    )
    assert view.entry_descriptions[-1] == "welcome credit"
    # a titled chat is named by its title, and only the account's own chat's
    with data.begin() as conn:
        conn.execute(
            update(chats).where(chats.c.account_id == "alice", chats.c.chat_id == "trip")
            .values(title="Trip plan")
        )  # fmt: skip
        conn.execute(insert(chats).values(
            account_id="empty", user_id="empty", chat_id="code", title="not alice's", requests=0,
            input_tokens=0, output_tokens=0, provider_cost=0, cost=0, first_at=NOW, last_at=NOW,
        ))  # fmt: skip
    titled = analytics.overview(data, ALICE, now=NOW).entry_descriptions[:2]
    assert titled == (
        "claude-3-5-haiku-latest · chat 'code' · 3,000 → 10 tokens",
        "gpt-4o-mini · chat 'Trip plan' · 800 → 90 tokens",
    )
    # the 30-day trend has every day, today last, and sums to the events in it
    assert len(view.last_30_days) == 30 and view.last_30_days[-1][0] == NOW.date()
    recent = [c for c in CALLS if c[1] == "alice" and c[7].date() > NOW.date() - timedelta(30)]
    assert sum(v for _, v in view.last_30_days) == sum(expected(c[0]) for c in recent)
    month = [c for c in CALLS if c[1] == "alice" and c[7].date() >= NOW.date().replace(day=1)]
    by_model: dict[str, Decimal] = {}
    for c in month:
        by_model[c[3]] = by_model.get(c[3], Decimal(0)) + expected(c[0])
    assert view.top_models == tuple(sorted(by_model.items(), key=lambda kv: -kv[1])[:3])
    assert len(view.entry_descriptions) == len(view.recent_entries)


def test_the_forecast_uses_the_last_fourteen_complete_days(data):
    view = analytics.overview(data, ALICE, now=NOW)
    window = expected("a3")  # a2 is 19 days old, a4/a5 are today
    assert view.forecast.window_spend == window
    assert view.forecast.runway_days == int(view.available * 14 // window)


def test_an_account_without_usage_has_zero_spend_and_nothing_to_project(data):
    view = analytics.overview(data, Principal("empty", "empty"), now=NOW)
    assert (view.balance, view.spend_today, view.spend_this_month) == (0, 0, 0)
    assert not view.has_usage and view.recent_entries == ()
    assert view.forecast.state == "no_usage"
    assert view.state is analytics.BalanceState.CRITICAL


def test_a_chat_lists_its_requests_in_time_order_with_their_charges(data):
    detail = analytics.chat_detail(data, ALICE, "trip")
    assert detail is not None
    assert detail.requests["request_id"].tolist() == ["a1", "a2", "a4"]
    assert detail.requests["cost"].tolist() == [expected("a1"), expected("a2"), expected("a4")]
    assert detail.cost == expected("a1") + expected("a2") + expected("a4")
    assert "1,020 input tokens x $0.15/MTok" in detail.requests["explanation"].iloc[0]
    member_text = detail.requests["explanation"].iloc[0]
    assert "our price" in member_text and "markup" not in member_text
    admin = analytics.chat_detail(data, Principal("ops", "root", role="admin"), "trip",
                                  account_id="alice")  # fmt: skip
    assert admin is not None
    assert admin.requests["explanation"].iloc[0] == member_text + "; markup x1.25"


def test_another_accounts_chat_is_not_found(data):
    assert analytics.chat_detail(data, ALICE, "secret") is None
    assert analytics.chat_detail(data, BOB, "secret") is not None
    assert "secret" not in analytics.list_chats(data, ALICE)["chat_id"].tolist()


def test_a_member_cannot_name_another_account(data):
    with pytest.raises(PermissionDenied, match="bob"):
        analytics.overview(data, ALICE, account_id="bob", now=NOW)
    with pytest.raises(PermissionDenied, match="bob"):
        analytics.chat_detail(data, ALICE, "secret", account_id="bob")


def test_chats_can_be_searched_by_title_or_id_with_like_metacharacters_taken_literally(data):
    assert analytics.list_chats(data, ALICE, search="TRI")["chat_id"].tolist() == ["trip"]
    assert analytics.list_chats(data, ALICE, search="%").empty
    assert analytics.list_chats(data, ALICE, search="_").empty
    chats = analytics.list_chats(data, ALICE)
    assert chats["chat_id"].tolist() == ["code", "trip"]  # most recent activity first
    assert chats.set_index("chat_id").loc["code", "cost"] == expected("a3") + expected("a5")


def test_one_chats_requests_download_as_csv(data):
    text = analytics.usage_events_csv(
        data, ALICE, start=date(2020, 1, 1), end=date(2030, 1, 1), chat_id="code"
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(r["request_id"] for r in rows) == ["a3", "a5"]
    assert {r["chat_id"] for r in rows} == {"code"}
    assert sum(Decimal(r["price_usd"]) for r in rows) == expected("a3") + expected("a5")
    assert analytics.usage_events_csv(
        data, ALICE, start=date(2020, 1, 1), end=date(2030, 1, 1), chat_id="secret"
    ).splitlines() == [",".join(analytics.EXPORT_COLUMNS)]  # Bob's chat: nothing


def test_the_chats_list_can_stop_at_the_latest_and_count_the_rest(data):
    assert analytics.list_chats(data, ALICE, limit=1)["chat_id"].tolist() == ["code"]
    assert analytics.count_chats(data, ALICE) == 2
    assert analytics.count_chats(data, ALICE, search="TRI") == 1
    assert analytics.count_chats(data, ALICE, search="%") == 0
    assert analytics.count_chats(data, BOB) == 1  # Bob's one chat, "secret"


def test_usage_series_by_model_sums_to_the_events_per_period(data):
    report = analytics.usage_report(data, ALICE, start=date(2025, 2, 1), end=date(2025, 3, 20))
    monthly = analytics.usage_series(report, granularity="month", by="model")
    got = {(r.period, r.key): r.value for r in monthly.itertuples()}
    assert got == {
        (date(2025, 2, 1), "gpt-4o-mini"): expected("a1"),
        (date(2025, 3, 1), "gpt-4o"): expected("a2") + expected("a3"),
        (date(2025, 3, 1), "gpt-4o-mini"): expected("a4"),
        (date(2025, 3, 1), "claude-3-5-haiku-latest"): expected("a5"),
    }
    weekly_tokens = analytics.usage_series(
        report, granularity="week", by="operation", measure="tokens"
    )
    assert weekly_tokens["value"].sum() == sum(c[5] + c[6] for c in CALLS if c[1] == "alice")
    assert sorted(set(weekly_tokens["period"])) == [
        date(2025, 2, 3),
        date(2025, 2, 24),
        date(2025, 3, 17),
    ]


def test_the_model_table_and_shares_add_up(data):
    report = analytics.usage_report(data, ALICE, start=date(2025, 1, 1), end=date(2025, 3, 20))
    table = analytics.model_table(report).set_index("model")
    assert table.loc["gpt-4o", "requests"] == 2
    assert table.loc["gpt-4o", "cost"] == expected("a2") + expected("a3")
    avg = ((expected("a2") + expected("a3")) / 2).quantize(NANO, ROUND_HALF_EVEN)
    assert table.loc["gpt-4o", "avg_cost"] == avg
    share = analytics.usage_share(report, by="operation")
    assert share["percent"].tolist() == [Decimal("100.0")]
    requests, tokens, cost = analytics.report_totals(report)
    assert (requests, cost) == (5, sum(expected(r) for r in ("a1", "a2", "a3", "a4", "a5")))


def test_a_reversed_date_range_is_refused(data):
    with pytest.raises(InvalidUsage, match="after it ends"):
        analytics.usage_report(data, ALICE, start=date(2025, 3, 2), end=date(2025, 3, 1))


def test_the_csv_export_has_the_filtered_events_with_exact_prices(data):
    text = analytics.usage_events_csv(
        data, ALICE, start=date(2025, 3, 1), end=date(2025, 3, 20), models=["gpt-4o"]
    )
    lines = text.strip().split("\n")
    assert lines[0].split(",") == analytics.EXPORT_COLUMNS
    assert [line.split(",")[0] for line in lines[1:]] == ["a2", "a3"]
    assert lines[1].split(",")[-1] == format(expected("a2").normalize(), "f")
    assert "b1" not in text


def test_the_ledger_groups_usage_per_day_and_keeps_the_running_balance(data):
    view = analytics.ledger_view(data, ALICE)
    with data.connect() as conn:
        amounts = (
            conn.execute(
                select(ledger_entries.c.amount)
                .where(ledger_entries.c.account_id == "alice")
                .order_by(ledger_entries.c.id)
            )
            .scalars()
            .all()
        )
    rows = view.rows.iloc[::-1]  # oldest first
    assert rows["kind"].tolist() == ["grant", "usage", "usage", "purchase", "usage", "usage"]
    assert rows["entries"].tolist() == [1, 1, 1, 1, 1, 2]
    running = Decimal(0)
    for amount, after in zip(rows["amount"], rows["balance_after"], strict=True):
        running += amount
        assert after == running
    assert running == sum(amounts)
    usage_only = analytics.ledger_view(
        data, ALICE, kinds=["usage"], start=date(2025, 3, 20), end=date(2025, 3, 20)
    )
    assert usage_only.rows["amount"].tolist() == [-(expected("a4") + expected("a5"))]
    exported = analytics.ledger_csv(
        data, ALICE, kinds=["usage"], start=date(2025, 3, 20), end=date(2025, 3, 20)
    )
    assert len(exported.strip().split("\n")) == 3


def test_the_ledger_refuses_an_unknown_kind(data):
    with pytest.raises(ValueError, match="gift"):
        analytics.ledger_view(data, ALICE, kinds=["gift"])


def test_the_csv_export_reads_events_by_their_time_in_the_configured_zone(data, monkeypatch):
    from pricing_core.config import get_settings

    monkeypatch.setenv("PRICING_TIMEZONE", "Asia/Tokyo")  # UTC+9: 15:00 UTC is midnight
    get_settings.cache_clear()
    text = analytics.usage_events_csv(data, ALICE, start=date(2025, 3, 21), end=date(2025, 3, 21))
    ids = [line.split(",")[0] for line in text.strip().split("\n")[1:]]
    assert ids == []  # a4 (13:00 UTC) and a5 (14:00 UTC) are still the 20th in Tokyo
    text = analytics.usage_events_csv(data, ALICE, start=date(2025, 3, 20), end=date(2025, 3, 20))
    assert "+09:00" in text


def test_a_long_chat_is_shown_a_page_at_a_time(data):
    first = analytics.chat_detail(data, ALICE, "trip", page_size=2)
    assert (first.page, first.pages, first.offset) == (1, 2, 0)
    assert first.requests["request_id"].tolist() == ["a1", "a2"]
    second = analytics.chat_detail(data, ALICE, "trip", page=2, page_size=2)
    assert second.requests["request_id"].tolist() == ["a4"] and second.offset == 2
    beyond = analytics.chat_detail(data, ALICE, "trip", page=99, page_size=2)
    assert beyond.page == 2  # clamped
    assert first.cost == second.cost == expected("a1") + expected("a2") + expected("a4")


def test_a_grouped_usage_row_expands_to_its_entries(data):
    view = analytics.ledger_view(data, ALICE)
    today = view.rows.iloc[0]
    entries = analytics.usage_entries_of_day(data, ALICE, day=today["day"])
    assert entries["amount"].tolist() == [-expected("a5"), -expected("a4")]  # newest first
    assert entries["reference"].tolist() == ["a5", "a4"]
    assert entries["balance_after"].iloc[0] == today["balance_after"]
    newest = analytics.usage_entries_of_day(data, ALICE, day=today["day"], limit=1)
    assert newest["reference"].tolist() == ["a5"]
    before = today["day"] - timedelta(days=400)  # no usage: no entries, the same columns
    none = analytics.usage_entries_of_day(data, ALICE, day=before)
    assert none.empty and list(none.columns) == analytics.ENTRY_COLUMNS


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chat_id=st.one_of(
        st.text(max_size=200), st.sampled_from(["' OR 1=1 --", "%", "trip%", "x" * 10_000])
    )
)
def test_any_chat_id_from_a_url_finds_only_the_accounts_own_chat(data, chat_id):
    detail = analytics.chat_detail(data, ALICE, chat_id)
    assert detail is None or detail.chat_id == chat_id in {"trip", "code"}
    found = analytics.list_chats(data, ALICE, search=chat_id)
    assert set(found["chat_id"]) <= {"trip", "code"}
