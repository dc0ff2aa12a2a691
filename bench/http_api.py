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
from decimal import Decimal
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
WORKERS = 2  # one per core here
TARGET = 0.25
ACCOUNT = "bench-b7"
CLI = Path(sys.executable).with_name("pricing-core")


def authorize_settle_tps(url: str, *, seconds: float, workers: int = WORKERS) -> dict:
    """Pairs/s of authorize + settle from CLIENTS threads against `api serve`."""
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
        base = f"http://127.0.0.1:{port}"
        try:
            wait_port(port, server, log)
            counts = {"ok": 0, "refused": 0}
            refusal: list[str] = []
            lock = threading.Lock()
            run = f"{time.time_ns()}"
            stop = time.perf_counter() + seconds

            def client(n: int) -> None:
                user, key = keys[n]
                headers = {"Authorization": f"Bearer {key}"}
                with httpx.Client(base_url=f"{base}/api/v1", headers=headers, timeout=60) as api:
                    k = 0
                    while time.perf_counter() < stop:
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

            threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {
        "tps": counts["ok"] / elapsed,
        "seconds": elapsed,
        "workers": workers,
        "first_refusal": refusal[0] if refusal else None,
        **counts,
    }


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
