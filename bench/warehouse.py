"""B8: the ClickHouse copy (embedded chdb). A full `analytics sync` of the loaded
events, in events/s, against reading the same events into pandas (the part of the sync
no warehouse can speed up); then every revenue call the warehouse serves, p50/p95, each
checked equal to the answer from the system of record's rollups."""

from __future__ import annotations

import os
import shutil
import statistics
import time
import uuid

from bench import dataset
from bench.analytics import QUERIES, _p95, _timings, context
from bench.results import Measurement
from pricing_core.adapters import storage
from pricing_core.adapters.warehouse import close_warehouse, open_warehouse
from pricing_core.analytics import warehouse_sync
from pricing_core.config import get_settings

TARGET = 200_000  # events/s
# the calls `analytics.warehouse` answers
SERVED = ("revenue_report", "revenue_breakdown", "revenue_series", "top_accounts", "usage_span",
          "high_cost_accounts", "spend_anomalies", "price_book", "revenue_by_plan")  # fmt: skip


def _use(url: str | None) -> None:
    if url is None:
        os.environ.pop("PRICING_ANALYTICS_URL", None)
    else:
        os.environ["PRICING_ANALYTICS_URL"] = url
    get_settings.cache_clear()


def run_backend(url: str, *, runs: int) -> dict:
    engine = storage.make_engine(url)
    directory = dataset.DATA_DIR / f"warehouse-{uuid.uuid4().hex[:8]}"
    wh_url = f"chdb://{directory}"
    try:
        with engine.connect() as conn:
            top = conn.exec_driver_sql("SELECT MAX(id) FROM usage_events").scalar() or 0
        began = time.perf_counter()
        read = sum(
            len(warehouse_sync._read_events(engine, lo, lo + warehouse_sync.BLOCK))
            for lo in range(0, top + 1, warehouse_sync.BLOCK)
        )
        read_s = time.perf_counter() - began
        began = time.perf_counter()
        result = warehouse_sync.sync(engine, open_warehouse(wh_url))
        sync_s = time.perf_counter() - began
        ctx = context(engine)
        calls = []
        for _page, label, _scope, call in QUERIES:
            if not any(f".{name}" in label for name in SERVED):
                continue
            _use(None)
            expected = call(ctx)
            on_rollups = _timings(lambda call=call: call(ctx), runs)
            _use(wh_url)
            equal = call(ctx) == expected
            on_clickhouse = _timings(lambda call=call: call(ctx), runs)
            calls.append(
                {
                    "function": label,
                    "equal": equal,
                    "p50_ms": round(statistics.median(on_clickhouse), 2),
                    "p95_ms": round(_p95(on_clickhouse), 2),
                    "rollups_p50_ms": round(statistics.median(on_rollups), 2),
                    "rollups_p95_ms": round(_p95(on_rollups), 2),
                }
            )
    finally:
        _use(None)
        close_warehouse(wh_url)
        engine.dispose()
        shutil.rmtree(directory, ignore_errors=True)
    return {
        "events": result.events,
        "sync_seconds": round(sync_s, 2),
        "events_per_second": round(result.events / sync_s),
        "read_events_per_second": round(read / read_s),
        "calls": calls,
    }


def measure(urls: dict[str, str], *, runs: int = 20) -> tuple[Measurement, dict]:
    per_backend = {b: run_backend(url, runs=runs) for b, url in urls.items()}
    slowest_b, slowest = min(per_backend.items(), key=lambda kv: kv[1]["events_per_second"])
    unequal = [
        f"{b}:{c['function']}" for b, r in per_backend.items() for c in r["calls"] if not c["equal"]
    ]
    measurement = Measurement(
        what=f"full sync into chdb ({', '.join(urls)}); value: the slower back end's events/s "
        f"({slowest_b}); baseline: reading the same events into pandas; revenue calls on "
        f"ClickHouse unequal to the rollups: {', '.join(unequal) or 'none'}",
        value=slowest["events_per_second"],
        unit="events/s",
        baseline=slowest["read_events_per_second"],
        baseline_unit="events/s read into pandas",
        ratio=round(slowest["events_per_second"] / slowest["read_events_per_second"], 3),
        target=f">= {TARGET:,} events/s; every call equal",
        met=slowest["events_per_second"] >= TARGET and not unequal,
    )
    return measurement, per_backend
