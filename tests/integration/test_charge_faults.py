"""PostgreSQL: the one-call charge path under faults. A connection killed while its
charge waits inside the server, or between charges, loses nothing and charges
nothing twice; the ledger verifies."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
import sqlalchemy as sa
from genai_prices import Usage, calc_price

from pricing_core.adapters.schema import ledger_entries, usage_daily, usage_events
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account, get_wallet
from pricing_core.metering.record import record_usage

pytestmark = pytest.mark.postgres

T0 = datetime(2025, 6, 2, 9, tzinfo=UTC)
OPENING = Decimal("10")


def event(n: int) -> UsageEvent:
    return UsageEvent(
        request_id=f"r{n}",
        account_id="acme",
        user_id="acme",
        operation="chat_message",
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=1000 + n,
        output_tokens=200,
        chat_id="c1",
        created_at=T0 + timedelta(minutes=n),
    )


def list_price(e: UsageEvent) -> Decimal:
    """genai-prices' own figure with the default 1.25 markup, to the nano-USD."""
    exact = calc_price(
        Usage(input_tokens=e.input_tokens, output_tokens=e.output_tokens),
        e.model,
        provider_id=e.provider,
        genai_request_timestamp=e.created_at,
    ).total_price
    return (exact * Decimal("1.25")).quantize(Decimal("1e-9"), ROUND_HALF_EVEN)


def charge_backends(admin: sa.Connection, *, waiting: bool) -> list[int]:
    """Server processes running the charge function (only those waiting for a lock)."""
    sql = (
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND query LIKE '%%pricing_record_usage%%' AND pid <> pg_backend_pid()"
    )
    if waiting:
        sql += " AND wait_event_type = 'Lock'"
    return [row[0] for row in admin.exec_driver_sql(sql)]


def counts(engine: sa.Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        entries = conn.execute(
            sa.select(sa.func.count()).where(ledger_entries.c.kind == "usage")
        ).scalar_one()
        events = conn.execute(sa.select(sa.func.count()).select_from(usage_events)).scalar_one()
        requests = conn.execute(sa.select(sa.func.sum(usage_daily.c.requests))).scalar_one()
    return entries, events, requests


def test_a_charge_whose_connection_is_killed_inside_the_server_is_recorded_once(pg_engine):
    create_account(pg_engine, "acme", name="Acme", opening_credit=OPENING, now=T0)
    record_usage(pg_engine, event(0), now=T0 + timedelta(days=1))
    outcome: list[object] = []
    with pg_engine.connect() as blocker, pg_engine.connect() as admin:
        admin.execution_options(isolation_level="AUTOCOMMIT")
        with blocker.begin():
            # hold the wallet row: the next charge waits inside its UPDATE
            blocker.exec_driver_sql("SELECT 1 FROM wallets WHERE account_id = 'acme' FOR UPDATE")

            def charge() -> None:
                try:
                    outcome.append(record_usage(pg_engine, event(1), now=T0 + timedelta(days=1)))
                except BaseException as exc:  # surfaced below
                    outcome.append(exc)

            worker = threading.Thread(target=charge)
            worker.start()
            for _ in range(200):
                waiting = charge_backends(admin, waiting=True)
                if waiting:
                    break
                time.sleep(0.02)
            assert len(waiting) == 1, "the charge should be waiting in pricing_record_usage"
            admin.exec_driver_sql(f"SELECT pg_terminate_backend({waiting[0]})")
        worker.join(30)
    assert len(outcome) == 1 and not isinstance(outcome[0], BaseException), outcome
    result = outcome[0]
    assert result.replayed is False  # type: ignore[union-attr]

    price = list_price(event(0)) + list_price(event(1))
    assert get_wallet(pg_engine, "acme").balance == OPENING - price
    assert counts(pg_engine) == (2, 2, 2)
    assert verify_ledger(pg_engine).ok


def test_a_connection_killed_between_charges_is_reopened_and_replays_stay_free(pg_engine):
    create_account(pg_engine, "acme", name="Acme", opening_credit=OPENING, now=T0)
    now = T0 + timedelta(days=1)
    first = record_usage(pg_engine, event(0), now=now)
    with pg_engine.connect() as admin:
        admin.execution_options(isolation_level="AUTOCOMMIT")
        idle = charge_backends(admin, waiting=False)
        assert idle, "the charge connection should stay open between charges"
        for pid in idle:
            admin.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    again = record_usage(pg_engine, event(0), now=now)
    second = record_usage(pg_engine, event(1), now=now)

    assert again.replayed and again.ledger_entry_id == first.ledger_entry_id
    assert again.balance_after == first.balance_after
    assert not second.replayed
    assert second.balance_after == OPENING - list_price(event(0)) - list_price(event(1))
    assert counts(pg_engine) == (2, 2, 2)
    assert verify_ledger(pg_engine).ok
