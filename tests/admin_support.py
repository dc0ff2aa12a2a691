"""Data and principals shared by the admin tests.

`seed_small` records a few days of usage, purchases and a refund through the public
functions (record_usage, credit, post_entry), so the admin figures can be checked
against independent sums of the events and ledger rows.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine

from pricing_core.adapters.storage import run_write
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.wallets import EntryKind, create_account, credit, post_entry
from pricing_core.metering.batch import record_usage_batch
from pricing_core.metering.record import record_usage

ADMIN = Principal("ops", "ops", role="admin", email="ops@example.com")
MEMBER = Principal("alice", "alice", role="member", email="alice@example.com")
DAY0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
TRACE = Path("/work/shared/data/azure-llm-inference-2023/AzureLLMInferenceTrace_conv.csv")
MODELS = [("openai", "gpt-4o-mini"), ("openai", "gpt-4o"), ("anthropic", "claude-3-5-haiku-latest")]


def seed_accounts(engine: Engine) -> None:
    create_account(
        engine,
        "ops",
        name="Operator",
        email="ops@example.com",
        role="admin",
        opening_credit=Decimal(0),
        now=DAY0 - timedelta(days=1),
    )
    create_account(
        engine,
        "alice",
        name="Alice",
        email="alice@example.com",
        opening_credit=Decimal(50),
        now=DAY0 - timedelta(days=1),
    )
    create_account(
        engine,
        "bob",
        name="Bob",
        email="bob@example.com",
        opening_credit=Decimal(5),
        now=DAY0 - timedelta(days=1),
    )
    create_account(
        engine,
        "carol",
        name="Carol",
        email="carol@example.com",
        opening_credit=Decimal(0),
        now=DAY0 - timedelta(days=1),
    )


def seed_small(engine: Engine) -> None:
    """4 accounts; 5 days of usage on 3 models and 2 operations; 2 purchases and a
    refund. Carol is allowed to overdraw (a negative balance)."""
    seed_accounts(engine)
    credit(
        engine,
        "alice",
        "20",
        kind=EntryKind.PURCHASE,
        idempotency_key="checkout:a1",
        now=DAY0 + timedelta(days=1, hours=1),
    )
    credit(
        engine,
        "bob",
        "10",
        kind=EntryKind.PURCHASE,
        idempotency_key="checkout:b1",
        now=DAY0 + timedelta(days=2, hours=1),
    )
    run_write(
        engine,
        lambda conn: post_entry(
            conn,
            account_id="bob",
            amount=Decimal("-5"),
            kind=EntryKind.REFUND,
            idempotency_key="refund:b1",
            now=DAY0 + timedelta(days=3, hours=2),
            floor=None,
        ),
    )
    n = 0
    for day in range(5):
        for account, (provider, model), operation, tokens in (
            ("alice", MODELS[0], "chat_message", (1020, 129)),
            ("alice", MODELS[1], "chat_message", (2000 + day, 300)),
            ("alice", MODELS[1], "code_completion", (1469, 13 + day)),
            ("bob", MODELS[2], "chat_message", (800, 200 + day)),
            ("carol", MODELS[1], "chat_message", (50_000, 4000)),
        ):
            n += 1
            at = DAY0 + timedelta(days=day, minutes=n)
            record_usage(
                engine,
                UsageEvent(
                    f"r{n}",
                    account,
                    account,
                    operation,
                    provider,
                    model,
                    tokens[0],
                    tokens[1],
                    chat_id=f"{account}-c{day}",
                    created_at=at,
                ),
                allow_overdraft=account == "carol",
                now=at + timedelta(seconds=1),
            )


def seed_trace(engine: Engine, *, rows: int = 1500, accounts: int = 6) -> int:
    """Record the first `rows` requests of the real Azure conversation trace, spread
    over `accounts` accounts and the three MODELS (round robin), with overdraft
    allowed (past usage). Returns the number of events recorded."""
    for i in range(accounts):
        create_account(
            engine,
            f"t{i}",
            name=f"Trace {i}",
            email=f"t{i}@example.com",
            opening_credit=Decimal(5),
            now=datetime(2023, 11, 15, tzinfo=UTC),
        )
    create_account(
        engine,
        "ops",
        name="Operator",
        email="ops@example.com",
        role="admin",
        opening_credit=Decimal(0),
        now=datetime(2023, 11, 15, tzinfo=UTC),
    )
    events = []
    with TRACE.open(newline="") as handle:
        for i, row in enumerate(csv.DictReader(handle)):
            if i >= rows:
                break
            stamp = datetime.fromisoformat(row["TIMESTAMP"][:26]).replace(tzinfo=UTC)
            provider, model = MODELS[i % len(MODELS)]
            account = f"t{(i * 7) % accounts}"
            events.append(
                UsageEvent(
                    f"trace-{i}",
                    account,
                    account,
                    "chat_message",
                    provider,
                    model,
                    int(row["ContextTokens"]),
                    int(row["GeneratedTokens"]),
                    chat_id=f"{account}-{i // 50}",
                    created_at=stamp,
                )
            )
    result = record_usage_batch(engine, events, allow_overdraft=True)
    assert not result.rejected, result.rejected[:3]
    assert result.recorded == len(events)
    return result.recorded
