"""Shared helpers for the checkout tests: the webhook endpoint and a paid session.

Expected amounts come from the issue's package table, not from the code under test.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from pricing_core.adapters.schema import ledger_entries
from pricing_core.adapters.schema_billing import checkout_sessions, stripe_events
from pricing_core.api.http import routes
from pricing_core.billing import checkout
from pricing_core.domain.principal import Principal

# package id -> (price in cents, credit received in USD incl. the volume bonus)
PACKS = {
    "starter-v1": (499, Decimal("5")),
    "popular-v1": (1799, Decimal("20")),
    "pro-v1": (3999, Decimal("46")),
    "enterprise-v1": (13999, Decimal("175")),
}


def webhook_client() -> TestClient:
    """The product's real HTTP routes (as app.py's st.App serves them)."""
    return TestClient(Starlette(routes=routes()))


def deliver(client: TestClient, fake: Any, event: dict[str, Any], **kw: Any) -> Any:
    body, headers = fake.signed(event, **kw)
    return client.post("/stripe/webhook", content=body, headers=headers)


def open_session(
    engine: Any, account: str = "acct", package: str = "popular-v1", key: str = "k"
) -> str:
    return checkout.create_checkout(
        engine, Principal(account, account), package_id=package, idempotency_key=key
    ).session_id


def paid_session(
    engine: Any, fake: Any, account: str = "acct", package: str = "popular-v1", key: str = "k"
) -> str:
    sid = open_session(engine, account, package, key)
    fake.pay(sid)
    return sid


def counts(engine: Any) -> tuple[int, int, int]:
    """(ledger entries, stripe events, checkout sessions not open)."""
    with engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(ledger_entries)).scalar_one(),
            conn.execute(select(func.count()).select_from(stripe_events)).scalar_one(),
            conn.execute(
                select(func.count())
                .select_from(checkout_sessions)
                .where(checkout_sessions.c.status != "open")
            ).scalar_one(),
        )


def purchase_entries(engine: Any, sid: str) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(
            select(ledger_entries.c.kind, ledger_entries.c.amount)
            .where(ledger_entries.c.reference == sid)
            .order_by(ledger_entries.c.id)
        ).all()
