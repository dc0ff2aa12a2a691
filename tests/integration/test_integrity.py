"""verify_ledger finds every kind of drift between the ledger, the rollups and the
events, and nothing on a clean database."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account
from pricing_core.metering.record import record_usage

AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def recorded(engine):
    create_account(engine, "acct", name="Acct", opening_credit=Decimal(5), now=AT)
    for i in range(6):
        record_usage(
            engine,
            UsageEvent(
                request_id=f"r{i}",
                account_id="acct",
                user_id="acct",
                operation="chat_message",
                provider="openai",
                model="gpt-4o-mini",
                input_tokens=1000 + i,
                output_tokens=100,
                chat_id=f"chat-{i % 2}",
                created_at=AT + timedelta(hours=i * 7),  # spans two days
            ),
            now=AT + timedelta(days=2),
        )
    return engine


TAMPERING = {
    "rollup price": ("UPDATE usage_daily SET price = price + 1 WHERE day = "
                     "(SELECT MIN(day) FROM usage_daily)", "usage_daily"),
    "rollup requests": ("UPDATE usage_daily SET requests = requests + 1 WHERE day = "
                        "(SELECT MAX(day) FROM usage_daily)", "usage_daily"),
    "rollup row lost": ("DELETE FROM usage_daily WHERE day = (SELECT MIN(day) FROM usage_daily)",
                        "usage_daily"),
    "chat cost": ("UPDATE chats SET cost = cost - 1 WHERE chat_id = 'chat-1'", "chat"),
    "chat row lost": ("DELETE FROM chats WHERE chat_id = 'chat-0'", "chat"),
    "balance": ("UPDATE wallets SET balance = balance + 1", "balance"),
}  # fmt: skip


def test_a_clean_database_verifies(recorded):
    report = verify_ledger(recorded)
    assert report.ok, report.violations
    assert (report.wallets, report.events) == (1, 6)


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_each_kind_of_drift_is_reported(recorded, name):
    statement, word = TAMPERING[name]
    with recorded.begin() as conn:
        conn.execute(sa.text(statement))
    report = verify_ledger(recorded)
    assert not report.ok
    assert any(word in v for v in report.violations), report.violations
