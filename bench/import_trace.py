"""Benchmark: import both real Azure trace files on SQLite and on PostgreSQL.

    PYTHONPATH=. python bench/import_trace.py [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Each back end gets a fresh, migrated database (a temporary SQLite file; a scratch
PostgreSQL database `pc_bench_import_<random>` created next to the given URL's and
dropped afterwards, never the test database). Imports the conversation file as
`chat_message` and the code file as `code_completion` with `--allow-overdraft`
semantics and the default mapping (seed 0, 100 users), then prints wall time and
events/s per file and in total, plus a re-import (which must add nothing).
Not a test: the numbers depend on the machine and on what else runs on it (the load
average is printed next to each figure; client CPU is this process's CPU time).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pricing_core.adapters import storage
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.metering.importers import DEFAULT_MODEL_MIX, import_azure_trace
from pricing_core.metering.trace import TraceMapping, find_trace_dir, parse_model_mix

FILES = (
    ("AzureLLMInferenceTrace_conv.csv", "chat_message"),
    ("AzureLLMInferenceTrace_code.csv", "code_completion"),
)
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def run(label: str, url: str, data: Path) -> None:
    engine = storage.make_engine(url)
    storage.upgrade(engine)
    models = parse_model_mix(DEFAULT_MODEL_MIX)
    total_events, total_time = 0, 0.0
    for name, operation in FILES:
        start, cpu = time.perf_counter(), time.process_time()
        summary = import_azure_trace(
            engine,
            data / name,
            TraceMapping(operation=operation, models=models),
            allow_overdraft=True,
            now=NOW,
        )
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        total_events += summary.imported
        total_time += elapsed
        print(
            f"{label:10} {name:34} {summary.imported:6} events {elapsed:7.2f} s "
            f"{summary.imported / elapsed:8.0f} events/s (client CPU {cpu:.2f} s, "
            f"load average {os.getloadavg()[0]:.1f})"
        )
    print(
        f"{label:10} {'both files':34} {total_events:6} events {total_time:7.2f} s "
        f"{total_events / total_time:8.0f} events/s"
    )
    start = time.perf_counter()
    again = sum(
        import_azure_trace(
            engine,
            data / name,
            TraceMapping(operation=op, models=models),
            allow_overdraft=True,
            now=NOW,
        ).imported
        for name, op in FILES
    )
    print(f"{label:10} re-import adds {again} events in {time.perf_counter() - start:.2f} s")
    start = time.perf_counter()
    report = verify_ledger(engine)
    print(
        f"{label:10} verify_ledger ok={report.ok} ({report.events} events) "
        f"in {time.perf_counter() - start:.2f} s"
    )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--data", type=Path, default=find_trace_dir())
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", f"sqlite:///{tmp}/bench.db", args.data)
    if args.skip_pg:
        return
    name = f"pc_bench_import_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(args.pg_url).set(database=name).render_as_string(hide_password=False)
        run("postgresql", url, args.data)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()
