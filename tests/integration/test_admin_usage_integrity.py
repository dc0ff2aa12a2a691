"""Usage explorer (high-cost accounts, spend-rate jumps, unpriced queue) and the
Integrity report, against independent sums of the recorded events."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import sqlalchemy as sa

from pricing_core.adapters.counters import Counter, count_event, counter_totals
from pricing_core.admin import integrity as admin_integrity
from pricing_core.analytics import spend_watch as admin_usage
from pricing_core.config import get_settings
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.metering.record import record_usage
from tests.admin_support import ADMIN, DAY0, seed_accounts, seed_small

NANO = Decimal("1e-9")


def events_by(engine, *keys: str) -> dict[tuple, int]:
    out: dict[tuple, int] = defaultdict(int)
    with engine.connect() as conn:
        for row in conn.execute(sa.text("SELECT * FROM usage_events")):
            m = row._mapping
            day = m["day"] if isinstance(m["day"], date) else date.fromisoformat(str(m["day"]))
            values = {**m, "day": day}
            out[tuple(values[k] for k in keys)] += m["price"]
    return out


def test_high_cost_accounts_show_the_days_spend_and_a_linear_month_end_projection(engine):
    seed_small(engine)
    as_of = date(2025, 3, 5)
    rows = admin_usage.high_cost_accounts(engine, ADMIN, as_of=as_of, min_spend=Decimal(0))
    daily = events_by(engine, "account_id", "day")
    today = {a: n for (a, d), n in daily.items() if d == as_of}
    month = defaultdict(int)
    for (a, _d), n in daily.items():
        month[a] += n
    assert [r.account_id for r in rows] == sorted(today, key=lambda a: -today[a])
    for r in rows:
        assert r.spend_today == Decimal(today[r.account_id]) * NANO
        assert r.month_to_date == Decimal(month[r.account_id]) * NANO
        # the 5th is over: 5 of March's 31 days have elapsed
        want = (Decimal(month[r.account_id]) * NANO * 31 / 5).quantize(NANO, ROUND_HALF_EVEN)
        assert r.projected_month_end == want


def test_high_cost_means_at_least_the_configured_spend_that_day(engine, monkeypatch):
    seed_small(engine)
    as_of = date(2025, 3, 5)
    today = {a: n for (a, d), n in events_by(engine, "account_id", "day").items() if d == as_of}
    assert today, "the seed spends on the 5th"
    assert admin_usage.high_cost_accounts(engine, ADMIN, as_of=as_of) == []  # all under $5
    ranked = sorted(today.values(), reverse=True)
    line = Decimal(ranked[0]) * NANO  # the day's biggest spender exactly
    monkeypatch.setenv("PRICING_HIGH_COST_USD", str(line))
    get_settings.cache_clear()
    listed = admin_usage.high_cost_accounts(engine, ADMIN, as_of=as_of)
    expected = [a for a, n in today.items() if Decimal(n) * NANO >= line]
    assert [r.account_id for r in listed] == expected and len(expected) >= 1
    smaller = admin_usage.high_cost_accounts(engine, ADMIN, as_of=as_of, min_spend=line - NANO)
    assert len(smaller) == sum(Decimal(n) * NANO >= line - NANO for n in today.values())


def big(engine, request_id: str, account: str, day: int, tokens: int) -> Decimal:
    at = DAY0 + timedelta(days=day)
    return record_usage(
        engine,
        UsageEvent(
            request_id,
            account,
            account,
            "chat_message",
            "openai",
            "gpt-4o",
            tokens,
            0,
            created_at=at,
        ),
        allow_overdraft=True,
        now=at + timedelta(seconds=1),
    ).price


def test_a_spend_rate_jump_against_the_accounts_own_baseline_is_flagged(engine):
    seed_accounts(engine)
    small = [big(engine, f"a{d}", "alice", d, 10_000) for d in range(14)]
    jump = big(engine, "a14", "alice", 14, 1_000_000)
    for d in range(15):  # steady heavy user: no jump
        big(engine, f"b{d}", "bob", d, 1_000_000)
    new = big(engine, "c14", "carol", 14, 1_000_000)
    found = admin_usage.spend_anomalies(engine, ADMIN, as_of=(DAY0 + timedelta(days=14)).date())
    assert [(a.account_id, a.ratio is None) for a in found] == [("carol", True), ("alice", False)]
    carol, alice = found
    assert carol.recent_spend == new and carol.baseline_daily == 0
    baseline = sum(small, Decimal(0)) / 14
    assert alice.ratio == (jump / baseline).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    assert alice.ratio == Decimal("100.00")
    # a smaller factor than the jump flags nothing new; a $5 minimum drops them all
    assert (
        admin_usage.spend_anomalies(
            engine, ADMIN, as_of=(DAY0 + timedelta(days=14)).date(), min_spend=Decimal(5)
        )
        == []
    )


def test_the_unpriced_queue_groups_events_recorded_without_a_price(engine, monkeypatch):
    from pricing_core.config import get_settings

    monkeypatch.setenv("PRICING_UNPRICED_POLICY", "queue")
    get_settings.cache_clear()
    seed_accounts(engine)
    for i, account in enumerate(["alice", "bob", "alice"]):
        record_usage(
            engine,
            UsageEvent(
                f"u{i}",
                account,
                account,
                "chat_message",
                "acme",
                "mystery-1",
                100 * (i + 1),
                10,
                created_at=DAY0,
            ),
        )
    [group] = admin_usage.unpriced_queue(engine, ADMIN)
    assert (group.provider, group.model, group.events, group.accounts) == (
        "acme",
        "mystery-1",
        3,
        2,
    )
    assert (group.input_tokens, group.output_tokens) == (600, 30)
    report = admin_integrity.integrity_report(engine, ADMIN)
    assert report.unpriced_events == 3 and admin_integrity.ledger_check(engine, ADMIN).ok


def test_the_integrity_report_counts_rejections_and_shows_ledger_violations(engine):
    seed_small(engine)
    now = datetime.now(UTC)
    for _ in range(3):
        assert count_event(engine, Counter.API_REJECTED, detail="402 insufficient balance")
    count_event(engine, Counter.WEBHOOK_FAILED, detail="bad signature")
    count_event(engine, Counter.API_REJECTED, now=now - timedelta(days=30))  # too old
    report = admin_integrity.integrity_report(engine, ADMIN, days=7, now=now)
    assert (report.api_rejected, report.webhook_failed) == (3, 1)
    ledger = admin_integrity.ledger_check(engine, ADMIN)
    assert ledger.ok and ledger.events == 25
    total = counter_totals(engine, ADMIN, since=now.date() - timedelta(days=40), until=now.date())
    assert total == {"api_rejected": 4, "webhook_failed": 1}

    with engine.begin() as conn:  # corrupt a wallet behind the ledger's back
        conn.execute(sa.text("UPDATE wallets SET balance = balance + 1 WHERE account_id = 'bob'"))
    broken = admin_integrity.ledger_check(engine, ADMIN)
    assert not broken.ok
    assert any("'bob'" in v for v in broken.violations)
