"""B7: `POST /api/v1/authorize` then settle, over HTTP against `pricing-core api serve`
(uvicorn worker processes), from CLIENTS concurrent clients, vs pgbench's tpcb-like
script in the same run.

One authorize + settle pair is one transaction of ours. Each client is an end user
of the host app with an account and an API key of its own (`bench-b7-<n>`, funded so
it never runs dry) on the loaded dataset: pairs of one account serialize on its
wallet, as pgbench's transactions of one branch do.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from multiprocessing import get_context
from pathlib import Path

import httpx

from bench.app import free_port, wait_port
from bench.concurrency import pgbench_tps
from bench.dataset import DEFAULT_PG, Dataset
from bench.results import Measurement
from pricing_core.access.apikeys import create_api_key
from pricing_core.adapters import storage
from pricing_core.domain.principal import Principal
from pricing_core.ledger.wallets import create_account

CLIENTS = 16
PROCESSES = 4  # the clients run as 4 processes of 4 threads: one GIL would be the limit
WORKERS = 2  # one per core here
TARGET = 0.25
ACCOUNT = "bench-b7"
CLI = Path(sys.executable).with_name("pricing-core")


def authorize_settle_tps(url: str, *, seconds: float, workers: int = WORKERS) -> dict:
    """Pairs/s of authorize + settle from CLIENTS clients against `api serve`."""
    engine = storage.make_engine(url)
    keys = []
    for n in range(CLIENTS):
        account, user = f"{ACCOUNT}-{n}", f"{ACCOUNT}-{n}-user"
        create_account(engine, account, name="B7", user_id=user, opening_credit=Decimal(10**6))
        secret = create_api_key(engine, Principal(user, account), name="bench B7").secret
        keys.append((user, secret))
    engine.dispose()
    port = free_port()
    with tempfile.TemporaryFile() as log:  # the server's stderr, shown if it fails
        server = subprocess.Popen(
            [str(CLI), "api", "serve", "--port", str(port), "--workers", str(workers)],
            env={**os.environ, "PRICING_DATABASE_URL": url},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        base = f"http://127.0.0.1:{port}/api/v1"
        try:
            wait_port(port, server, log)
            run = f"{time.time_ns()}"
            begin = time.time() + 3  # after every process has started and imported
            stop = begin + seconds
            slices = [keys[k::PROCESSES] for k in range(PROCESSES)]
            with ProcessPoolExecutor(PROCESSES, mp_context=get_context("fork")) as pool:
                futures = [
                    pool.submit(_clients, base, mine, f"{run}-{k}", begin, stop)
                    for k, mine in enumerate(slices)
                ]
                results = [f.result() for f in futures]
            elapsed = time.time() - begin
        finally:
            server.terminate()
            server.wait(timeout=30)
    refusals = [r["first_refusal"] for r in results if r["first_refusal"]]
    ok = sum(r["ok"] for r in results)
    return {
        "tps": ok / elapsed,
        "seconds": elapsed,
        "workers": workers,
        "client_processes": PROCESSES,
        "ok": ok,
        "refused": sum(r["refused"] for r in results),
        "first_refusal": refusals[0] if refusals else None,
    }


def _clients(base: str, keys: list[tuple[str, str]], run: str, begin: float, stop: float) -> dict:
    """One client process: a thread per (user, API key), each authorizing and settling
    one call after the other from `begin` until `stop` (wall clock)."""
    counts = {"ok": 0, "refused": 0}
    refusal: list[str] = []
    lock = threading.Lock()

    def client(n: int, user: str, key: str) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as api:
            k = 0
            while time.time() < stop:
                k += 1
                hold = api.post(
                    "/authorize",
                    json={
                        "request_id": f"b7-{run}-{n}-{k}",
                        "user_id": user,
                        "model": "gpt-4o-mini",
                        "estimated_input_tokens": 900,
                        "max_output_tokens": 300,
                    },
                )
                answer = hold
                if hold.status_code == 200:
                    answer = api.post(
                        f"/holds/{hold.json()['id']}/settle",
                        json={"input_tokens": 880, "output_tokens": 240},
                    )
                ok = answer.status_code == 200
                with lock:
                    counts["ok" if ok else "refused"] += 1
                    if not ok and not refusal:  # shown in the details
                        refusal.append(f"{answer.status_code} {answer.text[:300]}")

    time.sleep(max(0.0, begin - time.time()))
    threads = [
        threading.Thread(target=client, args=(n, user, key)) for n, (user, key) in enumerate(keys)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {**counts, "first_refusal": refusal[0] if refusal else None}


def measure(
    dataset: Dataset, *, seconds: int = 30, pg_base: str = DEFAULT_PG, pgbench_scale: int = 10
) -> tuple[Measurement, dict]:
    ours = authorize_settle_tps(dataset.url, seconds=seconds)
    theirs = pgbench_tps(pg_base, seconds=seconds, scale=pgbench_scale)
    r = ours["tps"] / theirs["tps"] if theirs["tps"] else None
    measurement = Measurement(
        what=(
            f"authorize + settle over HTTP (api serve, {WORKERS} workers), "
            f"{CLIENTS} clients, {seconds} s"
        ),
        value=round(ours["tps"], 1),
        unit="pairs/s",
        baseline=round(theirs["tps"], 1),
        baseline_unit="transactions/s (pgbench tpcb-like, 8 clients)",
        ratio=round(r, 3) if r else None,
        target=f">= {TARGET}",
        met=bool(r and r >= TARGET),
    )
    return measurement, {"http": ours, "pgbench": theirs}
