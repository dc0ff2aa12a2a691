"""Benchmark: the data functions behind each end-user page, on the real trace in SQLite.

    PYTHONPATH=. python bench/page_data.py [--db /tmp/trace.db] [--repeat 30]

Imports both Azure trace files (conversation as `chat_message`, code as
`code_completion`, default mapping: seed 0, 100 Zipf-skewed accounts, shifted to end
now, overdraft allowed) into a SQLite file (reused if `--db` already holds it), then
times every function each page calls, for the busiest account, the median account
and the lightest one: p50 and p95 over `--repeat` calls, in milliseconds, against the
300 ms target. Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from pricing_core import analytics
from pricing_core.adapters import storage
from pricing_core.domain.principal import Principal
from pricing_core.limits import budgets
from pricing_core.metering.importers import DEFAULT_MODEL_MIX, import_azure_trace
from pricing_core.metering.trace import TraceMapping, find_trace_dir, parse_model_mix

FILES = (
    ("AzureLLMInferenceTrace_conv.csv", "chat_message"),
    ("AzureLLMInferenceTrace_code.csv", "code_completion"),
)
TARGET_MS = 300.0


def load(engine: sa.Engine, data: Path) -> None:
    with engine.connect() as conn:
        present = conn.execute(sa.text("SELECT COUNT(*) FROM usage_events")).scalar_one()
    if present:
        print(f"reusing the database: {present:,} usage events")
        return
    models = parse_model_mix(DEFAULT_MODEL_MIX)
    now = datetime.now(UTC)
    for name, operation in FILES:
        started = time.perf_counter()
        summary = import_azure_trace(
            engine,
            data / name,
            TraceMapping(operation=operation, models=models),
            allow_overdraft=True,
            shift_to_now=True,
            now=now,
        )
        print(
            f"imported {name}: {summary.imported:,} events in {time.perf_counter() - started:.1f} s"
        )


def accounts(engine: sa.Engine) -> list[tuple[str, int]]:
    """(account, events) for the busiest, the median and the lightest account."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT account_id, COUNT(*) FROM usage_events GROUP BY account_id "
                "ORDER BY COUNT(*) DESC, account_id"
            )
        ).all()
    return [tuple(rows[0]), tuple(rows[len(rows) // 2]), tuple(rows[-1])]  # type: ignore[list-item]


def busiest_chat(engine: sa.Engine, account: str) -> str:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT chat_id FROM chats WHERE account_id = :a ORDER BY requests DESC LIMIT 1"
            ),
            {"a": account},
        ).scalar_one()


def timed(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    call()  # warm-up (imports, price book, SQLite page cache)
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return statistics.median(samples), p95


def page_calls(engine: sa.Engine, account: str) -> dict[str, Callable[[], object]]:
    viewer = Principal(account, account)
    span = analytics.usage_range(engine, viewer)
    assert span is not None
    start, end = span
    report = analytics.usage_report(engine, viewer, start=start, end=end)
    chat = busiest_chat(engine, account)
    return {
        "overview: overview": lambda: analytics.overview(engine, viewer),
        "overview: budget_status": lambda: budgets.budget_status(engine, viewer),
        "every page: banner (record_budget_alerts)": lambda: budgets.record_budget_alerts(
            engine, viewer
        ),
        "chats: list_chats": lambda: analytics.list_chats(engine, viewer),
        "chats: list_chats(search)": lambda: analytics.list_chats(engine, viewer, search="3"),
        "chats: chat_detail (busiest chat)": lambda: analytics.chat_detail(engine, viewer, chat),
        "usage: usage_range": lambda: analytics.usage_range(engine, viewer),
        "usage: usage_report": lambda: analytics.usage_report(engine, viewer, start=start, end=end),
        "usage: series/share/models (pure)": lambda: (
            analytics.usage_series(report, by="model"),
            analytics.usage_series(report, by="operation", granularity="week"),
            analytics.usage_share(report, by="model"),
            analytics.usage_share(report, by="operation"),
            analytics.model_table(report),
            analytics.report_totals(report),
        ),
        "usage: usage_events_csv (download)": lambda: analytics.usage_events_csv(
            engine, viewer, start=start, end=end
        ),
        "transactions: ledger_span": lambda: analytics.ledger_span(engine, viewer),
        "transactions: ledger_view": lambda: analytics.ledger_view(engine, viewer),
        "transactions: usage_entries_of_day (latest)": lambda: analytics.usage_entries_of_day(
            engine, viewer, day=end
        ),
        "transactions: ledger_csv (download)": lambda: analytics.ledger_csv(engine, viewer),
        "budget: budget_status": lambda: budgets.budget_status(engine, viewer),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="SQLite file to import into or reuse")
    parser.add_argument("--data", type=Path, default=find_trace_dir())
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "trace.db"
        engine = storage.make_engine(f"sqlite:///{path}")
        storage.upgrade(engine)
        load(engine, args.data)
        worst = 0.0
        for account, events in accounts(engine):
            print(f"\naccount {account} ({events:,} usage events)")
            print(f"{'function':46} {'p50 ms':>8} {'p95 ms':>8}")
            for name, call in page_calls(engine, account).items():
                p50, p95 = timed(call, args.repeat)
                worst = max(worst, p95)
                flag = "" if p95 < TARGET_MS else "  OVER TARGET"
                print(f"{name:46} {p50:8.1f} {p95:8.1f}{flag}")
        print(f"\nworst p95: {worst:.1f} ms (target < {TARGET_MS:.0f} ms)")
        engine.dispose()


if __name__ == "__main__":
    main()
