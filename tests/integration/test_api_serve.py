"""`pricing-core api serve --workers N` serves the same routes as the dashboard's
server, from N uvicorn worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from pricing_core.access.apikeys import create_api_key
from pricing_core.domain.principal import Principal
from pricing_core.ledger.wallets import create_account, get_wallet
from tests.integration.test_api import price
from tests.live_api import free_port, stop, wait_until_up

CLI = Path(sys.executable).with_name("pricing-core")


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.add(int(entry.name))
    return found


@pytest.mark.postgres
def test_two_workers_serve_authorize_and_settle(pg_engine, pg_url):
    create_account(pg_engine, "acct", name="Shop", user_id="u", opening_credit=Decimal("5"))
    key = create_api_key(pg_engine, Principal("u", "acct")).secret
    port = free_port()
    env = {**os.environ, "PRICING_DATABASE_URL": pg_url}
    server = subprocess.Popen(
        [str(CLI), "api", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(server, f"{base}/healthz")
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=f"{base}/api/v1", headers=headers, timeout=30) as api:
            for n in range(6):
                hold = api.post(
                    "/authorize",
                    json={
                        "request_id": f"r{n}",
                        "user_id": "u",
                        "model": "gpt-4o-mini",
                        "estimated_input_tokens": 100,
                        "max_output_tokens": 100,
                    },
                )
                assert hold.status_code == 200, hold.text
                settled = api.post(
                    f"/holds/{hold.json()['id']}/settle",
                    json={"input_tokens": 90, "output_tokens": 40},
                )
                assert settled.status_code == 200, settled.text
            assert api.get("/openapi.json").status_code == 200
        assert len(_children(server.pid)) >= 2  # the worker processes
    finally:
        stop(server)
    wallet = get_wallet(pg_engine, "acct")
    assert wallet.held == 0
    assert wallet.balance == Decimal("5") - 6 * price(90, 40)
