"""Cash in from credit packs (what customers paid, not the credit), refunds at the
session's own rate, plan fees per billing cycle, and usage revenue by plan."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from pricing_core.access.auth import demo_principal
from pricing_core.adapters.storage import run_write
from pricing_core.analytics import revenue as rev
from pricing_core.analytics import sales
from pricing_core.billing.checkout import simulate_purchase
from pricing_core.billing.refunds import apply_refund_on
from pricing_core.billing.sessions import session_row
from pricing_core.domain.money import nanos_to_usd
from pricing_core.domain.periods import add_months
from pricing_core.plans.subscriptions import SubscriptionSource
from pricing_core.plans.switching import switch_plan
from tests.admin_support import ADMIN, DAY0, seed_small


@pytest.fixture
def demo(monkeypatch):
    from pricing_core.config import get_settings

    monkeypatch.setenv("PRICING_DEMO", "on")
    get_settings.cache_clear()


def test_cash_in_is_what_packs_cost_net_of_refunds_at_the_sessions_rate(engine, demo):
    seed_small(engine)
    bought = DAY0 + timedelta(days=2, hours=3)
    sale = simulate_purchase(
        engine,
        demo_principal(engine, "alice"),
        package_id="popular-v1",
        idempotency_key="k1",
        now=bought,
    )
    assert sale.credited == Decimal(20)  # 18 + 2 bonus credited for $17.99 paid
    refunded = DAY0 + timedelta(days=3, hours=5)

    def refund(conn):
        row = session_row(conn, sale.session_id)
        return apply_refund_on(
            conn, {"id": "re_1", "status": "succeeded", "amount": 899}, row, now=refunded
        )

    run_write(engine, refund)
    report = rev.revenue_report(engine, ADMIN, start=date(2025, 3, 1), end=date(2025, 3, 5))
    cash = {p.period: p.cash_in for p in report.periods}
    # seed_small's sales recorded by hand ($20 on the 2nd, $10 on the 3rd, -$5 refund on
    # the 4th) count their own amounts; the pack counts its price, not its $20 of credit
    assert cash[date(2025, 3, 2)] == Decimal(20)
    assert cash[date(2025, 3, 3)] == Decimal("27.99")
    assert cash[date(2025, 3, 4)] == Decimal("-13.99")  # -5 and the refunded $8.99
    assert report.totals.cash_in == Decimal("34.00")
    packs = sales.package_sales(engine, ADMIN, start=date(2025, 3, 1), end=date(2025, 3, 5))
    assert [(p.package, p.sold, p.sales, p.refunded, p.net) for p in packs] == [
        ("recorded by hand", 2, Decimal(30), Decimal(-5), Decimal(25)),
        ("Popular", 1, Decimal("17.99"), Decimal("-8.99"), Decimal("9.00")),
    ]


def test_plan_fees_count_once_per_monthly_cycle_and_usage_is_split_by_plan(engine, demo):
    seed_small(engine)
    start = DAY0 + timedelta(days=2, hours=12)  # 3 March, noon
    switch_plan(engine, "alice", "starter", source=SubscriptionSource.ADMIN, now=start)
    switch_plan(engine, "bob", "starter", source=SubscriptionSource.DEMO, now=start)
    report = rev.revenue_report(
        engine, ADMIN, start=date(2025, 3, 1), end=date(2025, 5, 31), granularity="month"
    )
    fees = [p.cash_in for p in report.periods]
    # Starter's $5 on 3 Mar, 3 Apr and 3 May (bob's demo switch is free); March also
    # has seed_small's $25 of sales recorded by hand
    assert fees == [Decimal(30), Decimal(5), Decimal(5)]
    plans = {
        p.plan: p
        for p in sales.revenue_by_plan(engine, ADMIN, start=date(2025, 3, 1), end=date(2025, 3, 5))
    }
    assert plans["Starter"].plan_fees == Decimal(5) and plans["Starter"].accounts == 2
    with engine.connect() as conn:  # a day counts for the plan held at its end
        days = conn.execute(
            sa.text(
                "SELECT account_id, day, SUM(price) FROM usage_daily "
                "WHERE day BETWEEN '2025-03-01' AND '2025-03-05' GROUP BY account_id, day"
            )
        ).all()
    payg = [
        (a, nanos_to_usd(int(n)))
        for a, day, n in days
        if a not in ("alice", "bob") or str(day)[:10] < "2025-03-03"
    ]
    assert plans["Pay as you go"].accounts == len({a for a, _ in payg})
    assert plans["Pay as you go"].usage_revenue == sum((v for _, v in payg), Decimal(0))
    total = rev.revenue_report(engine, ADMIN, start=date(2025, 3, 1), end=date(2025, 3, 5))
    assert sum((p.usage_revenue for p in plans.values()), Decimal(0)) == total.totals.usage_revenue


def test_a_monthly_cycle_from_the_31st_bills_on_the_last_day_of_short_months():
    at = datetime(2025, 1, 31, 9, tzinfo=UTC)
    assert [add_months(at, k).date() for k in range(4)] == [
        date(2025, 1, 31),
        date(2025, 2, 28),
        date(2025, 3, 31),
        date(2025, 4, 30),
    ]
