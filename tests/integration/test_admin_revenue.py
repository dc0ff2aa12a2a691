"""Admin revenue figures against independent sums of the events and the ledger."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pricing_core.analytics import revenue as rev
from pricing_core.cli.main import app
from pricing_core.domain.periods import Granularity
from tests.admin_support import ADMIN, seed_small

NANO = Decimal("1e-9")


def usd(nanos: int) -> Decimal:
    return (Decimal(nanos) * NANO).quantize(NANO)


def raw_events(engine) -> list[dict]:
    with engine.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(
                sa.text(
                    "SELECT request_id, account_id, provider, model, operation, day, price, "
                    "provider_cost FROM usage_events"
                )
            )
        ]


def raw_ledger(engine) -> list[dict]:
    with engine.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(
                sa.text(
                    "SELECT account_id, kind, amount, reference, created_at FROM ledger_entries"
                )
            )
        ]


def day_of(value) -> date:
    """A rollup day (date or text) or a UTC timestamp (aware datetime or naive text)."""
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).date()
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def test_revenue_per_day_equals_the_usage_ledger_entries_of_that_days_events(engine):
    seed_small(engine)
    report = rev.revenue_report(engine, ADMIN, start=date(2025, 3, 1), end=date(2025, 3, 5))
    events = {e["request_id"]: e for e in raw_events(engine)}
    ledger = raw_ledger(engine)
    revenue: dict[date, int] = defaultdict(int)
    for entry in ledger:
        if entry["kind"] == "usage":
            revenue[day_of(events[entry["reference"]]["day"])] -= entry["amount"]
    cost: dict[date, int] = defaultdict(int)
    for e in events.values():
        cost[day_of(e["day"])] += e["provider_cost"]
    cash: dict[date, int] = defaultdict(int)
    for entry in ledger:
        if entry["kind"] in ("purchase", "refund"):
            cash[day_of(entry["created_at"])] += entry["amount"]

    assert [p.period for p in report.periods] == [date(2025, 3, d) for d in range(1, 6)]
    for p in report.periods:
        assert p.usage_revenue == usd(revenue[p.period]), p.period
        assert p.provider_cost == usd(cost[p.period]), p.period
        assert p.cash_in == usd(cash[p.period]), p.period
        assert p.margin == usd(revenue[p.period] - cost[p.period])
    assert report.periods[1].cash_in == Decimal(20)
    assert report.periods[3].cash_in == Decimal(-5)
    assert report.totals.cash_in == Decimal(25)
    assert report.totals.usage_revenue == usd(sum(revenue.values()))


def test_margin_per_model_equals_the_events_grouped_by_model(engine):
    seed_small(engine)
    rows = rev.revenue_breakdown(
        engine, ADMIN, start=date(2025, 3, 1), end=date(2025, 3, 31), by=rev.Dimension.MODEL
    )
    want: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for e in raw_events(engine):
        want[f"{e['provider']}/{e['model']}"][0] += e["price"]
        want[f"{e['provider']}/{e['model']}"][1] += e["provider_cost"]
    assert {r.key for r in rows} == set(want)
    for r in rows:
        price, cost = want[r.key]
        assert r.margin == usd(price - cost)
        assert r.margin_pct == (Decimal(price - cost) * 100 / Decimal(price)).quantize(
            Decimal("0.01"), ROUND_HALF_EVEN
        )
    # markup 1.25 on provider list prices: margin is 20 % of revenue, up to rounding
    assert all(abs(r.margin_pct - Decimal(20)) <= Decimal("0.01") for r in rows)


def test_outstanding_liability_is_the_sum_of_positive_balances(engine):
    seed_small(engine)
    balances: dict[str, int] = defaultdict(int)
    for entry in raw_ledger(engine):
        balances[entry["account_id"]] += entry["amount"]
    assert balances["carol"] < 0  # overdrawn: owes credit, not a liability
    debt = rev.liability(engine, ADMIN)
    assert debt.outstanding == usd(sum(b for b in balances.values() if b > 0))
    assert debt.owed_by_customers == usd(-balances["carol"])
    assert (debt.accounts_in_credit, debt.accounts_owing) == (2, 1)


def test_weeks_and_months_start_on_their_first_day_and_sum_their_days(engine):
    seed_small(engine)
    days = rev.revenue_report(engine, ADMIN, start=date(2025, 2, 27), end=date(2025, 3, 5))
    weeks = rev.revenue_report(
        engine, ADMIN, start=date(2025, 2, 27), end=date(2025, 3, 5), granularity=Granularity.WEEK
    )
    months = rev.revenue_report(
        engine, ADMIN, start=date(2025, 2, 27), end=date(2025, 3, 5), granularity="month"
    )
    assert [p.period for p in weeks.periods] == [date(2025, 2, 24), date(2025, 3, 3)]
    assert [p.period for p in months.periods] == [date(2025, 2, 1), date(2025, 3, 1)]
    march = sum((p.usage_revenue for p in days.periods if p.period.month == 3), Decimal(0))
    assert months.periods[1].usage_revenue == march
    assert weeks.totals == months.totals == days.totals


def test_a_reversed_range_is_refused(engine):
    from pricing_core.domain.errors import InvalidUsage

    with pytest.raises(InvalidUsage, match="before it starts"):
        rev.revenue_report(engine, ADMIN, start=date(2025, 3, 5), end=date(2025, 3, 1))


def test_top_accounts_are_ordered_by_spend(engine):
    seed_small(engine)
    top = rev.top_accounts(engine, ADMIN, start=date(2025, 3, 1), end=date(2025, 3, 5))
    spend: dict[str, int] = defaultdict(int)
    for e in raw_events(engine):
        spend[e["account_id"]] += e["price"]
    assert [t.account_id for t in top] == sorted(spend, key=lambda a: -spend[a])
    assert [t.spend for t in top] == [usd(spend[t.account_id]) for t in top]


def test_the_revenue_cli_prints_the_report_as_json_with_decimal_strings(engine):
    seed_small(engine)
    result = CliRunner().invoke(
        app,
        [
            "revenue",
            "report",
            "--from",
            "2025-03-01",
            "--to",
            "2025-03-05",
            "--granularity",
            "week",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output, parse_float=lambda s: pytest.fail(f"float {s} in JSON"))
    report = rev.revenue_report(
        engine, ADMIN, start=date(2025, 3, 1), end=date(2025, 3, 5), granularity="week"
    )
    assert set(data) == {"periods", "totals", "outstanding_liability_usd"}
    assert [p["period"] for p in data["periods"]] == ["2025-02-24", "2025-03-03"]
    fields = {"cash_in_usd", "usage_revenue_usd", "provider_cost_usd", "margin_usd", "margin_pct"}
    assert set(data["periods"][0]) == {"period"} | fields and set(data["totals"]) == fields
    assert Decimal(data["totals"]["usage_revenue_usd"]) == report.totals.usage_revenue
    assert Decimal(data["totals"]["cash_in_usd"]) == Decimal(25)
    assert Decimal(data["outstanding_liability_usd"]) == report.outstanding_liability
    assert Decimal(data["totals"]["margin_usd"]) == (
        Decimal(data["totals"]["usage_revenue_usd"]) - Decimal(data["totals"]["provider_cost_usd"])
    )


def test_days_are_taken_in_the_configured_time_zone(engine, monkeypatch):
    from pricing_core.config import get_settings

    monkeypatch.setenv("PRICING_TIMEZONE", "Pacific/Auckland")  # UTC+13 in March
    get_settings.cache_clear()
    seed_small(engine)
    report = rev.revenue_report(engine, ADMIN, start=date(2025, 3, 1), end=date(2025, 3, 6))
    # the refund at 11:00 UTC on 4 March is midnight on 5 March in Auckland
    assert [p.cash_in for p in report.periods[1:5]] == [Decimal(20), Decimal(10), 0, Decimal(-5)]
