"""Admin figures on the real Azure trace (both files, imported with the product's
importer), each against an independent computation from the exported usage events
and the exported ledger."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from datetime import UTC, date, datetime
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


def test_billing_records_equal_the_exported_ledger_and_usage(trace):
    """November 2023's billing record of every trace account, against sums of the
    exported ledger entries (by kind, before and within the month) and usage events;
    generating again adds nothing."""
    from pricing_core.plans.records import all_billing_records, generate_billing_records

    engine, _, usage, ledger, _ = trace
    december = datetime(2023, 12, 2, tzinfo=UTC)
    start, end = datetime(2023, 11, 1, tzinfo=UTC), datetime(2023, 12, 1, tzinfo=UTC)
    accounts = {e["account_id"] for e in ledger} | {u["account_id"] for u in usage}
    assert generate_billing_records(engine, now=december) == len(accounts)
    assert generate_billing_records(engine, now=december) == 0
    records = {r.account_id: r for r in all_billing_records(engine, ADMIN, period="2023-11")}
    assert set(records) == accounts
    assert len(all_billing_records(engine, ADMIN)) == len(accounts)

    def at(row: dict[str, str]) -> datetime:
        return datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))

    for account, record in records.items():
        entries = [e for e in ledger if e["account_id"] == account]
        within = [e for e in entries if start <= at(e) < end]

        def total(kinds: set[str], rows=within) -> Decimal:
            return sum((Decimal(e["amount_usd"]) for e in rows if e["kind"] in kinds), Decimal(0))

        every = {e["kind"] for e in entries}
        opening = total(every, [e for e in entries if at(e) < start])
        closing = total(every, [e for e in entries if at(e) < end])
        used = -total({"usage"})
        events = [u for u in usage if u["account_id"] == account and start <= at(u) < end]
        assert record.opening_balance == opening
        assert record.closing_balance == closing
        assert record.credits_bought == total({"purchase"})
        assert record.credits_granted == total({"grant", "bonus"})
        assert record.payg_usage == used and record.overage == 0 and record.plan_fee == 0
        assert record.total == used
        assert (
            record.opening_balance
            + record.credits_bought
            + record.credits_granted
            + (record.refunds + record.adjustments - record.total)
            == record.closing_balance
        )
        assert record.messages == len(events)
        assert record.input_tokens == sum(int(u["input_tokens"]) for u in events)
        assert record.output_tokens == sum(int(u["output_tokens"]) for u in events)
        assert record.provider_cost == sum(
            (Decimal(u["provider_cost_usd"]) for u in events), Decimal(0)
        )
        assert record.paid == (closing >= 0)
        assert record.plan_code == "payg"
    assert any(not r.paid for r in records.values())  # heavy users overdrew their $5


def test_a_statement_pdf_shows_the_period_the_totals_and_the_account(trace):
    """The PDF read back with pypdf: the account, the month and the figures."""
    import io as _io

    from pypdf import PdfReader

    from pricing_core.plans.records import all_billing_records, generate_billing_records
    from pricing_core.plans.statements import statement_pdf

    engine, _, usage, _, _ = trace
    generate_billing_records(engine, now=datetime(2023, 12, 2, tzinfo=UTC))
    record = max(all_billing_records(engine, ADMIN, period="2023-11"), key=lambda r: r.total)
    used = sum((Decimal(u["price_usd"]) for u in usage if u["account_id"] == record.account_id),
               Decimal(0))  # fmt: skip
    text = PdfReader(_io.BytesIO(statement_pdf(record))).pages[0].extract_text()
    assert "Statement for November 2023" in text
    assert f"Account: {record.account_name} ({record.account_id})" in text
    assert "Period: 2023-11" in text
    cents = used.quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    assert f"Total for the period ${cents:,}" in " ".join(text.split())
