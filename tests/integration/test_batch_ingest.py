"""record_usage_batch records exactly what record_usage records, event by event."""

import random
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pricing_core.adapters import storage
from pricing_core.adapters.schema import chats, ledger_entries, usage_daily, usage_events, wallets
from pricing_core.config import get_settings
from pricing_core.domain.errors import PricingError
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account
from pricing_core.metering.authorize import authorize
from pricing_core.metering.batch import record_usage_batch
from pricing_core.metering.record import record_usage
from pricing_core.metering.settle import settle
from tests.conftest import _admin_engine, _url_for

NOW = datetime(2025, 6, 1, tzinfo=UTC)
T0 = datetime(2025, 5, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_engines(
    request: pytest.FixtureRequest, tmp_path, monkeypatch
) -> Iterator[tuple[sa.Engine, sa.Engine]]:
    """Two fresh migrated databases on the same back end: batch vs per-event."""
    urls, cleanup = [], []
    if request.param == "sqlite":
        import shutil

        template = request.getfixturevalue("sqlite_template")
        for name in ("batch", "single"):
            shutil.copy(template, tmp_path / f"{name}.db")
            urls.append(f"sqlite:///{tmp_path / name}.db")
    else:
        template = request.getfixturevalue("pg_template")
        for _ in range(2):
            name = f"pc_test_{uuid.uuid4().hex[:12]}"
            with _admin_engine().connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            urls.append(_url_for(name))
            cleanup.append(name)
    monkeypatch.setenv("PRICING_DATABASE_URL", urls[0])
    get_settings.cache_clear()
    engines = tuple(storage.make_engine(u) for u in urls)
    yield engines  # type: ignore[misc]
    for e in engines:
        e.dispose()
    for name in cleanup:
        with _admin_engine().connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def state(engine: sa.Engine, prefix: str) -> dict:
    """Everything the two paths must agree on, for accounts starting with `prefix`
    (row ids aside: entries are compared in id order per account)."""
    mine = prefix + "%"
    with engine.connect() as conn:
        le, ue = ledger_entries.c, usage_events.c
        ledger = conn.execute(
            sa.select(le.account_id, le.kind, le.amount, le.balance_after, le.idempotency_key,
                      le.reference, le.created_at)
            .where(le.account_id.like(mine)).order_by(le.account_id, le.id)
        ).all()  # fmt: skip
        events = conn.execute(
            sa.select(*(c for c in usage_events.c if c.name not in ("id", "ledger_entry_id")),
                      ue.ledger_entry_id.is_not(None).label("has_entry"))
            .where(ue.account_id.like(mine)).order_by(ue.account_id, ue.request_id)
        ).all()  # fmt: skip
        return {
            "ledger": ledger,
            "events": [tuple(r) for r in events],
            "wallets": conn.execute(
                sa.select(
                    wallets.c.account_id, wallets.c.balance, wallets.c.held, wallets.c.version
                )
                .where(wallets.c.account_id.like(mine))
                .order_by(wallets.c.account_id)
            ).all(),  # fmt: skip
            "chats": conn.execute(
                sa.select(chats)
                .where(chats.c.account_id.like(mine))
                .order_by(chats.c.account_id, chats.c.chat_id)
            ).all(),  # fmt: skip
            "daily": conn.execute(
                sa.select(usage_daily)
                .where(usage_daily.c.account_id.like(mine))
                .order_by(*usage_daily.primary_key.columns)
            ).all(),  # fmt: skip
        }


def one_by_one(engine: sa.Engine, events: list[UsageEvent], **kw) -> list[tuple]:
    """The per-event path; returns (position, error type, message) of refused events."""
    refused = []
    for k, event in enumerate(events):
        try:
            record_usage(engine, event, now=NOW, **kw)
        except PricingError as exc:
            refused.append((k, type(exc).__name__, str(exc)))
    return refused


def batched(engine: sa.Engine, events, **kw) -> list[tuple]:
    result = record_usage_batch(engine, events, now=NOW, **kw)
    return [(r.position, type(r.error).__name__, str(r.error)) for r in result.rejected]


MODELS = [
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-0"),
    ("google", "gemini-2.5-pro"),
    ("deepseek", "deepseek-chat"),
    ("openai", "no-such-model"),
]
HOSTILE_IDS = ["", "   ", "a\x00b", "x" * 129, "caf\u00e9", "zero\u200bwidth", "tab\there"]


@st.composite
def usage_events_for(draw, prefix: str) -> list[UsageEvent]:
    accounts = [f"{prefix}a{i}" for i in range(3)] + [f"{prefix}ghost"]
    n = draw(st.integers(1, 25))
    events = []
    for k in range(n):
        provider, model = draw(st.sampled_from(MODELS))
        request = draw(st.sampled_from([f"r{k}", f"r{max(k - 1, 0)}", f"r{k}"]))
        if draw(st.integers(0, 9)) == 0:
            request = draw(st.sampled_from(HOSTILE_IDS))
        inp = draw(st.sampled_from([0, 1, 900, 250_000, -1, 100_000_001]))
        events.append(
            UsageEvent(
                request_id=request,
                account_id=draw(st.sampled_from(accounts)),
                user_id=draw(st.sampled_from(["u1", "u2", "caf\u00e9", "anon:s1"])),
                operation=draw(st.sampled_from(["chat_message", "code_completion", "bad op"])),
                provider=provider,
                model=model,
                input_tokens=inp,
                output_tokens=draw(st.sampled_from([0, 7, 4000])),
                cached_tokens=draw(st.sampled_from([0, 0, 1, 500])),
                chat_id=draw(st.sampled_from([None, "c1", "c2"])),
                created_at=draw(
                    st.sampled_from(
                        [
                            T0,
                            T0 + timedelta(hours=7),
                            NOW + timedelta(days=3),
                            datetime(2025, 5, 2),
                            T0 + timedelta(days=k % 3),
                        ]
                    )
                ),  # fmt: skip
                metadata=draw(st.sampled_from([None, {"k": 1}, {"big": "x" * 9000}])),
            )
        )
    return events


def open_accounts(engine: sa.Engine, prefix: str) -> None:
    for i, credit in enumerate(("0.02", "1", "50")):  # the first one runs dry quickly
        create_account(engine, f"{prefix}a{i}", name="A", opening_credit=Decimal(credit), now=T0)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # shrinking a DB test takes minutes
)
@given(data=st.data(), overdraft=st.booleans(), queue=st.booleans())
def test_a_batch_gives_the_same_ledger_rollups_and_refusals_as_recording_one_by_one(
    two_engines, monkeypatch, data, overdraft, queue
):
    monkeypatch.setenv("PRICING_UNPRICED_POLICY", "queue" if queue else "fail")
    get_settings.cache_clear()
    batch_db, single_db = two_engines
    prefix = f"p{uuid.uuid4().hex[:6]}"
    events = data.draw(usage_events_for(prefix))
    for engine in two_engines:
        open_accounts(engine, prefix)
        # a retry of an earlier import: some request ids are already recorded
        one_by_one(engine, events[:2])
    expected = one_by_one(single_db, events, allow_overdraft=overdraft)
    got = batched(batch_db, events, allow_overdraft=overdraft, chunk_size=7)
    assert got == expected
    assert state(batch_db, prefix) == state(single_db, prefix)
    assert verify_ledger(batch_db).ok


def test_a_dataframe_batch_is_recorded_like_the_same_events_one_by_one(two_engines):
    batch_db, single_db = two_engines
    events = [
        UsageEvent(f"q{k}", "fa0" if k % 3 else "fa1", "u", "chat_message", *MODELS[k % 4],
                   input_tokens=100 * k, output_tokens=k, cached_tokens=k, chat_id=f"c{k % 4}",
                   created_at=T0 + timedelta(minutes=37 * k))
        for k in range(60)
    ]  # fmt: skip
    for engine in two_engines:
        create_account(engine, "fa0", name="A", opening_credit=Decimal("0.05"), now=T0)
        create_account(engine, "fa1", name="B", opening_credit=Decimal("3"), now=T0)
    frame = pd.DataFrame([{f: getattr(e, f) for f in UsageEvent.__slots__} for e in events])
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    expected = one_by_one(single_db, events)
    assert batched(batch_db, frame, chunk_size=16) == expected
    assert expected  # the small wallet really ran dry
    assert state(batch_db, "fa") == state(single_db, "fa")
    again = record_usage_batch(batch_db, frame, now=NOW)
    assert again.recorded == 0 and again.replayed == 60 - len(expected)
    assert state(batch_db, "fa") == state(single_db, "fa")


@pytest.mark.usefixtures("trace_dir")  # the generator resamples its token counts
def test_generated_traffic_loads_through_the_batch_exactly_like_one_by_one(two_engines):
    from bench.generate import Workload, generate

    batch_db, single_db = two_engines
    workload = Workload(events=300, accounts=12, days=5, seed=7, start=T0.date())
    frame = pd.concat(list(generate(workload)), ignore_index=True)
    for engine in two_engines:
        for account in workload.account_ids():
            create_account(engine, account, name=account, opening_credit=Decimal("0.03"), now=T0)
    events = [
        UsageEvent(**{
            **{f: (None if pd.isna(v) else v) for f, v in row.items() if f != "created_at"},
            "created_at": row["created_at"].to_pydatetime(),
        })
        for row in frame.astype(object).to_dict("records")
    ]  # fmt: skip
    expected = one_by_one(single_db, events)
    assert batched(batch_db, frame, chunk_size=100) == expected
    assert {kind for _, kind, _ in expected} == {"InsufficientBalance"}  # some wallets ran dry
    assert state(batch_db, "acct-") == state(single_db, "acct-")
    assert verify_ledger(batch_db).ok and verify_ledger(single_db).ok


def test_plan_subscribers_get_their_included_messages_and_overage_in_a_batch(two_engines):
    from pricing_core.domain.plans import Plan
    from pricing_core.plans.subscriptions import SubscriptionSource, publish_plan_version
    from pricing_core.plans.switching import switch_plan

    batch_db, single_db = two_engines
    tiny = Plan("tiny", "Tiny", monthly_fee=Decimal(0), included_messages=3,
                overage_rate=Decimal("0.01"), monthly_cap=Decimal("0.045"))  # fmt: skip
    for engine in two_engines:
        for account in ("pa0", "pa1"):
            create_account(engine, account, name=account, opening_credit=Decimal(1), now=T0)
        publish_plan_version(engine, tiny, actor="t", reason="test", effective_from=T0)
        switch_plan(engine, "pa0", "tiny", source=SubscriptionSource.DEMO, now=T0)
    events = [
        UsageEvent(f"m{k}", f"pa{k % 2}", "u", "chat_message", "openai", "gpt-4o-mini",
                   input_tokens=5000, output_tokens=700, created_at=T0 + timedelta(hours=k))
        for k in range(16)
    ]  # fmt: skip
    expected = one_by_one(single_db, events)
    assert batched(batch_db, events, chunk_size=5) == expected
    assert state(batch_db, "pa") == state(single_db, "pa")
    with batch_db.connect() as conn:
        bases = set(conn.execute(sa.select(usage_events.c.charge_basis)).scalars())
    assert bases == {"included", "overage", "payg"}


def mixed_stream(seed: int, start: datetime) -> list[UsageEvent]:
    """A long stream, 7 minutes apart across a month boundary: retries of earlier
    events (some with different content), unknown models, zero and negative tokens,
    SQL-looking and non-ASCII request ids, accounts that run dry, a plan subscriber
    and an unknown account."""
    rng = random.Random(seed)
    models = [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"), ("openai", "nope")]
    events: list[UsageEvent] = []
    for n in range(260):
        if events and rng.random() < 0.12:
            earlier = rng.choice(events)
            if rng.random() < 0.3:
                earlier = replace(earlier, output_tokens=earlier.output_tokens + 1)
            events.append(earlier)
            continue
        provider, model = rng.choices(models, weights=[8, 3, 1])[0]
        names = ["rich", "poor", "dry", "plan", "ghost"] if n % 50 else ["rich"]
        account = f"mx-{rng.choice(names)}"
        events.append(
            UsageEvent(
                request_id=rng.choice([f"r{n}", f"r'{n}; DROP TABLE x;--", f"r{n}" + "\u00e9" * 5]),
                account_id=account,
                user_id=account,
                operation=rng.choice(["chat_message", "code_completion"]),
                provider=provider,
                model=model,
                input_tokens=-1 if n % 97 == 0 else rng.choice([0, rng.randint(1, 20_000), 5]),
                output_tokens=rng.randint(0, 2_000),
                chat_id=rng.choice([None, f"c{n // 7}"]),
                created_at=start + timedelta(minutes=7 * n),
            )
        )
    return events


@pytest.mark.parametrize("seed, overdraft", [(1, False), (2, False), (3, True)])
def test_a_long_mixed_stream_with_a_plan_subscriber_is_recorded_like_one_by_one(
    two_engines, seed, overdraft
):
    from pricing_core.domain.plans import Plan
    from pricing_core.plans.subscriptions import SubscriptionSource, publish_plan_version
    from pricing_core.plans.switching import switch_plan

    batch_db, single_db = two_engines
    start = NOW - timedelta(days=1, hours=1)  # the stream runs into the next month
    tiny = Plan("tiny", "Tiny", monthly_fee=Decimal(1), included_messages=10,
                overage_rate=Decimal("0.001"), monthly_cap=None)  # fmt: skip
    for engine in two_engines:
        publish_plan_version(engine, tiny, actor="t", reason="test", effective_from=start)
        for name, credit in [("rich", "1000"), ("poor", "0.05"), ("dry", "0"), ("plan", "0.01")]:
            create_account(
                engine, f"mx-{name}", name=name, opening_credit=Decimal(credit), now=start
            )
        switch_plan(engine, "mx-plan", "tiny", source=SubscriptionSource.DEMO, now=start)
    events = mixed_stream(seed, start)

    expected = one_by_one(single_db, events, allow_overdraft=overdraft)
    result = record_usage_batch(batch_db, events, allow_overdraft=overdraft, now=NOW, chunk_size=64)
    got = [(r.position, type(r.error).__name__, str(r.error)) for r in result.rejected]
    assert got == expected
    kinds = {"UnknownModel", "UnknownAccount", "DuplicateRequest", "InvalidUsage"}
    assert kinds | ({"InsufficientBalance"} if not overdraft else set()) == {k for _, k, _ in got}
    assert state(batch_db, "mx-") == state(single_db, "mx-")
    assert verify_ledger(batch_db).ok

    with batch_db.connect() as conn:
        ue = usage_events.c
        count, cost, price = conn.execute(
            sa.select(sa.func.count(), sa.func.sum(ue.provider_cost), sa.func.sum(ue.price))
        ).one()
        bases = set(conn.execute(sa.select(ue.charge_basis).distinct()).scalars())
        dry = conn.execute(sa.select(wallets.c.balance).where(wallets.c.account_id == "mx-dry"))
        dry_balance = dry.scalar_one()
    assert (result.recorded, result.provider_cost, result.price) == (count, cost, price)
    assert result.replayed > 0  # retries with the same content
    assert result.recorded + result.replayed + len(result.rejected) == len(events)
    assert {"included", "overage", "payg"} <= bases
    assert (dry_balance < 0) is overdraft


def without_hold_columns(snapshot: dict) -> dict:
    """A `state` without what only a held call has: the event's hold columns and the
    wallet version (placing a hold moves it)."""
    names = [c.name for c in usage_events.c if c.name not in ("id", "ledger_entry_id")]
    drop = {names.index("hold_id"), names.index("exceeded_hold")}
    return snapshot | {
        "events": [
            tuple(v for k, v in enumerate(row) if k not in drop) for row in snapshot["events"]
        ],
        "wallets": [(w.account_id, w.balance, w.held) for w in snapshot["wallets"]],
    }


def test_settling_held_calls_records_what_a_batch_of_the_same_calls_records(two_engines):
    batch_db, settle_db = two_engines
    prefix = f"s{uuid.uuid4().hex[:6]}"
    for engine in two_engines:
        open_accounts(engine, prefix)
    events = [
        UsageEvent(f"h{k}", f"{prefix}a2", f"{prefix}a2", "chat_message", *MODELS[k % 4],
                   input_tokens=900 + 37 * k, output_tokens=120 + 11 * k,
                   cached_tokens=50 if k % 3 == 0 else 0, chat_id="c1" if k % 2 else None,
                   created_at=NOW)
        for k in range(8)
    ]  # fmt: skip
    for e in events:
        hold = authorize(
            settle_db, account_id=e.account_id, user_id=e.user_id, model=e.model,
            provider=e.provider, max_output_tokens=4000, request_id=e.request_id,
            estimated_input_tokens=e.input_tokens, chat_id=e.chat_id, now=NOW,
        )  # fmt: skip
        settled = settle(
            settle_db, hold, input_tokens=e.input_tokens, output_tokens=e.output_tokens,
            cached_tokens=e.cached_tokens, now=NOW,
        )  # fmt: skip
        assert not settled.usage.replayed and settled.usage.price > 0
    assert batched(batch_db, events) == []
    assert without_hold_columns(state(settle_db, prefix)) == without_hold_columns(
        state(batch_db, prefix)
    )
    assert verify_ledger(settle_db).ok


def test_with_pricing_switched_off_a_batch_records_what_one_by_one_records(
    two_engines, monkeypatch
):
    monkeypatch.setenv("PRICING_ENABLE_PRICING", "false")
    get_settings.cache_clear()
    batch_db, single_db = two_engines
    prefix = f"f{uuid.uuid4().hex[:6]}"
    events = [
        UsageEvent(f"q{k}", f"{prefix}a{k % 3}", "anon:x" if k % 4 == 0 else "u", "chat_message",
                   *MODELS[k % 4], 1000 + k, 200, chat_id="c", created_at=T0 + timedelta(hours=k))
        for k in range(9)
    ]  # fmt: skip
    for engine in two_engines:
        open_accounts(engine, prefix)
    assert one_by_one(single_db, events) == batched(batch_db, events) == []
    snapshot = state(batch_db, prefix)
    assert snapshot == state(single_db, prefix)
    assert snapshot["ledger"] == [] or all(r.kind != "usage" for r in snapshot["ledger"])
