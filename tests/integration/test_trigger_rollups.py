"""The rollups behind date ranges, on both back ends: `account_monthly` (kept by
triggers from `account_daily`) and the range sums read from it
(`analytics.account_ranges`), `models_in_use` (triggers on `platform_daily`) behind
the price book, and `usage_entries_daily` (written by every recording path) behind
the Transactions page; against figures computed here from the recorded events and
entries."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from pricing_core.adapters.schema import ledger_entries, usage_events
from pricing_core.adapters.schema_prices import models_in_use
from pricing_core.adapters.schema_rollups import account_monthly, chat_daily, usage_entries_daily
from pricing_core.analytics.account_ranges import account_totals
from pricing_core.analytics.prices import price_book
from pricing_core.analytics.revenue import top_accounts
from pricing_core.analytics.transactions import ledger_view, usage_entries_of_day
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import EntryKind, create_account, post_entry
from pricing_core.metering.batch import record_usage_batch
from pricing_core.metering.record import record_usage

ADMIN = Principal("root", "a0", role="admin")
FIRST = date(2026, 1, 20)  # events on 70 days across four calendar months
NOW = datetime(2026, 5, 1, tzinfo=UTC)


def _events(prefix: str, days: range) -> list[UsageEvent]:
    return [
        UsageEvent(
            request_id=f"{prefix}{k}-{n}",
            account_id=f"a{(k + n) % 3}",
            user_id="u",
            operation="chat_message",
            provider="openai",
            model="gpt-4o" if k < 10 else "gpt-4o-mini",
            input_tokens=100 + 37 * k + n,
            output_tokens=10 + k,
            created_at=datetime.combine(FIRST + timedelta(days=k), datetime.min.time(), UTC)
            + timedelta(hours=12, minutes=n),
        )
        for k in days
        for n in range(1 + k % 3)
    ]


def _record(engine: sa.Engine) -> None:
    for i in range(3):
        create_account(engine, f"a{i}", name=f"A{i}", opening_credit=Decimal(100), now=NOW)
    for event in _events("s", range(0, 35)):  # one by one: the general or one-call path
        record_usage(engine, event, now=NOW)
    record_usage_batch(engine, _events("b", range(20, 70)), now=NOW)  # overlapping days


def _by_day(engine: sa.Engine) -> dict[tuple[str, date], list[int]]:
    """(account, day) -> [requests, price nanos], from the events themselves."""
    e = usage_events.c
    out: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0])
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(e.account_id, e.created_at, sa.type_coerce(e.price, sa.BigInteger))
        ).all()
    for account, at, price in rows:
        day = at.astimezone(UTC).date()  # the tests' configured zone is UTC
        out[account, day][0] += 1
        out[account, day][1] += int(price)
    return out


def test_month_totals_equal_the_events_of_each_month_on_every_path(engine):
    _record(engine)
    expected: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0])
    for (account, day), (n, price) in _by_day(engine).items():
        expected[account, day.replace(day=1)][0] += n
        expected[account, day.replace(day=1)][1] += price
    m = account_monthly.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(m.account_id, m.month, m.requests, sa.type_coerce(m.price, sa.BigInteger))
        ).all()
    assert {(a, mo): [n, int(p)] for a, mo, n, p in rows} == dict(expected)
    assert len(rows) == 9  # 3 accounts x January..March
    assert verify_ledger(engine).ok


def test_range_totals_equal_the_events_of_the_range_for_any_range(engine):
    _record(engine)
    by_day = _by_day(engine)
    days = [FIRST + timedelta(days=k) for k in range(-3, 75, 4)]
    with engine.connect() as conn:
        for start in days:
            for end in (d for d in days if d >= start):
                want: dict[str, list[int]] = {}
                for (account, day), (n, price) in by_day.items():
                    if start <= day <= end:
                        got = want.setdefault(account, [0, 0])
                        got[0] += n
                        got[1] += price
                t = account_totals(start, end, sums=("requests", "price"))
                rows = conn.execute(sa.select(t.c.account_id, t.c.requests, t.c.price)).all()
                assert {a: [n, int(p * 10**9)] for a, n, p in rows} == want, (start, end)


def test_top_accounts_over_a_range_across_months_rank_the_events_sums(engine):
    _record(engine)
    start, end = date(2026, 2, 10), date(2026, 3, 12)
    spend: dict[str, int] = defaultdict(int)
    for (account, day), (_, price) in _by_day(engine).items():
        if start <= day <= end:
            spend[account] += price
    ranked = top_accounts(engine, ADMIN, start=start, end=end, limit=2)
    want = sorted(spend.items(), key=lambda kv: (-kv[1], kv[0]))[:2]
    assert [(r.account_id, int(r.spend * 10**9)) for r in ranked] == want


def test_verify_reports_a_month_total_that_drifted_from_its_days(engine):
    _record(engine)
    with engine.begin() as conn:
        conn.execute(
            account_monthly.update()
            .where(
                account_monthly.c.account_id == "a1", account_monthly.c.month == date(2026, 2, 1)
            )
            .values(requests=account_monthly.c.requests + 1)
        )
    report = verify_ledger(engine)
    assert not report.ok
    assert any("account_monthly" in p and "'a1'" in p for p in report.violations)


def test_the_price_book_lists_every_model_used_with_its_last_30_days_requests(engine):
    _record(engine)
    e = usage_events.c
    now = datetime.combine(FIRST + timedelta(days=75), datetime.min.time(), UTC)
    since = (now - timedelta(days=30)).date()
    with engine.connect() as conn:
        rows = conn.execute(sa.select(e.provider, e.model, e.created_at)).all()
        listed = set(conn.execute(sa.select(models_in_use)).all())
    recent: dict[tuple[str, str], int] = defaultdict(int)
    for provider, model, at in rows:
        recent[provider, model] += at.astimezone(UTC).date() >= since
    assert listed == set(recent) == {("openai", "gpt-4o-mini"), ("openai", "gpt-4o")}
    book = {(v.provider, v.model): v.requests_30d for v in price_book(engine, ADMIN, now=now)}
    assert {k: book[k] for k in recent} == dict(recent)
    # gpt-4o's days are all before the window: only the list of models names it
    assert recent["openai", "gpt-4o-mini"] > 0 and recent["openai", "gpt-4o"] == 0
    with engine.begin() as conn:
        conn.execute(models_in_use.delete().where(models_in_use.c.model == "gpt-4o"))
    assert any("models_in_use" in v for v in verify_ledger(engine).violations)


def _usage_entries_by_day(engine: sa.Engine) -> dict[tuple[str, date], tuple[int, int, int]]:
    """(account, value day) -> (entries, amount nanos, balance_after nanos of the last
    posted), from the ledger entries and their events, grouped here."""
    e, le = usage_events.c, ledger_entries.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                e.account_id,
                e.created_at,
                le.id,
                sa.type_coerce(le.amount, sa.BigInteger),
                sa.type_coerce(le.balance_after, sa.BigInteger),
            ).join(ledger_entries, le.reference == e.request_id)
        ).all()
    grouped: dict[tuple[str, date], list[tuple[int, int, int]]] = defaultdict(list)
    for account, at, entry, amount, after in rows:
        grouped[account, at.astimezone(UTC).date()].append((entry, int(amount), int(after)))
    return {
        key: (len(entries), sum(a for _, a, _ in entries), max(entries)[2])
        for key, entries in grouped.items()
    }


def test_the_ledger_view_reads_each_value_days_usage_entries_on_every_path(engine):
    _record(engine)
    with engine.begin() as conn:  # a purchase amid the usage of one day
        post_entry(conn, account_id="a0", amount=Decimal(5), kind=EntryKind.PURCHASE,
                   idempotency_key="p1", reference="cs_1", floor=None, now=NOW)  # fmt: skip
    record_usage_batch(engine, _events("late", range(24, 25)), now=NOW)
    want = _usage_entries_by_day(engine)
    for account in ("a0", "a1", "a2"):
        rows = ledger_view(engine, ADMIN, account_id=account).rows
        usage = rows[rows["kind"] == "usage"]
        got = {
            (account, day): (n, int(amount * 10**9), int(after * 10**9))
            for day, n, amount, after in zip(
                usage["day"],
                usage["entries"],
                usage["amount"],
                usage["balance_after"],
                strict=True,
            )
        }
        assert got == {k: v for k, v in want.items() if k[0] == account}
        assert rows["value_at"].is_monotonic_decreasing
        day = FIRST + timedelta(days=24)
        entries = usage_entries_of_day(engine, ADMIN, day=day, account_id=account)
        shown = (len(entries), int(sum(entries["amount"], Decimal(0)) * 10**9))
        assert shown == want.get((account, day), (0, 0, 0))[:2]
    other = ledger_view(engine, ADMIN, account_id="a0", kinds=["purchase"]).rows
    assert other[["kind", "entries", "amount"]].values.tolist() == [["purchase", 1, Decimal(5)]]
    assert verify_ledger(engine).ok


def test_verify_reports_a_usage_day_that_drifted_from_its_entries(engine):
    _record(engine)
    u = usage_entries_daily.c
    with engine.begin() as conn:
        drifted = conn.execute(
            usage_entries_daily.update()
            .where(u.account_id == "a2", u.day == FIRST + timedelta(days=31))
            .values(entries=u.entries + 1)
        )
        assert drifted.rowcount == 1
    report = verify_ledger(engine)
    assert any("usage_entries_daily" in p and "'a2'" in p for p in report.violations)


def test_chat_daily_equals_the_events_by_chat_and_api_key_on_every_path(engine):
    for i in range(3):
        create_account(engine, f"a{i}", name=f"A{i}", opening_credit=Decimal(100), now=NOW)
    chats = ("c1", None, "c2")
    keys = ({"api_key": "key_1"}, None, {"api_key": 7, "team": "x"}, {"team": "y"})
    events = [
        replace(event, chat_id=chats[k % 3], metadata=keys[k % 4])
        for k, event in enumerate(_events("s", range(0, 12)) + _events("b", range(8, 20)))
    ]
    single = [e for e in events if e.request_id.startswith("s")]
    for event in single:  # one by one: the general or one-call path
        record_usage(engine, event, now=NOW)
    record_usage_batch(engine, [e for e in events if e not in single], now=NOW)
    e, c = usage_events.c, chat_daily.c
    with engine.connect() as conn:
        price = dict(
            conn.execute(sa.select(e.request_id, sa.type_coerce(e.price, sa.BigInteger))).all()
        )
        rows = conn.execute(
            sa.select(
                c.account_id, c.day, c.chat_id, c.api_key, c.requests, c.input_tokens
            ).add_columns(sa.type_coerce(c.price, sa.BigInteger))
        ).all()
    want: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
    for event in events:  # only text under "api_key" is a key; "" for none
        key = (event.metadata or {}).get("api_key")
        day = event.created_at.astimezone(UTC).date()
        sums = want[event.account_id, day, event.chat_id or "", key if isinstance(key, str) else ""]
        sums[0] += 1
        sums[1] += event.input_tokens
        sums[2] += price[event.request_id]
    assert {tuple(r[:4]): [r[4], r[5], int(r[6])] for r in rows} == dict(want)
    assert {r.api_key for r in rows} == {"key_1", ""}
    assert verify_ledger(engine).ok
    with engine.begin() as conn:
        conn.execute(chat_daily.update().where(c.chat_id == "c2").values(requests=c.requests + 1))
    assert any("chat_daily" in v for v in verify_ledger(engine).violations)
