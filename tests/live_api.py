"""A live `/api/v1` for contract tests and the schemathesis run: a fresh PostgreSQL
database cloned from a template, seeded with two accounts, usage, an open hold and an
API key, served by `streamlit run app.py` in a child process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import sqlalchemy as sa

from pricing_core.access.apikeys import create_api_key
from pricing_core.adapters import storage
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.wallets import create_account, ensure_user
from pricing_core.metering.authorize import authorize
from pricing_core.metering.record import record_usage

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(url: str) -> str:
    """An account with a user, usage in chat-1, an open hold, another account; a key."""
    engine = storage.make_engine(url, poolclass=sa.pool.NullPool)
    at = datetime.now(UTC)
    create_account(engine, "acct-1", name="Shop", user_id="user-1", opening_credit=Decimal("50"))
    ensure_user(engine, "acct-1", "user-2")
    create_account(engine, "acct-2", name="Other", user_id="other-1", opening_credit=Decimal("5"))
    for i, (acct, user) in enumerate(
        [("acct-1", "user-1"), ("acct-1", "user-2"), ("acct-2", "other-1")]
    ):
        record_usage(
            engine,
            UsageEvent(
                request_id=f"seed-{i}",
                account_id=acct,
                user_id=user,
                operation="chat_message",
                provider="openai",
                model="gpt-4o-mini",
                input_tokens=900,
                output_tokens=300,
                chat_id="chat-1" if acct == "acct-1" else "chat-x",
                created_at=at,
            ),
            now=at,
        )
    authorize(
        engine,
        account_id="acct-1",
        user_id="user-1",
        model="gpt-4o-mini",
        estimated_input_tokens=100,
        max_output_tokens=100,
        request_id="seed-hold",
    )
    secret = create_api_key(engine, Principal("user-1", "acct-1"), name="contract test").secret
    engine.dispose()
    return secret


@contextmanager
def serving(url: str, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Run the dashboard (and so the API) on database `url`; yields the API's base URL
    (`http://127.0.0.1:<port>/api/v1`). Raises: RuntimeError if it does not start."""
    port = free_port()
    environment = {
        **os.environ,
        "PRICING_DATABASE_URL": url,
        "PYTHONPATH": str(ROOT),
        **(env or {}),
    }
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py")]
    command += ["--server.port", str(port), "--server.headless", "true"]
    command += ["--browser.gatherUsageStats", "false"]
    process = subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        wait_until_up(process, f"{base}/openapi.json")
        yield base
    finally:
        stop(process)


def wait_until_up(process: subprocess.Popen[bytes], url: str, timeout: float = 60) -> None:
    """Until `url` answers 200. Raises: RuntimeError (with the process's stderr) when
    the process exits or `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            error = process.stderr.read() if process.stderr else b""
            raise RuntimeError(f"server did not start: {error!r:.2000}")
        time.sleep(0.3)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill if it does not stop within 15 s."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stderr:
        process.stderr.close()


# Settings of the served API under contract tests: a small free tier so its 429 is
# reached, and no failed-authentication lockout (schemathesis sends keyless requests).
CONTRACT_ENV = {
    "PRICING_FREE_TIER_REQUESTS_PER_DAY": "3",
    "PRICING_API_AUTH_MAX_FAILURES": "1000000",
}
