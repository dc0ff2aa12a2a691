"""Admin figures on the real Azure trace (both files, imported with the product's
importer), each against an independent computation from the exported usage events
and the exported ledger."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from typer.testing import CliRunner

from pricing_core.adapters import storage
from pricing_core.analytics import revenue as rev
from tests.admin_support import ADMIN
from tests.admin_trace import exported, import_real_trace

FIRST, LAST = date(2023, 11, 16), date(2023, 11, 17)


@pytest.fixture(scope="module")
def trace(sqlite_template, tmp_path_factory):
    """One SQLite database with the whole trace (28,185 events), shared by this module."""
    path = tmp_path_factory.mktemp("trace") / "trace.db"
    shutil.copy(sqlite_template, path)
    engine = storage.make_engine(f"sqlite:///{path}")
    n = import_real_trace(engine, path.parent)
    usage, ledger = exported(engine)
    yield engine, n, usage, ledger, f"sqlite:///{path}"
    engine.dispose()


def event_day(row: dict[str, str]) -> date:
    return datetime.fromisoformat(row["created_at"].replace("Z", "+00:00")).date()


def test_the_whole_trace_is_imported_and_exported(trace):
    _, n, usage, _, _ = trace
    assert n == len(usage) == 28_185  # every data row of both files (the README says 28,183)


def test_revenue_per_day_equals_the_exported_events_and_their_ledger_entries(trace):
    engine, _, usage, ledger, _ = trace
    report = rev.revenue_report(engine, ADMIN, start=FIRST, end=LAST)
    by_event: dict[date, Decimal] = defaultdict(Decimal)
    cost: dict[date, Decimal] = defaultdict(Decimal)
    day_of_request = {}
    for row in usage:
        by_event[event_day(row)] += Decimal(row["price_usd"])
        cost[event_day(row)] += Decimal(row["provider_cost_usd"])
        day_of_request[row["request_id"]] = event_day(row)
    by_ledger: dict[date, Decimal] = defaultdict(Decimal)
    for entry in ledger:
        if entry["kind"] == "usage":
            by_ledger[day_of_request[entry["reference"]]] -= Decimal(entry["amount_usd"])
    assert set(by_event) == {FIRST}  # one hour on 2023-11-16
    for p in report.periods:
        assert p.usage_revenue == by_event[p.period] == by_ledger[p.period]
        assert p.provider_cost == cost[p.period]
        assert p.cash_in == 0  # opening balances are grants, not cash
    assert report.periods[0].requests == 28_185
    assert report.totals.margin == by_event[FIRST] - cost[FIRST] > 0


def test_margin_per_model_equals_the_exported_events_grouped_by_model(trace):
    engine, _, usage, _, _ = trace
    rows = rev.revenue_breakdown(engine, ADMIN, start=FIRST, end=LAST, by=rev.Dimension.MODEL)
    price: dict[str, Decimal] = defaultdict(Decimal)
    cost: dict[str, Decimal] = defaultdict(Decimal)
    for row in usage:
        key = f"{row['provider']}/{row['model']}"
        price[key] += Decimal(row["price_usd"])
        cost[key] += Decimal(row["provider_cost_usd"])
    assert {r.key for r in rows} == set(price) and len(rows) >= 3
    for r in rows:
        assert r.margin == price[r.key] - cost[r.key]
        pct = ((price[r.key] - cost[r.key]) * 100 / price[r.key]).quantize(
            Decimal("0.01"), ROUND_HALF_EVEN
        )
        assert r.margin_pct == pct


def test_outstanding_liability_equals_the_positive_balances_of_the_exported_ledger(trace):
    engine, _, _, ledger, _ = trace
    balances: dict[str, Decimal] = defaultdict(Decimal)
    for entry in ledger:
        balances[entry["account_id"]] += Decimal(entry["amount_usd"])
    debt = rev.liability(engine, ADMIN)
    assert debt.outstanding == sum((b for b in balances.values() if b > 0), Decimal(0))
    assert debt.owed_by_customers == -sum((b for b in balances.values() if b < 0), Decimal(0))
    assert debt.accounts_owing > 0  # heavy trace users overdrew their $5


def test_the_revenue_cli_prints_the_same_figures_for_the_trace(trace, monkeypatch):
    from pricing_core.cli.main import app
    from pricing_core.config import get_settings

    engine, _, usage, _, url = trace
    monkeypatch.setenv("PRICING_DATABASE_URL", url)
    get_settings.cache_clear()
    result = CliRunner().invoke(
        app, ["revenue", "report", "--from", "2023-11-01", "--to", "2023-11-30",
              "--granularity", "month", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [p["period"] for p in data["periods"]] == ["2023-11-01"]
    revenue = sum((Decimal(r["price_usd"]) for r in usage), Decimal(0))
    cost = sum((Decimal(r["provider_cost_usd"]) for r in usage), Decimal(0))
    assert Decimal(data["totals"]["usage_revenue_usd"]) == revenue
    assert Decimal(data["totals"]["provider_cost_usd"]) == cost
    assert Decimal(data["totals"]["margin_usd"]) == revenue - cost
    storage._engines.pop(url).dispose()
