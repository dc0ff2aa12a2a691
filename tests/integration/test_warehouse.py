"""The ClickHouse copy (chdb, embedded) behind the admin revenue figures: on the real
Azure trace in PostgreSQL the figures equal PostgreSQL's own and an independent sum of
the exported events; a sync killed mid-way and run again counts nothing twice; a charge
recorded after the last sync is already in the figures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pricing_core.adapters import storage
from pricing_core.adapters import warehouse as adapter
from pricing_core.adapters.schema import usage_events
from pricing_core.analytics import revenue as rev
from pricing_core.analytics import sales, warehouse, warehouse_sync
from pricing_core.analytics import spend_watch as watch
from pricing_core.analytics.prices import price_book
from pricing_core.config import get_settings
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.periods import Granularity
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.wallets import create_account
from pricing_core.metering.record import record_usage
from pricing_core.plans.subscriptions import SubscriptionSource
from pricing_core.plans.switching import switch_plan
from tests.admin_support import ADMIN, DAY0, seed_small
from tests.admin_trace import exported, import_real_trace
from tests.conftest import _admin_engine, _url_for
from tests.integration.test_api_serve import CLI

FIRST, LAST = date(2023, 11, 16), date(2023, 11, 17)
AFTER = datetime(2023, 11, 17, 9, tzinfo=UTC)
EVENTS = 28_185


@pytest.fixture(scope="module")
def trace(pg_template, tmp_path_factory):
    """One PostgreSQL database with the whole trace, and its exported usage events."""
    name = f"pc_wh_{uuid.uuid4().hex[:10]}"
    with _admin_engine().connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    url = _url_for(name)
    engine = storage.make_engine(url)
    assert import_real_trace(engine, tmp_path_factory.mktemp("trace")) == EVENTS
    usage, _ = exported(engine)
    yield engine, url, usage
    engine.dispose()
    with _admin_engine().connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["direct", "python"])
def reads(request, monkeypatch) -> str:
    """How a sync reads the events: ClickHouse's own table function on the database
    (embedded), or rows through Python (what a ClickHouse server is sent)."""
    if request.param == "python":
        monkeypatch.setattr(warehouse_sync, "_source", lambda engine: None)
    return request.param


def use_warehouse(monkeypatch, url: str | None) -> None:
    if url is None:
        monkeypatch.delenv("PRICING_ANALYTICS_URL", raising=False)
    else:
        monkeypatch.setenv("PRICING_ANALYTICS_URL", url)
    get_settings.cache_clear()


def figures(engine):
    """Every revenue figure the warehouse serves, over the trace's days."""
    return (
        rev.revenue_report(engine, ADMIN, start=FIRST, end=LAST).periods,
        rev.revenue_breakdown(engine, ADMIN, start=FIRST, end=LAST, by=rev.Dimension.MODEL),
        rev.revenue_breakdown(engine, ADMIN, start=FIRST, end=LAST, by=rev.Dimension.ACCOUNT),
        rev.revenue_series(
            engine, ADMIN, start=FIRST, end=LAST, granularity=Granularity.DAY,
            by=rev.Dimension.OPERATION,
        ),
        rev.top_accounts(engine, ADMIN, start=FIRST, end=LAST, limit=5),
        watch.high_cost_accounts(engine, ADMIN, as_of=FIRST, min_spend=Decimal(2), now=AFTER),
        watch.spend_anomalies(engine, ADMIN, as_of=FIRST, now=AFTER),
        rev.usage_span(engine, ADMIN),
        [(v.provider, v.model, v.requests_30d) for v in price_book(engine, ADMIN, now=AFTER)],
    )  # fmt: skip


@pytest.mark.postgres
def test_revenue_margin_and_top_accounts_on_clickhouse_equal_postgresql_and_the_export(
    trace, tmp_path, monkeypatch, reads
):
    engine, _, usage = trace
    on_postgres = figures(engine)
    url = f"chdb://{tmp_path / 'wh'}"
    use_warehouse(monkeypatch, url)
    result = warehouse_sync.sync(engine, warehouse.configured(), block=4_096)
    assert result.events == EVENTS and result.blocks == 7
    on_clickhouse = figures(engine)
    assert on_clickhouse == on_postgres

    # an independent sum of the exported events (strings, parsed here)
    price: dict[str, Decimal] = defaultdict(Decimal)
    cost: dict[str, Decimal] = defaultdict(Decimal)
    spend: dict[str, Decimal] = defaultdict(Decimal)
    day_price: dict[date, Decimal] = defaultdict(Decimal)
    for row in usage:
        key = f"{row['provider']}/{row['model']}"
        price[key] += Decimal(row["price_usd"])
        cost[key] += Decimal(row["provider_cost_usd"])
        spend[row["account_id"]] += Decimal(row["price_usd"])
        day_price[datetime.fromisoformat(row["created_at"]).astimezone(UTC).date()] += Decimal(
            row["price_usd"]
        )
    periods, by_model, _, _, top, high_cost, anomalies, span, book = on_clickhouse
    assert span == (FIRST, FIRST)
    assert {h.account_id: h.spend_today for h in high_cost} == {
        a: v for a, v in spend.items() if v >= 2
    } and high_cost
    assert {a.account_id for a in anomalies} == {a for a, v in spend.items() if v >= 1}
    assert {(p, m): n for p, m, n in book if n} == {
        tuple(k.split("/", 1)): sum(1 for r in usage if f"{r['provider']}/{r['model']}" == k)
        for k in price
    }
    assert {p.period: p.usage_revenue for p in periods if p.usage_revenue} == dict(day_price)
    assert sum(p.requests for p in periods) == EVENTS
    assert {r.key: (r.usage_revenue, r.margin) for r in by_model} == {
        k: (price[k], price[k] - cost[k]) for k in price
    }
    leaders = sorted(spend.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert [(t.account_id, t.spend) for t in top] == leaders

    # a second sync reads only the last block again and changes nothing
    again = warehouse_sync.sync(engine, warehouse.configured(), block=4_096)
    assert again.blocks == 1 and figures(engine) == on_postgres
    copied = warehouse.configured().frame(
        "SELECT count() AS n, uniqExact(request_id) AS u FROM pricing.usage_events FINAL"
    )
    assert int(copied["n"].iloc[0]) == int(copied["u"].iloc[0]) == EVENTS


@pytest.mark.postgres
def test_a_sync_killed_mid_way_and_run_again_counts_every_event_once(trace, tmp_path, monkeypatch):
    engine, url, _ = trace
    on_postgres = figures(engine)
    env = {**os.environ, "PRICING_DATABASE_URL": url}
    delay = 1.0
    for attempt in range(8):
        wh_url = f"chdb://{tmp_path / f'wh{attempt}'}"
        env["PRICING_ANALYTICS_URL"] = wh_url
        proc = subprocess.Popen(
            [str(CLI), "analytics", "sync", "--block", "100"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        wh = adapter.open_warehouse(wh_url)  # only now: one process per directory
        folded = warehouse.watermark(wh)
        if 0 < folded < EVENTS:
            break
        adapter.close_warehouse(wh_url)
        delay = delay * 1.5 if folded == 0 else delay / 2
    else:
        pytest.fail("the sync was never caught mid-way")
    use_warehouse(monkeypatch, wh_url)
    with pytest.raises(InvalidUsage, match="blocks of 100 event ids"):
        warehouse_sync.sync(engine, wh, block=4_096)
    assert warehouse_sync.sync(engine, wh).watermark >= EVENTS
    assert figures(engine) == on_postgres


@pytest.mark.parametrize("worker", [True, False])
def test_a_sqlite_file_synced_through_a_worker_process_serves_the_same_figures(
    sqlite_url, tmp_path, monkeypatch, worker
):
    engine = storage.make_engine(sqlite_url)
    assert import_real_trace(engine, tmp_path / "trace") == EVENTS
    on_sqlite = figures(engine)
    if not worker:  # every block read through Python's sqlite3, in this process
        monkeypatch.setattr(warehouse_sync, "WORKER_BLOCKS", 10**9)
    # a main module that must not run again in the worker (Streamlit's script runner
    # makes the page the __main__ module: a worker spawned by multiprocessing ran it)
    page = tmp_path / "page.py"
    page.write_text("raise SystemExit('the page ran in the worker')\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(page)
    monkeypatch.setitem(sys.modules, "__main__", main)
    staged: list[str | None] = []
    fold = warehouse_sync._fold

    def spy(*args):
        staged.append(args[-1])
        return fold(*args)

    monkeypatch.setattr(warehouse_sync, "_fold", spy)
    use_warehouse(monkeypatch, f"chdb://{tmp_path / 'wh'}")
    result = warehouse_sync.sync(engine, warehouse.configured(), block=4_096)
    assert (result.events, result.blocks) == (EVENTS, 7)
    assert len(staged) == 7 and all((s is not None) == worker for s in staged)
    assert figures(engine) == on_sqlite
    engine.dispose()


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_charge_after_the_last_sync_is_in_the_figures_before_the_next(
    db, request, tmp_path, monkeypatch, reads
):
    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    engine = storage.make_engine(url)
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    for account in ("acme", "zeta"):
        create_account(
            engine, account, name=account.title(), email=f"{account}@example.com", now=now
        )

    def charge(n: int, account: str) -> None:
        record_usage(
            engine,
            UsageEvent(
                f"req-{n}", account, account, "chat_message", "openai", "gpt-4o-mini",
                1_000 * n, 100, created_at=now,
            ),
            now=now,
        )  # fmt: skip

    charge(3, "acme")
    charge(1, "zeta")
    use_warehouse(monkeypatch, f"chdb://{tmp_path / 'wh'}")
    warehouse_sync.sync(engine, warehouse.configured())
    charge(5, "zeta")  # past the watermark: zeta, second in ClickHouse, is now first
    report = rev.revenue_report(engine, ADMIN, start=now.date(), end=now.date())
    top = rev.top_accounts(engine, ADMIN, start=now.date(), end=now.date(), limit=1)
    with engine.connect() as conn:
        stored = dict(
            conn.execute(
                select(usage_events.c.account_id, func.sum(usage_events.c.price)).group_by(
                    usage_events.c.account_id
                )
            ).all()
        )
    assert report.totals.requests == 3
    assert report.totals.usage_revenue == stored["acme"] + stored["zeta"]
    assert [(t.account_id, t.spend, t.requests) for t in top] == [("zeta", stored["zeta"], 2)]
    assert stored["zeta"] > stored["acme"] > 0
    status = warehouse.sync_status(engine)
    assert status is not None and (status.watermark, status.behind) == (2, 1)
    assert status.where == f"chdb://{tmp_path / 'wh'}"
    engine.dispose()


def test_a_warehouse_url_of_another_kind_is_refused_in_a_sentence(monkeypatch):
    use_warehouse(monkeypatch, "mysql://somewhere/db")
    with pytest.raises(Exception, match="must start with chdb:// or clickhouse://"):
        warehouse.configured()
    assert Path("somewhere").exists() is False


def test_a_charge_committed_while_a_sync_reads_is_counted_once(
    sqlite_url, tmp_path, monkeypatch, reads
):
    engine = storage.make_engine(sqlite_url)
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    create_account(engine, "acme", name="Acme", email="acme@example.com", now=now)

    def charge(n: int) -> None:
        event = UsageEvent(
            f"req-{n}", "acme", "acme", "chat_message", "openai", "gpt-4o-mini", 1_000, 100,
            created_at=now,
        )  # fmt: skip
        record_usage(engine, event, now=now)

    charge(1)
    fold = warehouse_sync._fold

    def fold_after_a_charge(*args):  # the charge commits after the sync took its top id
        if not charged:
            charged.append(True)
            charge(2)
        return fold(*args)

    charged: list[bool] = []
    monkeypatch.setattr(warehouse_sync, "_fold", fold_after_a_charge)
    use_warehouse(monkeypatch, f"chdb://{tmp_path / 'wh'}")
    assert warehouse_sync.sync(engine, warehouse.configured()).watermark == 1
    report = rev.revenue_report(engine, ADMIN, start=now.date(), end=now.date())
    assert report.totals.requests == 2  # once from ClickHouse, once from past the watermark
    warehouse_sync.sync(engine, warehouse.configured())
    assert rev.revenue_report(engine, ADMIN, start=now.date(), end=now.date()) == report
    engine.dispose()


def test_an_unreachable_clickhouse_server_is_a_one_line_error(monkeypatch):
    use_warehouse(monkeypatch, "clickhouse://default:secret@127.0.0.1:9/pricing")
    with pytest.raises(adapter.WarehouseError, match="Connection refused") as caught:
        warehouse.configured()
    assert "\n" not in str(caught.value) and "secret" not in str(caught.value)


def test_revenue_by_plan_on_clickhouse_equals_the_rollups_with_a_subscriber_past_the_watermark(
    engine, tmp_path, monkeypatch
):
    seed_small(engine)
    start = DAY0 + timedelta(days=2, hours=12)
    switch_plan(engine, "alice", "starter", source=SubscriptionSource.ADMIN, now=start)
    use_warehouse(monkeypatch, f"chdb://{tmp_path / 'wh'}")
    warehouse_sync.sync(engine, warehouse.configured())
    late = DAY0 + timedelta(days=3, hours=9)  # alice, on Starter, after the sync
    record_usage(
        engine,
        UsageEvent("late-1", "alice", "alice", "chat_message", "openai", "gpt-4o", 90_000, 9_000,
                   created_at=late),
        now=late,
    )  # fmt: skip

    def by_plan():
        return sales.revenue_by_plan(engine, ADMIN, start=date(2025, 3, 1), end=date(2025, 3, 5))

    on_clickhouse = by_plan()
    use_warehouse(monkeypatch, None)
    assert on_clickhouse == by_plan()
    assert {p.plan for p in on_clickhouse} == {"Starter", "Pay as you go"}


def test_the_analytics_sync_job_copies_new_events_and_says_so_when_unconfigured(
    sqlite_url, tmp_path, monkeypatch
):
    from pricing_core.jobs.scheduler import run_once

    engine = storage.make_engine(sqlite_url)
    seed_small(engine)
    with engine.connect() as conn:
        events = conn.execute(select(func.count()).select_from(usage_events)).scalar_one()
    assert run_once(engine, "analytics-sync").startswith("ok: analytics warehouse not configured")
    use_warehouse(monkeypatch, f"chdb://{tmp_path / 'wh'}")
    assert run_once(engine, "analytics-sync") == (
        f"ok: {events} events read; events up to id {events} are folded"
    )
    status = warehouse.sync_status(engine)
    assert status is not None and (status.watermark, status.behind) == (events, 0) and events
    engine.dispose()


def test_an_embedded_warehouse_open_in_another_process_is_a_clear_error(tmp_path, monkeypatch):
    directory = tmp_path / "wh"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"from chdb import session; import time; s = session.Session({str(directory)!r}); "
         "print('open', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        use_warehouse(monkeypatch, f"chdb://{directory}")
        with pytest.raises(adapter.WarehouseError, match="serves one process"):
            warehouse.configured()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]


def test_a_charge_committed_later_than_the_rewind_is_folded_by_a_full_sync(
    sqlite_url, tmp_path, monkeypatch
):
    from typer.testing import CliRunner

    from pricing_core.cli.main import app

    monkeypatch.setenv("PRICING_DATABASE_URL", sqlite_url)
    engine = storage.make_engine(sqlite_url)
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    create_account(engine, "acme", name="Acme", email="acme@example.com", now=now)
    for n in (1, 2, 3):
        event = UsageEvent(
            f"req-{n}", "acme", "acme", "chat_message", "openai", "gpt-4o-mini", 1_000, 100,
            created_at=now,
        )  # fmt: skip
        record_usage(engine, event, now=now)
    monkeypatch.setattr(warehouse_sync, "REWIND", 0)
    monkeypatch.setattr(warehouse_sync, "WORKER_BLOCKS", 10**9)  # blocks read here, below
    read = warehouse_sync._read_events
    # the first event's transaction had not committed when the first sync read
    monkeypatch.setattr(warehouse_sync, "_read_events", lambda e, lo, hi: read(e, max(lo, 2), hi))
    use_warehouse(monkeypatch, f"chdb://{tmp_path / 'wh'}")
    warehouse_sync.sync(engine, warehouse.configured(), block=1)
    monkeypatch.setattr(warehouse_sync, "_read_events", read)

    def requests() -> int:
        return rev.revenue_report(engine, ADMIN, start=now.date(), end=now.date()).totals.requests

    warehouse_sync.sync(engine, warehouse.configured())
    assert requests() == 2  # the late event is below the watermark and out of the rewind
    result = CliRunner().invoke(app, ["analytics", "sync", "--full"])
    assert result.exit_code == 0, result.output
    assert "3 events read in 4 blocks" in result.output and requests() == 3  # ids 0-3
    engine.dispose()


@pytest.mark.postgres
def test_a_database_clickhouse_cannot_read_is_a_warehouse_error_without_its_password(
    pg_url, tmp_path, monkeypatch
):
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    url = make_url(pg_url).set(database="pc_no_such_database", password="s3cret-pw")
    engine = create_engine(url)
    use_warehouse(monkeypatch, f"chdb://{tmp_path / 'wh'}")
    with pytest.raises(adapter.WarehouseError, match="pc_no_such_database") as caught:
        warehouse_sync._fold(engine, warehouse.configured(), 0, 0, 10, 1, None)
    assert "s3cret-pw" not in str(caught.value)
    engine.dispose()


def test_a_read_may_name_more_accounts_than_clickhouse_parses_by_default(tmp_path):
    wh = adapter.open_warehouse(f"chdb://{tmp_path / 'wh'}")
    ids = ", ".join(warehouse.literal(f"acct-{i:08d}") for i in range(30_000))  # ~500 KB
    answer = wh.frame(f"SELECT count() AS n FROM system.one WHERE 'acct-00029999' IN ({ids})")
    assert int(answer["n"].iloc[0]) == 1


def test_an_export_the_worker_cannot_do_is_a_warehouse_error_and_the_worker_stops(tmp_path):
    with adapter.SqliteExport(str(tmp_path / "missing.db")) as worker:
        worker.start("usage_events", "id", "id >= 0", str(tmp_path / "out.parquet"))
        with pytest.raises(adapter.WarehouseError) as caught:
            worker.wait()
    assert caught.value.args[0] and "Traceback" not in caught.value.args[0]
    assert not (tmp_path / "out.parquet").exists()
