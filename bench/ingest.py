"""B2: batched ingest events/s (measured while loading the dataset) vs the per-event
path (`record_usage`, one transaction per event) on the same database."""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import replace
from datetime import timedelta

import pandas as pd

from bench.dataset import Dataset, batches
from bench.generate import Workload
from bench.results import Measurement
from pricing_core.adapters import storage
from pricing_core.domain.errors import PricingError
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.metering.record import record_usage

TARGET = 50_000.0


def events_of(frame: pd.DataFrame) -> list[UsageEvent]:
    """A generated frame as UsageEvent objects (the per-event API's input)."""
    out = []
    for r in frame.itertuples(index=False):
        out.append(
            UsageEvent(
                request_id=str(r.request_id),
                account_id=str(r.account_id),
                user_id=str(r.user_id),
                operation=str(r.operation),
                provider=str(r.provider),
                model=str(r.model),
                input_tokens=int(r.input_tokens),
                output_tokens=int(r.output_tokens),
                cached_tokens=int(r.cached_tokens),
                chat_id=None if pd.isna(r.chat_id) else str(r.chat_id),
                created_at=r.created_at.to_pydatetime(),
            )
        )
    return out


def extra_events(workload: Workload, count: int, *, seed_offset: int = 1000) -> list[UsageEvent]:
    """`count` new events for the same accounts, for timing. Their request ids are
    new on every call, so a reused data set times first charges, not replays."""
    more = replace(workload, events=count, seed=workload.seed + seed_offset)
    run = uuid.uuid4().hex[:8]
    events = events_of(next(batches(more, count)))
    return [replace(e, request_id=f"{e.request_id}-{run}") for e in events]


def per_event_rate(
    dataset: Dataset, workload: Workload, *, count: int = 2000, budget_s: float = 30.0
) -> float:
    """Events/s of `record_usage` (one transaction each), single thread."""
    engine = storage.make_engine(dataset.url)
    events = extra_events(workload, count)
    now = events[-1].created_at + timedelta(days=1)  # type: ignore[operator]
    done = 0
    started = time.perf_counter()
    for event in events:
        with contextlib.suppress(PricingError):  # refusals count: they did the work too
            record_usage(engine, event, now=now)
        done += 1
        if time.perf_counter() - started > budget_s:
            break
    elapsed = time.perf_counter() - started
    engine.dispose()
    return done / elapsed


def measure(
    datasets: list[Dataset], workload: Workload, *, per_event: int = 2000
) -> tuple[Measurement, dict]:
    rows = {}
    for d in datasets:
        rows[d.backend] = {
            "batch_events_per_s": round(d.events_per_second),
            "per_event_events_per_s": round(per_event_rate(d, workload, count=per_event), 1),
            "events": d.events,
            "load_seconds": round(d.load_seconds, 1),
            "rejected": d.rejected,
            "bytes_per_event": {
                table: round(size / d.events) for table, size in (d.footprint or {}).items()
            }
            if d.events
            else {},
        }
    worst = min(rows, key=lambda b: rows[b]["batch_events_per_s"])
    value = rows[worst]["batch_events_per_s"]
    base = rows[worst]["per_event_events_per_s"]
    parts = ", ".join(f"{b} {r['batch_events_per_s']:,}/s" for b, r in rows.items())
    measurement = Measurement(
        what=f"batched ingest, events/s ({parts}; value: the slower, {worst})",
        value=value,
        unit="events/s",
        baseline=base,
        baseline_unit="events/s (record_usage per event)",
        ratio=round(value / base, 1) if base else None,
        target=">= 50,000 events/s on each back end",
        met=all(r["batch_events_per_s"] >= TARGET for r in rows.values()),
    )
    return measurement, rows
