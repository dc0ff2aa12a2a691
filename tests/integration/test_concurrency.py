"""PostgreSQL: 32 threads x 200 record_usage calls on one wallet, plus replays of 10%
of the request ids from other threads: exact balance, each request charged once."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from genai_prices import Usage, calc_price
from sqlalchemy import func, select

from pricing_core.adapters.schema import ledger_entries, usage_events
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account, get_wallet
from pricing_core.metering.record import UsageResult, record_usage

THREADS, CALLS = 32, 200
OPENING = Decimal("100")
MARKUP = Decimal("1.25")  # the default_markup setting
START = datetime(2025, 3, 1, tzinfo=UTC)
MODELS = [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5")]


def make_events() -> list[list[UsageEvent]]:
    rng = random.Random(2)
    return [
        [
            UsageEvent(
                request_id=f"t{t}-{n}",
                account_id="shared",
                user_id="shared",
                operation="chat_message",
                provider=(model := MODELS[(t + n) % 2])[0],
                model=model[1],
                input_tokens=rng.randint(1, 14_000),
                output_tokens=rng.randint(0, 1_000),
                chat_id=f"chat-{t}",
                created_at=START + timedelta(seconds=t * CALLS + n),
            )
            for n in range(CALLS)
        ]
        for t in range(THREADS)
    ]


def independent_price(event: UsageEvent) -> Decimal:
    exact = calc_price(
        Usage(input_tokens=event.input_tokens, output_tokens=event.output_tokens),
        event.model,
        provider_id=event.provider,
        genai_request_timestamp=event.created_at,
    ).total_price
    return (exact * MARKUP).quantize(Decimal("1e-9"), ROUND_HALF_EVEN)


@pytest.mark.postgres
def test_thirty_two_threads_on_one_wallet_with_replays_charge_each_request_exactly_once(pg_engine):
    create_account(pg_engine, "shared", name="Shared", opening_credit=OPENING, now=START)
    per_thread = make_events()
    everything = [e for events in per_thread for e in events]
    rng = random.Random(3)
    replays = rng.sample(everything, len(everything) // 10)
    replays_of = [replays[t::THREADS] for t in range(THREADS)]
    results: list[list[UsageResult]] = [[] for _ in range(THREADS)]
    failures: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def work(t: int) -> None:
        try:
            barrier.wait()
            mine = per_thread[t] + replays_of[t]
            random.Random(t).shuffle(mine)  # replays interleave with first attempts
            for event in mine:
                results[t].append(record_usage(pg_engine, event, now=START + timedelta(days=1)))
        except BaseException as exc:  # surfaced below: the test must see every failure
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []

    expected = {e.request_id: independent_price(e) for e in everything}
    flat = [r for rs in results for r in rs]
    assert len(flat) == len(everything) + len(replays)
    assert sum(not r.replayed for r in flat) == len(everything)
    for r in flat:
        assert r.price == expected[r.request_id]
    assert get_wallet(pg_engine, "shared").balance == OPENING - sum(expected.values())

    with pg_engine.connect() as conn:
        charged = dict(
            conn.execute(
                select(ledger_entries.c.reference, func.count())
                .where(ledger_entries.c.kind == "usage")
                .group_by(ledger_entries.c.reference)
            ).all()
        )
        events = conn.execute(select(func.count()).select_from(usage_events)).scalar_one()
    assert charged == {request_id: 1 for request_id in expected}
    assert events == len(everything)
    report = verify_ledger(pg_engine)
    assert report.ok, report.violations
    assert report.events == len(everything)
