"""Schemathesis against the live `/api/v1` (served by `streamlit run app.py`, PostgreSQL,
seeded, a valid API key): no 5xx, and every response matches the OpenAPI document.

The number of generated requests is bounded (hypothesis `max_examples` per operation).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pricing_core.access.apikeys import create_api_key
from pricing_core.adapters import storage
from pricing_core.api.routes import create_app
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.wallets import create_account, ensure_user
from pricing_core.metering.authorize import authorize
from pricing_core.metering.record import record_usage
from tests.conftest import _admin_engine, _url_for

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@pytest.fixture(scope="module")
def live_api(pg_template: str) -> Iterator[tuple[str, str]]:
    """(base URL of /api/v1, API key) of a dashboard process on a fresh database."""
    name = f"pc_contract_{uuid.uuid4().hex[:10]}"
    with _admin_engine().connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    url = _url_for(name)
    secret = seed(url)
    port = _free_port()
    env = {
        **os.environ,
        "PRICING_DATABASE_URL": url,
        "PYTHONPATH": str(ROOT),
        "PRICING_FREE_TIER_REQUESTS_PER_DAY": "3",
        # schemathesis also sends requests without a key; keep them from tripping the
        # failed-authentication limit so the rest of the run reaches the routes
        "PRICING_API_AUTH_MAX_FAILURES": "1000000",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {process.stderr.read()!r:.2000}")
            time.sleep(0.3)
        yield base, secret
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
        with _admin_engine().connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# The document the live server serves at /api/v1/openapi.json, built from the same
# code (schemathesis' lazy fixture loader does not support pytest 9); the test below
# checks that the served document is exactly this one.
DOCUMENT = create_app().openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_never_fails_and_always_answers_as_documented(case, live_api):
    base, secret = live_api
    case.call_and_validate(
        base_url=base, headers={"Authorization": f"Bearer {secret}"}, checks=CHECKS, timeout=30
    )


def test_the_openapi_document_is_served_under_api_v1(live_api):
    base, _ = live_api
    document = httpx.get(f"{base}/openapi.json").json()
    assert document.pop("servers") == [{"url": "/api/v1"}]
    assert document == DOCUMENT
    assert set(document["paths"]) >= {
        "/authorize",
        "/holds/{hold_id}/settle",
        "/holds/{hold_id}/release",
        "/usage",
        "/balance",
        "/chats/{chat_id}/usage",
        "/pricing/models",
        "/estimate",
        "/budget",
    }
