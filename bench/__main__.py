"""`python -m bench`: run the benchmark suite, print a table, write
`bench/results/latest.json` (and `details.json`).

    python -m bench --events 10000000 --backend both

B1 per-event record_usage, 8 processes, vs pgbench tpcb-like (PostgreSQL)
B2 batched ingest events/s vs the per-event path (each back end)
B3 the analytics functions behind every page, p50/p95, vs the naive pandas way
B4 vectorized pricing of 1M events vs calc_price per row
B5 peak RSS of `streamlit run app.py` while every page is rendered
B6 AppTest render time of each page
B7 authorize + settle over HTTP (`pricing-core api serve`), 16 clients, vs pgbench tpcb-like
B8 the ClickHouse copy (chdb): a full sync in events/s, and the revenue calls it serves
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench import analytics, app, concurrency, dataset, http_api, ingest, pricing, warehouse
from bench.generate import Workload
from bench.results import RESULTS_DIR, Measurement, table, write

ALL = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--start", type=date.fromisoformat, default=None,
        help="first day of the data (default: DAYS days before today, so the data ends today)",
    )  # fmt: skip
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--only", default=",".join(ALL), help="e.g. B2,B4")
    parser.add_argument("--duration", type=int, default=30, help="seconds for B1 (each side)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per function for B3")
    parser.add_argument("--pages", default="", help="B3: only these pages' calls, e.g. explore")
    parser.add_argument("--per-event", type=int, default=2000, help="B2 baseline sample")
    parser.add_argument("--pgbench-scale", type=int, default=10, help="B1 pgbench -s")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", dataset.DEFAULT_PG))
    parser.add_argument("--fresh", action="store_true", help="reload the data even if loaded")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "latest.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Measurement]:
    args = parse(argv)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    start = args.start or (datetime.now(UTC).date() - timedelta(days=args.days))
    workload = Workload(
        events=args.events, accounts=args.accounts, days=args.days, seed=args.seed, start=start
    )
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    only = {k.strip().upper() for k in args.only.split(",")}
    results: dict[str, Measurement] = {}
    details: dict = {}
    details["workload"] = {
        "events": workload.events, "accounts": workload.accounts, "days": workload.days,
        "seed": workload.seed, "start": workload.start.isoformat(),
    }  # fmt: skip

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def step(key: str, run) -> None:  # type: ignore[no-untyped-def]
        log(f"{key} ...")
        began = time.perf_counter()
        measurement, detail = run()
        results[key] = measurement
        details[key] = detail
        verdict = "met" if measurement.met else "NOT met"
        log(
            f"{key}: {measurement.value} {measurement.unit} (ratio {measurement.ratio}) "
            f"{verdict} in {time.perf_counter() - began:.0f} s"
        )

    if "B4" in only:
        step("B4", lambda: pricing.run(workload))
    needs_data = only & {"B1", "B2", "B3", "B5", "B6", "B7", "B8"}
    loaded: dict[str, dataset.Dataset] = {}
    if needs_data:
        for backend in backends if only - {"B1", "B7"} else ["postgres"]:
            log(f"loading {workload.events:,} events into {backend} ...")
            loaded[backend] = dataset.load(
                backend, workload, pg_base=args.pg_url, reuse=not args.fresh, progress=log
            )
    urls = {b: d.url for b, d in loaded.items() if b in backends}
    if "B2" in only:
        step(
            "B2",
            lambda: ingest.measure(
                [loaded[b] for b in backends], workload, per_event=args.per_event
            ),
        )
    if "B3" in only:
        pages = {p for p in args.pages.split(",") if p}
        step("B3", lambda: analytics.measure(urls, runs=args.runs, pages=pages))
    if "B6" in only:
        step("B6", lambda: app.measure_render(urls))
    if "B8" in only:
        step("B8", lambda: warehouse.measure(urls, runs=args.runs))
    if "B5" in only:
        backend = "postgres" if "postgres" in urls else backends[0]
        from pricing_core.adapters import storage

        engine = storage.make_engine(urls[backend])
        account = analytics.context(engine).member.account_id
        engine.dispose()
        step("B5", lambda: app.measure_rss(backend, urls[backend], account))
    if "B1" in only:
        if "postgres" not in loaded:
            log("B1 needs PostgreSQL: skipped")
        else:
            step(
                "B1",
                lambda: concurrency.measure(
                    loaded["postgres"],
                    workload,
                    seconds=args.duration,
                    pg_base=args.pg_url,
                    pgbench_scale=args.pgbench_scale,
                ),
            )

    if "B7" in only:
        if "postgres" not in loaded:
            log("B7 needs PostgreSQL: skipped")
        else:
            step(
                "B7",
                lambda: http_api.measure(
                    loaded["postgres"],
                    seconds=args.duration,
                    pg_base=args.pg_url,
                    pgbench_scale=args.pgbench_scale,
                ),
            )

    write(
        args.out,
        events=workload.events,
        backend=args.backend,
        started_at=started_at,
        measurements=results,
        details=details,
    )
    print()
    print(table(results))
    print(f"\nwritten: {args.out}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
