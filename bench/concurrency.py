"""B1: per-event `record_usage` on PostgreSQL with 8 client processes vs `pgbench`'s
built-in tpcb-like script with 8 clients, same server, same duration.

pgbench runs against a scratch database (`bench_pgbench`, scale 10), never the
test database. If pgbench is missing, install Debian's `postgresql-contrib`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from multiprocessing import get_context

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bench.dataset import DEFAULT_PG, Dataset
from bench.generate import Workload
from bench.ingest import extra_events
from bench.results import Measurement
from pricing_core.adapters import storage
from pricing_core.domain.errors import PricingError
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.metering.record import record_usage

CLIENTS = 8
TARGET = 1.0  # issue 13: at least pgbench tpcb-like
SCRATCH = "bench_pgbench"


def _client(url: str, events: list[UsageEvent], now: datetime, start: float, stop: float) -> dict:
    """One client process: record `events` one by one from `start` until `stop` (wall
    clock, so every process runs the same window)."""
    engine = storage.make_engine(url, pool_size=1, max_overflow=0)
    counts = {"ok": 0, "refused": 0}
    time.sleep(max(0.0, start - time.time()))
    for event in events:
        if time.time() >= stop:
            break
        try:
            record_usage(engine, event, now=now)
            counts["ok"] += 1
        except PricingError:
            counts["refused"] += 1
    engine.dispose()
    return counts


def record_usage_tps(dataset: Dataset, workload: Workload, *, seconds: float) -> dict:
    """Transactions/s of record_usage from CLIENTS processes (each with its own
    connection, as pgbench's clients) for `seconds`."""
    events = extra_events(workload, max(2000, int(seconds * 4000)), seed_offset=2000)
    now = max(e.created_at for e in events) + timedelta(days=1)  # type: ignore[type-var]
    start = time.time() + 5  # after every process has started and imported
    stop = start + seconds
    slices = [events[k::CLIENTS] for k in range(CLIENTS)]
    # fork: each child opens its own engine and shares nothing it uses with the parent
    with ProcessPoolExecutor(CLIENTS, mp_context=get_context("fork")) as pool:
        futures = [pool.submit(_client, dataset.url, s, now, start, stop) for s in slices]
        results = [f.result() for f in futures]
    elapsed = min(seconds, time.time() - start)
    counts = {k: sum(r[k] for r in results) for k in ("ok", "refused")}
    ran_out = any(r["ok"] + r["refused"] == len(s) for r, s in zip(results, slices, strict=True))
    return {
        "tps": (counts["ok"] + counts["refused"]) / elapsed,
        "seconds": elapsed,
        "ran_out_of_events": ran_out,
        **counts,
    }


def pgbench_tps(pg_base: str, *, seconds: int, scale: int = 10) -> dict:
    """tpcb-like tps of pgbench with CLIENTS clients on a scratch database."""
    exe = shutil.which("pgbench")
    if exe is None:
        raise RuntimeError("pgbench not found: apt-get install postgresql-contrib")
    url = make_url(pg_base)
    admin = sa.create_engine(pg_base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{SCRATCH}"')
    admin.dispose()
    args = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
    args += ["-U", url.username or "postgres"]
    subprocess.run(
        [exe, *args, "-i", "-s", str(scale), "-q", SCRATCH], check=True, capture_output=True
    )
    clients = ["-c", str(CLIENTS), "-j", "2", "-T", str(seconds), "-b", "tpcb-like", "-n"]
    run = subprocess.run(
        [exe, *args, *clients, SCRATCH], check=True, capture_output=True, text=True
    )
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", run.stdout)
    if match is None:
        raise RuntimeError(f"could not read pgbench's tps from: {run.stdout[-500:]}")
    admin = sa.create_engine(pg_base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)')
    admin.dispose()
    return {
        "tps": float(match.group(1)),
        "scale": scale,
        "output": run.stdout.strip().splitlines()[-3:],
    }


def measure(
    dataset: Dataset,
    workload: Workload,
    *,
    seconds: int = 30,
    pg_base: str = DEFAULT_PG,
    pgbench_scale: int = 10,
) -> tuple[Measurement, dict]:
    ours = record_usage_tps(dataset, workload, seconds=seconds)
    theirs = pgbench_tps(pg_base, seconds=seconds, scale=pgbench_scale)
    r = ours["tps"] / theirs["tps"] if theirs["tps"] else None
    measurement = Measurement(
        what=f"record_usage on PostgreSQL, {CLIENTS} client processes, {seconds} s",
        value=round(ours["tps"], 1),
        unit="transactions/s",
        baseline=round(theirs["tps"], 1),
        baseline_unit=f"transactions/s (pgbench tpcb-like, {CLIENTS} clients)",
        ratio=round(r, 3) if r else None,
        target=f">= {TARGET}",
        met=bool(r and r >= TARGET),
    )
    return measurement, {"record_usage": ours, "pgbench": theirs}
