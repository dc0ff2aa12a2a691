"""Hostile inputs to record_usage, record_usage_batch and the trace importer: each gets a
clear PricingError (or a row report) and nothing partial is written."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from pricing_core.adapters.schema import chats, ledger_entries, usage_daily, usage_events, wallets
from pricing_core.domain.errors import PricingError
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account
from pricing_core.metering.batch import record_usage_batch
from pricing_core.metering.importers import DEFAULT_MODEL_MIX, import_azure_trace
from pricing_core.metering.record import UsageResult, record_usage
from pricing_core.metering.trace import InvalidImport, RowOutcome, TraceMapping, parse_model_mix

NOW = datetime(2025, 3, 2, tzinfo=UTC)
AT = datetime(2025, 3, 1, 12, tzinfo=UTC)
SQL = ["'; DROP TABLE usage_events;--", 'x" OR "1"="1', "%s%s%(x)s", "a\\'b", "?", ":id"]

hostile_text = st.one_of(
    st.just(""),
    st.just(" "),
    st.just("x" * 10_240),
    st.sampled_from(SQL),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=200),
)
hostile_tokens = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=0, max_value=5_000),
    st.sampled_from([math.nan, math.inf, -math.inf, 1.5, -0.0, True, None]),
    st.sampled_from([Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("1.5")]),
    st.sampled_from(["12", "NaN", "", "1e3", "-1"]),
)
models = st.one_of(
    st.sampled_from(
        [
            ("openai", "gpt-4o-mini"),
            ("anthropic", "claude-haiku-4-5"),
            ("google", "gemini-2.5-flash"),
        ]
    ),
    st.tuples(st.sampled_from(["openai", "nope", ""]), st.one_of(st.sampled_from(SQL), st.text())),
)
timestamps = st.one_of(
    st.just(AT),
    st.just(None),
    st.just(datetime(2025, 3, 1, 12)),  # naive
    st.just(datetime(1970, 1, 1, tzinfo=UTC)),
    st.just(NOW + timedelta(days=400)),
    st.just("2025-03-01T12:00:00Z"),
)


@st.composite
def hostile_events(draw: st.DrawFn) -> UsageEvent:
    provider, model = draw(models)
    return UsageEvent(
        request_id=draw(st.one_of(hostile_text, st.uuids().map(str))),
        account_id=draw(st.sampled_from(["acct", "acct", "ghost", "'; DROP TABLE wallets;--"])),
        user_id=draw(st.one_of(st.just("acct"), hostile_text)),
        operation=draw(st.one_of(st.just("chat_message"), hostile_text)),
        provider=provider,
        model=model,
        input_tokens=draw(hostile_tokens),
        output_tokens=draw(hostile_tokens),
        cached_tokens=draw(st.one_of(st.just(0), hostile_tokens)),
        chat_id=draw(st.one_of(st.none(), hostile_text)),
        created_at=draw(timestamps),
        metadata=draw(
            st.one_of(
                st.none(),
                st.just({"k": "v"}),
                st.just({"nan": math.nan}),
                st.just({"big": "x" * 10_000}),
                st.just(["not", "a", "mapping"]),
            )
        ),
    )


def snapshot(engine) -> tuple:
    with engine.connect() as conn:
        counts = tuple(
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (usage_events, ledger_entries, chats, usage_daily)
        )
        balances = tuple(conn.execute(select(wallets.c.balance).order_by(wallets.c.account_id)))
    return counts, balances


HYPO = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def funded(sqlite_url, monkeypatch):
    from pricing_core.adapters import storage
    from pricing_core.config import get_settings

    monkeypatch.setenv("PRICING_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    engine = storage.make_engine(sqlite_url)
    create_account(engine, "acct", name="A", opening_credit=Decimal("5"), now=AT)
    yield engine
    engine.dispose()


@HYPO
@given(event=hostile_events())
def test_a_hostile_event_is_recorded_whole_or_refused_with_a_pricing_error(funded, event):
    before = snapshot(funded)
    try:
        result = record_usage(funded, event, now=NOW)
    except PricingError as exc:
        assert str(exc)  # a message naming the problem
        assert snapshot(funded) == before
        return
    assert isinstance(result, UsageResult)
    (events, entries, _, _), _ = snapshot(funded)
    assert events in (before[0][0], before[0][0] + 1)  # a replay writes nothing
    assert entries - before[0][1] == (events - before[0][0]) * (result.price > 0)


@HYPO
@given(batch=st.lists(hostile_events(), min_size=1, max_size=8))
def test_a_hostile_batch_records_the_good_events_and_nothing_of_the_bad(funded, batch):
    (events_before, _, _, _), _ = snapshot(funded)
    result = record_usage_batch(funded, batch, now=NOW)
    assert result.recorded + result.replayed + len(result.rejected) == len(batch)
    positions = [r.position for r in result.rejected]
    assert positions == sorted(set(positions))  # each refused event once, in batch order
    for r in result.rejected:
        assert isinstance(r.error, PricingError) and str(r.error)
        assert r.request_id == batch[r.position].request_id
    (events_after, _, _, _), _ = snapshot(funded)
    assert events_after - events_before == result.recorded
    assert verify_ledger(funded).ok


@pytest.mark.postgres
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(event=hostile_events())
def test_a_hostile_event_on_postgresql_is_recorded_whole_or_refused(pg_engine, event):
    create_account(pg_engine, "acct", name="A", opening_credit=Decimal("5"), now=AT)
    before = snapshot(pg_engine)
    try:
        record_usage(pg_engine, event, now=NOW)
    except PricingError:
        assert snapshot(pg_engine) == before
    assert verify_ledger(pg_engine).ok


# ---------------------------------------------------------------- the importer

HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens"
GOOD_ROW = st.builds(
    lambda s, i, o: f"2023-11-16 18:{s // 60:02d}:{s % 60:02d}.1234567,{i},{o}",
    st.integers(0, 3599),
    st.integers(0, 20_000),
    st.integers(0, 3_000),
)
field_text = st.one_of(
    st.sampled_from(["-1", "1.5", "NaN", "inf", "1e3", "", " ", "0x10", "١٢", "99999999999"]),
    st.sampled_from([s.replace('"', "") for s in SQL]),
    st.just("9" * 10_240),
    st.text(
        alphabet=st.characters(blacklist_characters='"\r\n', blacklist_categories=["Cs"]),
        max_size=30,
    ),
)
BAD_ROW = st.one_of(
    st.builds(lambda t, i, o: f"{t},{i},{o}", field_text, field_text, field_text),
    st.builds(lambda t: f"2023-11-16 18:00:00.0000000,{t}", field_text),
    st.builds(
        lambda i, o: f"2023-11-16 18:00:00.0000000,{i},{o},extra",
        st.integers(0, 9),
        st.integers(0, 9),
    ),
    st.sampled_from(["2023-02-30 10:00:00,1,1", "2023-11-16T18:00:00,1,1", "1,1,1", ",,"]),
)


@HYPO
@given(rows=st.lists(st.tuples(st.booleans(), GOOD_ROW, BAD_ROW), min_size=1, max_size=12))
def test_hostile_trace_rows_are_reported_by_line_and_the_good_ones_imported(
    funded, tmp_path_factory, rows
):
    lines = [good if keep else bad for keep, good, bad in rows]
    path = Path(tmp_path_factory.mktemp("trace")) / "t.csv"
    path.write_text("\n".join([HEADER, *lines]), encoding="utf-8")
    (events_before, _, _, _), _ = snapshot(funded)
    summary = import_azure_trace(
        funded,
        path,
        TraceMapping(operation="chat_message", users=3, models=parse_model_mix(DEFAULT_MODEL_MIX)),
        allow_overdraft=True,
        now=NOW,
    )
    good_lines = {n + 2 for n, (keep, _, _) in enumerate(rows) if keep}
    bad_lines = {p.line for p in summary.problems if p.outcome is RowOutcome.SKIPPED}
    # a generated "bad" row may happen to be a valid one (e.g. "1,1,1" is not): the
    # reported lines are exactly the rows that are not well-formed
    assert good_lines.isdisjoint(bad_lines)
    assert summary.rows == len(lines)
    assert summary.imported + summary.already_present + summary.skipped == len(lines)
    (events_after, _, _, _), _ = snapshot(funded)
    assert events_after - events_before == summary.imported
    assert verify_ledger(funded).ok


def test_a_file_that_is_not_utf8_is_refused_before_anything_is_written(funded, tmp_path):
    path = tmp_path / "t.csv"
    good = b"2023-11-16 18:00:00.0,1,1\n"
    path.write_bytes(HEADER.encode() + b"\n" + good * 3 + b"\xff\xfe,1,1\n" + good * 900)
    before = snapshot(funded)
    with pytest.raises(InvalidImport, match=r"t\.csv line 5: unreadable: not UTF-8"):
        import_azure_trace(
            funded,
            path,
            TraceMapping(
                operation="chat_message", users=1, models=parse_model_mix("openai:gpt-4o-mini")
            ),
            now=NOW,
        )
    assert snapshot(funded) == before


@pytest.mark.parametrize("operation", ["", "x" * 10_240, "'; DROP TABLE chats;--", "chat message"])
def test_a_hostile_operation_name_is_refused_before_anything_is_written(
    funded, tmp_path, operation
):
    path = tmp_path / "t.csv"
    path.write_text(f"{HEADER}\n2023-11-16 18:00:00.0,10,10\n", encoding="utf-8")
    before = snapshot(funded)
    with pytest.raises(InvalidImport, match="operation"):
        import_azure_trace(
            funded,
            path,
            TraceMapping(
                operation=operation, users=1, models=parse_model_mix("openai:gpt-4o-mini")
            ),
            now=NOW,
        )
    assert snapshot(funded) == before
