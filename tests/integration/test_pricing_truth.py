"""Pricing truth (issue 19): custom models, service tiers and cache writes, catalog
updates, reprices applied as corrections, and reconciliation against a provider's
bill. Every expected amount is computed here from the published rates, not by the
code under test."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from genai_prices import Usage, calc_price
from typer.testing import CliRunner

from pricing_core.adapters.audit import list_audit
from pricing_core.adapters.schema import ledger_entries, usage_events
from pricing_core.adapters.schema_prices import price_corrections
from pricing_core.admin import catalog
from pricing_core.admin.prices import propose_price
from pricing_core.admin.provider_bills import BillFormat, import_bill, parse_bill, reconcile
from pricing_core.admin.reprice import apply_reprice
from pricing_core.analytics.chats import chat_detail
from pricing_core.catalog.price_book import PriceBook, get_price_book
from pricing_core.catalog.provider_shapes import CASES, check_provider_shapes
from pricing_core.cli.main import app
from pricing_core.domain.errors import InvalidUsage, UnknownModel
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.jobs.scheduler import run_job
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.metering.batch import record_usage_batch
from pricing_core.metering.record import record_usage
from tests.admin_support import ADMIN, seed_accounts

NANO = Decimal("1e-9")
MARKUP = Decimal("1.25")  # the default markup setting
NOW = datetime.now(UTC).replace(microsecond=0)


def nano(value: Decimal) -> Decimal:
    return value.quantize(NANO, ROUND_HALF_EVEN)


def event(request_id: str, model: str, tokens: tuple[int, int], *, provider="openai",
          at=None, account="alice", **extra) -> UsageEvent:  # fmt: skip
    return UsageEvent(
        request_id, account, account, "chat_message", provider, model, tokens[0], tokens[1],
        created_at=at, **extra,
    )  # fmt: skip


def balance(engine, account: str) -> Decimal:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT balance FROM wallets WHERE account_id = :a"), {"a": account}
        ).scalar_one() / Decimal(10**9)


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


# ---------------------------------------------------------------- custom models


def test_a_custom_model_added_with_the_cli_prices_the_next_event(engine):
    seed_accounts(engine)
    with pytest.raises(UnknownModel):
        record_usage(engine, event("r0", "acme-1", (1000, 500), provider="acme"))
    done = cli(
        "prices", "add-model", "--provider", "acme", "--model", "acme-1", "--input", "2",
        "--output", "8", "--cache-read", "0.5", "--tier", "100000:4/16",
        "--reason", "acme-1 launched today",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    small = record_usage(engine, event("r1", "acme-1", (1000, 500), provider="acme",
                                       cached_tokens=200))  # fmt: skip
    expected = nano((800 * Decimal(2) + 200 * Decimal("0.5") + 500 * Decimal(8)) / 10**6 * MARKUP)
    assert small.price == expected
    assert small.price_version.startswith("custom:")
    # past the context tier, the whole request costs the tier's rates
    large = record_usage(engine, event("r2", "acme-1", (150_000, 1000), provider="acme"))
    assert large.price == nano((150_000 * Decimal(4) + 1000 * Decimal(16)) / 10**6 * MARKUP)
    assert "x $4.00/MTok" in large.explanation
    assert [a.action for a in list_audit(engine, ADMIN)][:1] == ["price.custom_model"]
    assert verify_ledger(engine).ok


def test_custom_model_rows_refuse_bad_rates_and_need_a_reason(engine):
    for kwargs, message in (
        ({"input_mtok": "-1", "output_mtok": "1", "reason": "x"}, "input"),
        ({"input_mtok": "1", "output_mtok": "NaN", "reason": "x"}, "output"),
        ({"input_mtok": "1", "output_mtok": "1", "reason": " "}, "reason"),
        ({"input_mtok": "1", "output_mtok": "1", "reason": "x", "tiers": [(0, "1", "1")]},
         "context tier"),
        ({"input_mtok": "1", "output_mtok": "1", "reason": "x", "service_tier": "turbo"},
         "service_tier"),
    ):  # fmt: skip
        with pytest.raises(InvalidUsage, match=message):
            catalog.add_custom_model(engine, ADMIN, "acme", "acme-1", **kwargs)
    assert catalog.custom_model_list(engine, ADMIN) == []


def test_the_unpriced_queue_drains_through_a_custom_model(engine, monkeypatch):
    monkeypatch.setenv("PRICING_UNPRICED_POLICY", "queue")
    from pricing_core.config import get_settings

    get_settings.cache_clear()
    seed_accounts(engine)
    before = balance(engine, "alice")
    tokens = [(1200, 300), (50, 4000), (7, 7)]
    for i, t in enumerate(tokens):
        queued = record_usage(engine, event(f"q{i}", "acme-2", t, provider="acme",
                                            chat_id="c1", at=NOW - timedelta(days=2)))  # fmt: skip
        assert queued.price == 0 and queued.basis == "unpriced"
    catalog.add_custom_model(
        engine, ADMIN, "acme", "acme-2", input_mtok="3", output_mtok="15",
        effective_from=NOW - timedelta(days=3), allow_retroactive=True, reason="launch",
    )  # fmt: skip
    done = cli("prices", "price-queue", "--provider", "acme")
    assert done.exit_code == 0, done.output
    assert "priced 3 queued event(s)" in done.output
    expected = [nano((i * Decimal(3) + o * Decimal(15)) / 10**6 * MARKUP) for i, o in tokens]
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                usage_events.c.request_id, usage_events.c.price, usage_events.c.status
            ).order_by(usage_events.c.request_id)
        ).all()
    assert [(r.price, r.status) for r in rows] == [(p, "priced") for p in expected]
    assert balance(engine, "alice") == before - sum(expected)
    assert verify_ledger(engine).ok  # ledger entries and rollups agree with the events
    again = cli("prices", "price-queue")
    assert "priced 0 queued event(s)" in again.output


# ---------------------------------------------------------------- tiers and cache writes


def test_service_tiers_and_cache_writes_are_priced_on_every_path(engine):
    seed_accounts(engine)
    at = datetime(2025, 6, 2, 12, tzinfo=UTC)
    events = [
        event("t1", "gpt-4o-mini", (10_000, 2000), at=at, service_tier="batch"),
        event("t2", "o3", (1000, 1000), at=datetime(2026, 11, 2, tzinfo=UTC),
              service_tier="flex"),
        event("t3", "claude-3-5-sonnet", (3100, 300), provider="anthropic", at=at,
              cached_tokens=2000, cache_write_tokens=1000),
        event("t4", "gpt-4o-mini", (10_000, 2000), at=at),
    ]  # fmt: skip
    published = [  # USD per MTok from the providers' price pages
        (10_000 * Decimal("0.075") + 2000 * Decimal("0.30")),
        (1000 * Decimal(1) + 1000 * Decimal(4)),
        (100 * Decimal(3) + 2000 * Decimal("0.30") + 1000 * Decimal("3.75") + 300 * Decimal(15)),
        (10_000 * Decimal("0.15") + 2000 * Decimal("0.60")),
    ]
    one_by_one = [record_usage(engine, e) for e in events]
    assert [r.provider_cost for r in one_by_one] == [nano(p / 10**6) for p in published]
    assert [r.price for r in one_by_one] == [nano(p / 10**6 * MARKUP) for p in published]
    assert one_by_one[0].explanation.startswith("batch tier, the providers' 50% batch discount")
    assert one_by_one[1].explanation.startswith("flex tier, the catalog's flex rates")
    assert "1,000 cache write tokens x $3.75/MTok" in one_by_one[2].explanation
    # the batch path, mixed plain and special rows, charges bob exactly the same
    frame = pd.DataFrame([{**e.__dict__} if hasattr(e, "__dict__") else {
        f: getattr(e, f) for f in e.__slots__} for e in events])  # fmt: skip
    frame["account_id"] = frame["user_id"] = "bob"
    result = record_usage_batch(engine, frame)
    assert result.recorded == 4 and not result.rejected
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(usage_events.c.account_id, usage_events.c.request_id,
                      usage_events.c.price, usage_events.c.service_tier,
                      usage_events.c.cache_write_tokens)
            .order_by(usage_events.c.account_id, usage_events.c.request_id)
        ).all()  # fmt: skip
    alice = [tuple(r)[1:] for r in stored if r.account_id == "alice"]
    bob = [tuple(r)[1:] for r in stored if r.account_id == "bob"]
    assert alice == bob
    assert [r[2] for r in alice] == ["batch", "flex", "standard", "standard"]
    assert verify_ledger(engine).ok


def test_a_replay_with_another_service_tier_is_a_duplicate(engine):
    seed_accounts(engine)
    record_usage(engine, event("d1", "gpt-4o-mini", (100, 10)))
    replay = record_usage(engine, event("d1", "gpt-4o-mini", (100, 10)))
    assert replay.replayed
    from pricing_core.domain.errors import DuplicateRequest

    with pytest.raises(DuplicateRequest):
        record_usage(engine, event("d1", "gpt-4o-mini", (100, 10), service_tier="batch"))


def test_the_provider_shape_table_matches_the_published_prices():
    results = check_provider_shapes(PriceBook(Decimal(1)))
    assert len(results) == len(CASES) >= 7
    failed = [(r.case.name, r.cost, r.case.expected, r.explanation) for r in results if not r.ok]
    assert not failed
    # the table reads each provider's own shape: the Anthropic case counts its cache
    # read and write inside the input, the Gemini one its thinking inside the output
    by_name = {r.case.name: r for r in results}
    anthropic = by_name["Anthropic: cache reads and writes beside the input"].counts
    assert (anthropic.input_tokens, anthropic.cached_tokens, anthropic.cache_write_tokens) == (
        3100, 2000, 1000,
    )  # fmt: skip
    assert by_name["Google: a 250k-token Gemini prompt with thinking"].counts.output_tokens == 3000


def test_a_wrong_expected_cost_fails_the_shape_check():
    case = CASES[0]
    wrong = type(case)(**{**{f: getattr(case, f) for f in case.__slots__},
                          "expected": case.expected + NANO})  # fmt: skip
    import pricing_core.catalog.provider_shapes as shapes

    original = shapes.CASES
    shapes.CASES = (wrong,)
    try:
        assert not check_provider_shapes(PriceBook(Decimal(1)))[0].ok
    finally:
        shapes.CASES = original


# ---------------------------------------------------------------- catalog updates


CATALOG = [
    {
        "id": "openai",
        "name": "OpenAI",
        "api_pattern": "https://api\\.openai\\.com",
        "models": [
            {"id": "gpt-4o-mini", "match": {"equals": "gpt-4o-mini"},
             "prices": {"input_mtok": "0.15", "output_mtok": "0.6"}},
            {"id": "gpt-9", "match": {"equals": "gpt-9"},
             "prices": {"input_mtok": "3", "output_mtok": "12"}},
        ],
    }
]  # fmt: skip


def test_a_newer_catalog_file_loads_with_a_diff_and_prices_new_models(engine, tmp_path):
    seed_accounts(engine)
    path = tmp_path / "data.json"
    path.write_text(json.dumps(CATALOG))
    with pytest.raises(UnknownModel):
        record_usage(engine, event("g0", "gpt-9", (1000, 1000)))
    shown = cli("prices", "update", "--from", str(path), "--yes")
    assert shown.exit_code == 0, shown.output
    assert "added    openai/gpt-9: - -> $3.00/MTok / $12.00/MTok" in shown.output.splitlines()[1]
    assert "removed" in shown.output  # a data file is the whole catalog
    charged = record_usage(engine, event("g1", "gpt-9", (1000, 1000)))
    assert charged.price == nano((1000 * Decimal(3) + 1000 * Decimal(12)) / 10**6 * MARKUP)
    assert "+data:" in charged.price_version
    status = catalog.catalog_status(engine, ADMIN)
    assert status.source == str(path) and status.models == 2


def test_a_bad_catalog_file_is_refused_and_nothing_changes(engine, tmp_path):
    for text, message in (("{", "not JSON"), ("[]", "non-empty"),
                          ('[{"id": "x"}]', "not a valid genai-prices")):  # fmt: skip
        with pytest.raises(InvalidUsage, match=message):
            catalog.load_catalog_file(engine, ADMIN, text, source="bad")
    assert catalog.catalog_status(engine, ADMIN).sha256 is None
    path = tmp_path / "bad.json"
    path.write_text("{")
    assert cli("prices", "update", "--from", str(path), "--yes").exit_code == 2


def test_the_catalog_update_job_loads_a_changed_source_once(engine, tmp_path, monkeypatch):
    path = tmp_path / "data.json"
    path.write_text(json.dumps(CATALOG))
    monkeypatch.setenv("PRICING_UPDATE_SOURCE", str(path))
    from pricing_core.config import get_settings

    get_settings.cache_clear()
    first = run_job(engine, "catalog-update", slot="a", now=NOW)
    assert first is not None and "loaded" in first
    second = run_job(engine, "catalog-update", slot="b", now=NOW)
    assert second is not None and "unchanged" in second
    assert get_price_book(engine).listed("openai", "gpt-9", NOW).rates.input_mtok == 3


# ---------------------------------------------------------------- reprices


def test_a_reprice_applied_twice_posts_its_corrections_once(engine):
    seed_accounts(engine)
    tokens = [(1200, 300), (4000, 10), (5, 900), (333, 333)]
    for i, t in enumerate(tokens):
        record_usage(engine, event(f"p{i}", "gpt-4o", t, at=NOW - timedelta(days=i + 1),
                                   chat_id="trip" if i % 2 else None))  # fmt: skip
    record_usage(engine, event("old", "gpt-4o", (1000, 1000), at=NOW - timedelta(days=40),
                               chat_id="trip"))  # fmt: skip
    before = balance(engine, "alice")
    change = propose_price("openai", "gpt-4o", markup="2")
    first = apply_reprice(engine, ADMIN, [change], reason="markup was set wrong", now=NOW)
    assert first.events == 4 and first.reprice_id is not None
    second = apply_reprice(engine, ADMIN, [change], reason="again", now=NOW)
    assert second.events == 0 and second.reprice_id is None

    # independent: each event at markup 2, rounded per event, against markup 1.25
    def at(markup: str, t, days) -> Decimal:  # noqa: E306
        moment = NOW - timedelta(days=days)
        usage = Usage(input_tokens=t[0], output_tokens=t[1])
        cost = calc_price(
            usage, "gpt-4o", provider_id="openai", genai_request_timestamp=moment
        ).total_price
        return nano(cost * Decimal(markup))

    new = [at("2", t, i + 1) for i, t in enumerate(tokens)]
    old = [at("1.25", t, i + 1) for i, t in enumerate(tokens)]
    assert first.amount == sum(new) - sum(old)
    assert balance(engine, "alice") == before - (sum(new) - sum(old))
    with engine.connect() as conn:
        corrected = conn.execute(
            sa.select(usage_events.c.request_id,
                      usage_events.c.price + sa.func.coalesce(sa.select(
                          sa.func.sum(price_corrections.c.amount)).where(
                          price_corrections.c.event_id == usage_events.c.id
                      ).scalar_subquery(), 0))
            .where(usage_events.c.request_id.like("p%")).order_by(usage_events.c.request_id)
        ).all()  # fmt: skip
        kinds = conn.execute(
            sa.select(ledger_entries.c.kind).where(ledger_entries.c.idempotency_key.like("reprice:%"))
        ).scalars().all()  # fmt: skip
    assert [Decimal(v) / 10**9 for _, v in corrected] == new
    assert sorted(set(kinds)) == ["adjustment"] and len(kinds) == 4
    assert verify_ledger(engine).ok
    # the charge's explanation says so; the event itself still says what was charged
    replay = record_usage(engine, event("p0", "gpt-4o", tokens[0], at=NOW - timedelta(days=1)))
    assert replay.price == old[0]
    assert f"repriced on {NOW.date().isoformat()}: +$" in replay.explanation
    trip = chat_detail(engine, Principal("alice", "alice"), "trip").requests  # oldest first
    assert trip["request_id"].tolist() == ["old", "p3", "p1"]
    assert ["repriced on" in x for x in trip["explanation"]] == [False, True, True]
    # back to the right price: the corrections are given back, once
    back = apply_reprice(engine, ADMIN, [propose_price("openai", "gpt-4o", markup="1.25")],
                         reason="undo", now=NOW)  # fmt: skip
    assert back.amount == -(sum(new) - sum(old)) and balance(engine, "alice") == before


# ---------------------------------------------------------------- reconciliation


def _openai_bill(costs: dict, model="gpt-4o-2024-08-06") -> str:
    return json.dumps({"object": "page", "has_more": False, "next_page": None, "data": [
        {"object": "bucket", "start_time": int(datetime.combine(day, datetime.min.time(),
                                                                 UTC).timestamp()),
         "end_time": 0, "results": [
            {"object": "organization.costs.result", "line_item": f"{model}, input",
             "amount": {"value": str(cost * Decimal("0.4")), "currency": "usd"}},
            {"object": "organization.costs.result", "line_item": f"{model}, output",
             "amount": {"value": str(cost * Decimal("0.6")), "currency": "usd"}}]}
        for day, cost in costs.items()]})  # fmt: skip


def test_reconciliation_flags_exactly_the_two_days_that_differ(engine, tmp_path):
    seed_accounts(engine)
    start = datetime(2025, 5, 10, 12, tzinfo=UTC)
    ours: dict = {}
    for d in range(5):
        day = start + timedelta(days=d)
        for k in range(3):
            t = (1000 * (d + 1) + k, 200 + 50 * k)
            record_usage(engine, event(f"b{d}{k}", "gpt-4o", t, at=day), allow_overdraft=True)
            cost = calc_price(
                Usage(input_tokens=t[0], output_tokens=t[1]),
                "gpt-4o",
                provider_id="openai",
                genai_request_timestamp=day,
            ).total_price
            ours[day.date()] = ours.get(day.date(), Decimal(0)) + nano(cost)  # fmt: skip
    days = sorted(ours)
    billed = dict(ours)
    billed[days[1]] = ours[days[1]] * Decimal("1.10")  # the provider billed 10% more
    billed[days[3]] = ours[days[3]] - Decimal("0.50")  # and 50 cents less
    path = tmp_path / "costs.json"
    path.write_text(_openai_bill(billed))
    done = cli("reconcile", "provider", str(path), "--format", "openai")
    assert done.exit_code == 1, done.output  # flagged days exit 1
    assert "2 of 5 day(s) over 2%" in done.output
    totals, rows = reconcile(engine, ADMIN, "openai", start=days[0], end=days[-1])
    assert [d.day for d in totals if d.flagged] == [days[1], days[3]]
    drift = {d.day: d.drift for d in totals}
    assert drift[days[1]] == ours[days[1]] - billed[days[1]]
    assert drift[days[3]] == Decimal("0.50")
    assert all(drift[d] == 0 for d in (days[0], days[2], days[4]))
    assert {r.model for r in rows} == {"gpt-4o"}  # the dated name is the same model


def test_anthropic_cost_reports_are_in_cents_and_csv_is_plain_usd():
    report = {"data": [{"starting_at": "2025-08-01T00:00:00Z", "ending_at": "2025-08-02T00:00:00Z",
                        "results": [{"currency": "USD", "amount": "123.45",
                                     "model": "claude-sonnet-4-20250514",
                                     "cost_type": "tokens", "token_type": "output_tokens"}]}],
              "has_more": False, "next_page": None}  # fmt: skip
    parsed = parse_bill(BillFormat.ANTHROPIC, json.dumps(report))
    assert parsed == {(datetime(2025, 8, 1).date(), "claude-sonnet-4-20250514"): Decimal("1.2345")}
    csv_text = "date,model,cost_usd\n2025-08-01,gpt-4o,1.5\n2025-08-01,gpt-4o,0.25\n"
    assert parse_bill(BillFormat.CSV, csv_text) == {
        (datetime(2025, 8, 1).date(), "gpt-4o"): Decimal("1.75")
    }
    for fmt, text, message in (
        (BillFormat.OPENAI, "[1]", "'data' list"),
        (BillFormat.OPENAI, '{"data": [{"start_time": "x", "results": []}]}', "not a date"),
        (BillFormat.ANTHROPIC, '{"data": [{"starting_at": "2025-08-01", "results": '
         '[{"amount": "1e999", "currency": "USD"}]}]}', "out of range"),
        (BillFormat.CSV, "day,cost\n", "date,model,cost_usd"),
    ):  # fmt: skip
        with pytest.raises(InvalidUsage, match=message):
            parse_bill(fmt, text)


def test_a_reimported_day_replaces_the_earlier_bill(engine):
    day = datetime(2025, 5, 10).date()
    import_bill(engine, ADMIN, "openai", BillFormat.OPENAI, _openai_bill({day: Decimal(5)}),
                source="first")  # fmt: skip
    import_bill(engine, ADMIN, "openai", BillFormat.OPENAI, _openai_bill({day: Decimal(2)}),
                source="second")  # fmt: skip
    totals, _ = reconcile(engine, ADMIN, "openai", start=day, end=day)
    assert [(t.billed, t.ours, t.flagged) for t in totals] == [(Decimal(2), Decimal(0), True)]


def test_the_sample_exports_from_the_providers_documents_parse_exactly():
    data = Path(__file__).resolve().parents[1] / "data"
    openai = parse_bill(BillFormat.OPENAI, (data / "openai_costs.json").read_text())
    nov1, nov2 = datetime(2024, 11, 1).date(), datetime(2024, 11, 2).date()
    assert openai == {
        (nov1, "gpt-4o-2024-08-06"): Decimal("0.30"),  # 0.06 + 0.24, no float drift
        (nov1, "gpt-4o-mini-2024-07-18"): Decimal("0.0015"),
        (nov2, "gpt-4o-2024-08-06"): Decimal("1.1"),
    }
    anthropic = parse_bill(BillFormat.ANTHROPIC, (data / "anthropic_cost_report.json").read_text())
    assert anthropic == {
        (datetime(2025, 8, 1).date(), "claude-sonnet-4-20250514"): Decimal("1.3345")
    }  # 123.45 + 10 cents


def test_a_tolerance_outside_0_to_100_percent_is_refused(engine):
    day = datetime(2025, 5, 10).date()
    for bad in ("150", "-1", "abc"):
        with pytest.raises(InvalidUsage, match="tolerance"):
            reconcile(engine, ADMIN, "openai", start=day, end=day, tolerance_pct=bad)
    assert reconcile(engine, ADMIN, "openai", start=day, end=day, tolerance_pct=2.5) == ([], [])
