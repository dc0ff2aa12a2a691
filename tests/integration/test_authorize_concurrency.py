"""32 threads authorize / settle against one account on PostgreSQL: no overspending;
and an admin sets the balance while 16 threads charge it.

Each thread wants `WANT` settled requests; together they want far more than the
balance (or the budget) allows. A refusal is retried while it may be temporary
(other threads' holds), and ends the thread once the money itself is gone. The
expected number of charged requests is computed independently from the prices.
"""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from genai_prices import Usage, calc_price
from sqlalchemy import func, insert, select

from pricing_core.adapters.schema import budgets, holds, ledger_entries
from pricing_core.admin.accounts import set_balance
from pricing_core.config import get_settings
from pricing_core.domain.errors import InsufficientBalance
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.holds import HoldStatus, count_holds, expire_holds, release
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account, get_wallet
from pricing_core.limits.rules import SpendLimitExceeded
from pricing_core.metering.authorize import authorize
from pricing_core.metering.record import record_usage
from pricing_core.metering.settle import settle
from tests.admin_support import ADMIN

pytestmark = pytest.mark.postgres

THREADS = 32
WANT = 12  # settled requests each thread wants
IN_EST, OUT_MAX = 1000, 500  # what is authorized
IN_ACT, OUT_ACT = 1000, 200  # what is actually used
MARKUP = Decimal("1.25")


def price(input_tokens: int, output_tokens: int) -> Decimal:
    exact = calc_price(
        Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        "gpt-4o-mini",
        provider_id="openai",
        genai_request_timestamp=datetime.now(UTC),
    ).total_price
    return (exact * MARKUP).quantize(Decimal("1e-9"), ROUND_HALF_EVEN)


def run_threads(engine, *, stop_when) -> dict[str, int]:
    """Every thread: authorize, then settle (or every 7th: release). Returns counts."""
    counter = itertools.count()
    tally = {"settled": 0, "released": 0, "refused": 0, "abandoned": 0}
    lock = threading.Lock()
    errors: list[BaseException] = []
    timeout = get_settings().hold_timeout_seconds

    def bump(key: str) -> None:
        with lock:
            tally[key] += 1

    def worker(index: int) -> None:
        try:
            if index == 0:  # three calls that never come back: their holds must expire
                for _ in range(3):
                    authorize(
                        engine,
                        account_id="acct",
                        user_id="acct",
                        model="gpt-4o-mini",
                        estimated_input_tokens=IN_EST,
                        max_output_tokens=OUT_MAX,
                        request_id=f"lost-{next(counter)}",
                        now=datetime.now(UTC) - timedelta(seconds=timeout) + timedelta(seconds=0.3),
                    )
                    bump("abandoned")
            done = 0
            while done < WANT:
                k = next(counter)
                try:
                    hold = authorize(
                        engine,
                        account_id="acct",
                        user_id="acct",
                        model="gpt-4o-mini",
                        estimated_input_tokens=IN_EST,
                        max_output_tokens=OUT_MAX,
                        request_id=f"r-{k}",
                    )
                except (InsufficientBalance, SpendLimitExceeded):
                    bump("refused")
                    if stop_when():
                        return
                    time.sleep(0.002)
                    continue
                if k % 7 == 0:
                    release(engine, "acct", hold.id)
                    bump("released")
                    continue
                result = settle(engine, hold, input_tokens=IN_ACT, output_tokens=OUT_ACT)
                assert not result.exceeded_hold
                bump("settled")
                done += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[:3]
    assert not any(t.is_alive() for t in threads)
    return tally


def finish_and_check(engine) -> None:
    time.sleep(0.35)
    expire_holds(engine)  # what `pricing-core holds expire` runs
    states = count_holds(engine, "acct")
    assert states[HoldStatus.ACTIVE] == 0
    assert states[HoldStatus.EXPIRED] == 3
    report = verify_ledger(engine)
    assert report.ok, report.violations
    assert get_wallet(engine, "acct").held == 0


def usage_total(engine) -> tuple[int, Decimal]:
    with engine.connect() as conn:
        n, total = conn.execute(
            select(func.count(), func.sum(ledger_entries.c.amount)).where(
                ledger_entries.c.kind == "usage"
            )
        ).one()
    return n, -(total or Decimal(0))


def test_concurrent_authorizations_never_spend_more_than_the_balance(pg_engine, monkeypatch):
    start = Decimal("0.05")
    create_account(pg_engine, "acct", name="Busy", opening_credit=start)
    estimate, actual = price(IN_EST, OUT_MAX), price(IN_ACT, OUT_ACT)
    minimum = get_settings().minimum_balance_usd
    need = max(estimate, minimum)  # available balance needed to authorize one more
    # Sequentially: accept while the balance is at least `need`.
    expected = int((start - need) // actual) + 1
    assert expected < THREADS * WANT  # the demand exceeds what the balance allows

    tally = run_threads(pg_engine, stop_when=lambda: get_wallet(pg_engine, "acct").balance < need)

    finish_and_check(pg_engine)
    final = get_wallet(pg_engine, "acct").balance
    print(f"balance: {tally} expected {expected} estimate {estimate} actual {actual} final {final}")
    charged, total = usage_total(pg_engine)
    assert charged == tally["settled"]
    assert total == actual * charged
    assert final == start - total
    assert final >= 0  # the floor
    assert need - actual <= final < need
    assert abs(charged - expected) * actual <= estimate  # within one estimate
    assert charged == expected
    assert tally["refused"] > 0


def test_concurrent_authorizations_never_overspend_a_blocking_monthly_budget(pg_engine):
    create_account(pg_engine, "acct", name="Budgeted", opening_credit=Decimal("5"))
    limit = Decimal("0.03")
    with pg_engine.begin() as conn:
        conn.execute(
            insert(budgets).values(
                account_id="acct",
                user_id="",
                monthly_limit=limit,
                thresholds="50,80,100",
                block_at_limit=True,
                updated_at=datetime.now(UTC),
            )
        )
    estimate, actual = price(IN_EST, OUT_MAX), price(IN_ACT, OUT_ACT)
    expected = int((limit - estimate) // actual) + 1  # spent + estimate <= limit
    assert expected < THREADS * WANT

    def budget_used_up() -> bool:
        return usage_total(pg_engine)[1] + estimate > limit

    tally = run_threads(pg_engine, stop_when=budget_used_up)

    finish_and_check(pg_engine)
    charged, total = usage_total(pg_engine)
    print(f"budget: {tally} expected {expected} limit {limit} spent {total}")
    assert charged == tally["settled"] == expected
    assert total <= limit
    assert get_wallet(pg_engine, "acct").balance == Decimal("5") - total
    with pg_engine.connect() as conn:
        open_holds = conn.execute(
            select(func.count()).where(holds.c.status == "active")
        ).scalar_one()
    assert open_holds == 0


def test_set_balance_under_16_concurrent_charges_ends_at_the_figure_plus_later_charges(
    pg_engine,
):
    create_account(pg_engine, "acct", name="Busy", opening_credit=Decimal("30"))
    charges_each, started = 12, threading.Barrier(17)
    errors: list[BaseException] = []

    def charge(index: int) -> None:
        try:
            started.wait()
            for k in range(charges_each):
                event = UsageEvent(
                    request_id=f"c-{index}-{k}",
                    account_id="acct",
                    user_id="acct",
                    operation="chat",
                    provider="openai",
                    model="gpt-4o-mini",
                    input_tokens=IN_ACT,
                    output_tokens=OUT_ACT,
                )
                record_usage(pg_engine, event)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=charge, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    started.wait()
    deadline = time.monotonic() + 60
    while usage_total(pg_engine)[0] < 40 and not errors:  # some charges land before the set
        assert time.monotonic() < deadline
        time.sleep(0.001)
    posting = set_balance(
        pg_engine, ADMIN, "acct", "50.00", reason="compensation for the outage",
        idempotency_key="outage-1", confirmed=True,
    )  # fmt: skip
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    assert posting.entry.balance_after == Decimal("50")
    with pg_engine.connect() as conn:
        later = conn.execute(
            select(ledger_entries.c.kind, ledger_entries.c.amount).where(
                ledger_entries.c.id > posting.entry.id
            )
        ).all()
    assert later and {kind for kind, _ in later} == {"usage"}  # charges came after it
    assert all(amount == -price(IN_ACT, OUT_ACT) for _, amount in later)
    charged, total = usage_total(pg_engine)
    assert charged == 16 * charges_each and total == charged * price(IN_ACT, OUT_ACT)
    assert len(later) < charged  # and some before it
    final = get_wallet(pg_engine, "acct").balance
    assert final == Decimal("50") - len(later) * price(IN_ACT, OUT_ACT)
    report = verify_ledger(pg_engine)
    assert report.ok, report.violations
