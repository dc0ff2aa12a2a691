"""record_usage_many (the batched path) has exactly the outcome of record_usage called
for each event in turn: same results, same errors, same ledger, same rollups."""

from __future__ import annotations

import contextlib
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import insert, select

from pricing_core.errors import PricingError
from pricing_core.exports import iter_ledger_rows, iter_usage_rows
from pricing_core.integrity import verify_ledger
from pricing_core.ledger import create_account, get_wallet
from pricing_core.metering import UsageEvent, UsageResult, record_usage, record_usage_many
from pricing_core.storage import chats, plans, usage_daily
from pricing_core.subscriptions import SubscriptionSource, switch_plan

NOW = datetime(2025, 3, 1, tzinfo=UTC)
START = datetime(2025, 2, 27, 23, 0, tzinfo=UTC)
MODELS = [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"), ("openai", "nope")]


def scenario(prefix: str, seed: int) -> list[UsageEvent]:
    """A mixed stream: retries, conflicting duplicates, unknown models, zero tokens,
    hostile ids, accounts that run dry and an unknown account."""
    rng = random.Random(seed)
    events: list[UsageEvent] = []
    for n in range(260):
        if events and rng.random() < 0.12:
            earlier = rng.choice(events)
            if rng.random() < 0.3:
                earlier = replace(earlier, output_tokens=earlier.output_tokens + 1)
            events.append(earlier)
            continue
        provider, model = rng.choices(MODELS, weights=[8, 3, 1])[0]
        names = ["rich", "poor", "dry", "plan", "ghost"] if n % 50 else ["rich"]
        account = f"{prefix}{rng.choice(names)}"
        events.append(
            UsageEvent(
                request_id=rng.choice([f"r{n}", f"r'{n}; DROP TABLE x;--", f"r{n}" + "é" * 5]),
                account_id=account,
                user_id=account,
                operation=rng.choice(["chat_message", "code_completion"]),
                provider=provider,
                model=model,
                input_tokens=-1 if n % 97 == 0 else rng.choice([0, rng.randint(1, 20_000), 5]),
                output_tokens=rng.randint(0, 2_000),
                chat_id=rng.choice([None, f"c{n // 7}"]),
                created_at=START + timedelta(minutes=7 * n),
            )
        )
    return events


def normalized(result: UsageResult | PricingError, prefix: str) -> tuple:
    if isinstance(result, PricingError):
        return (type(result).__name__, str(result).replace(prefix, "<p>"))
    return (
        result.request_id,
        result.account_id.removeprefix(prefix),
        result.provider_cost,
        result.price,
        result.basis,
        result.price_version,
        result.explanation,
        result.balance_after,
        result.ledger_entry_id is None,
        result.replayed,
    )


def state(engine, prefix: str) -> tuple:
    usage = [
        {**r, "account_id": r["account_id"].removeprefix(prefix)}
        | {"user_id": r["user_id"].removeprefix(prefix)}
        for r in iter_usage_rows(engine)
        if r["account_id"].startswith(prefix)
    ]
    ledger = [
        (r["kind"], r["amount_usd"], r["balance_after_usd"], r["reference"], r["created_at"])
        for r in iter_ledger_rows(engine)
        if r["account_id"].startswith(prefix)
    ]
    with engine.connect() as conn:
        chat_rows = sorted(
            tuple(row[1:]) for row in conn.execute(select(chats)) if row[0].startswith(prefix)
        )
        daily = sorted(
            (
                row.day,
                row.user_id.removeprefix(prefix),
                row.model,
                row.operation,
                row.requests,
                row.input_tokens,
                row.output_tokens,
                row.provider_cost,
                row.price,
            )
            for row in conn.execute(select(usage_daily))
            if row.account_id.startswith(prefix)
        )
    chat_rows = [(r[0], r[1].removeprefix(prefix), *r[2:]) for r in chat_rows]
    return usage, ledger, chat_rows, daily


def add_tiny_plan(engine) -> None:
    """A plan with 10 included messages a month, then $0.001 per message."""
    with engine.begin() as conn:
        conn.execute(
            insert(plans).values(
                code="tiny",
                version=1,
                name="Tiny",
                monthly_fee=Decimal("1"),
                included_messages=10,
                overage_rate=Decimal("0.001"),
                monthly_cap=None,
                position=9,
                active=True,
                effective_from=START,
                created_by="test",
                created_at=START,
            )
        )


def open_accounts(engine, prefix: str) -> None:
    for name, credit in [("rich", "1000"), ("poor", "0.05"), ("dry", "0"), ("plan", "0.01")]:
        create_account(
            engine, f"{prefix}{name}", name=name, opening_credit=Decimal(credit), now=START
        )
    switch_plan(engine, f"{prefix}plan", "tiny", source=SubscriptionSource.DEMO, now=START)


def test_batched_recording_matches_recording_one_by_one(engine):
    add_tiny_plan(engine)
    for seed in (1, 2):
        one, many = f"one{seed}-", f"many{seed}-"
        open_accounts(engine, one)
        open_accounts(engine, many)
        events = scenario("", seed)
        singles = []
        for ev in events:
            mine = replace(ev, account_id=one + ev.account_id, user_id=one + ev.user_id)
            try:
                singles.append(record_usage(engine, mine, now=NOW))
            except PricingError as exc:
                singles.append(exc)
        batched = record_usage_many(
            engine,
            [replace(e, account_id=many + e.account_id, user_id=many + e.user_id) for e in events],
            chunk_size=64,
            now=NOW,
        )
        assert [normalized(r, one) for r in singles] == [normalized(r, many) for r in batched]
        kinds = {type(r).__name__ for r in singles}
        assert {
            "UsageResult",
            "InsufficientBalance",
            "UnknownModel",
            "UnknownAccount",
            "DuplicateRequest",
            "InvalidUsage",
        } <= kinds
        assert any(isinstance(r, UsageResult) and r.replayed for r in batched)
        assert state(engine, one) == state(engine, many)
        assert {"included", "overage"} <= {
            str(r.basis) for r in batched if isinstance(r, UsageResult)
        }
        for name in ("rich", "poor", "dry", "plan"):
            assert get_wallet(engine, one + name) == replace(
                get_wallet(engine, many + name), account_id=one + name
            )
    assert verify_ledger(engine).ok


def test_overdraft_batches_match_one_by_one_and_go_below_zero(engine):
    add_tiny_plan(engine)
    one, many = "one-", "many-"
    open_accounts(engine, one)
    open_accounts(engine, many)
    events = [e for e in scenario("", 3) if not e.account_id.endswith("ghost")]
    for ev in events:
        with contextlib.suppress(PricingError):
            record_usage(
                engine,
                replace(ev, account_id=one + ev.account_id, user_id=one + ev.user_id),
                allow_overdraft=True,
                now=NOW,
            )
    record_usage_many(
        engine,
        [replace(e, account_id=many + e.account_id, user_id=many + e.user_id) for e in events],
        allow_overdraft=True,
        chunk_size=1000,
        now=NOW,
    )
    assert state(engine, one) == state(engine, many)
    assert get_wallet(engine, many + "dry").balance < 0
    assert verify_ledger(engine).ok
