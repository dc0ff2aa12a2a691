"""Price book edits: never retroactive, later events use them, the cache is cleared,
the reprice preview equals an independent per-event recomputation, history + audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
import sqlalchemy as sa
from genai_prices import Usage, calc_price

from pricing_core.adapters.audit import list_audit
from pricing_core.admin import prices as ap
from pricing_core.admin import reprice
from pricing_core.analytics import prices as price_views
from pricing_core.analytics.public_prices import price_list
from pricing_core.catalog.price_book import get_price_book
from pricing_core.domain.costing import TokenRates
from pricing_core.domain.errors import InvalidUsage, UnknownModel
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.metering.record import record_usage
from tests.admin_support import ADMIN, MEMBER, seed_accounts, seed_trace

NANO = Decimal("1e-9")
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def listed_price(
    model: str, provider: str, tokens: tuple[int, int], at: datetime, markup: str
) -> Decimal:
    exact = calc_price(
        Usage(input_tokens=tokens[0], output_tokens=tokens[1]),
        model,
        provider_id=provider,
        genai_request_timestamp=at,
    ).total_price
    return (exact * Decimal(markup)).quantize(NANO, ROUND_HALF_EVEN)


def override_price(tokens: tuple[int, int], rates: tuple[str, str], markup: str) -> Decimal:
    base = (tokens[0] * Decimal(rates[0]) + tokens[1] * Decimal(rates[1])) / 1_000_000
    return (base * Decimal(markup)).quantize(NANO, ROUND_HALF_EVEN)


def usage(request_id: str, at: datetime, tokens=(1200, 300)) -> UsageEvent:
    return UsageEvent(
        request_id,
        "alice",
        "alice",
        "chat_message",
        "openai",
        "gpt-4o",
        tokens[0],
        tokens[1],
        created_at=at,
    )


def stored_price(engine, request_id: str) -> Decimal:
    with engine.connect() as conn:
        nanos = conn.execute(
            sa.text("SELECT price FROM usage_events WHERE request_id = :r"), {"r": request_id}
        ).scalar_one()
    return Decimal(nanos) * NANO


def test_a_future_override_leaves_past_charges_and_prices_events_after_its_date(engine):
    seed_accounts(engine)
    before = record_usage(engine, usage("past", NOW - timedelta(days=2)), now=NOW)
    get_price_book(engine)  # warm the cache: the edit must clear it
    starts = NOW + timedelta(days=3)
    change = ap.propose_price("openai", "gpt-4o", markup="1.5", input_mtok="2", output_mtok="8")
    ap.set_model_price(engine, ADMIN, change, effective_from=starts, reason="new deal", now=NOW)

    assert (
        stored_price(engine, "past")
        == before.price
        == listed_price("gpt-4o", "openai", (1200, 300), NOW - timedelta(days=2), "1.25")
    )
    later = NOW + timedelta(days=4)
    just_before = record_usage(engine, usage("before", starts - timedelta(seconds=1)), now=later)
    after = record_usage(engine, usage("after", starts), now=later)
    assert just_before.price == listed_price("gpt-4o", "openai", (1200, 300), starts, "1.25")
    assert after.price == override_price((1200, 300), ("2", "8"), "1.5") == Decimal("0.00720")
    assert "mp:" in after.price_version and "mp:" not in just_before.price_version
    assert verify_ledger(engine).ok


def test_a_past_effective_from_is_refused_unless_explicitly_allowed(engine):
    seed_accounts(engine)
    change = ap.propose_price("openai", "gpt-4o", markup="2")
    with pytest.raises(InvalidUsage, match="not retroactive"):
        ap.set_model_price(
            engine, ADMIN, change, effective_from=NOW - timedelta(minutes=1), reason="oops", now=NOW
        )
    assert price_views.price_history(engine, ADMIN) == []
    ap.set_model_price(
        engine,
        ADMIN,
        change,
        effective_from=NOW - timedelta(days=1),
        reason="correction",
        allow_retroactive=True,
        now=NOW,
    )
    assert len(price_views.price_history(engine, ADMIN)) == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"markup": "0"}, InvalidUsage, "markup must be above 0"),
        ({"markup": "-1"}, InvalidUsage, "markup"),
        ({"markup": "101"}, InvalidUsage, "at most 100"),
        ({"markup": 1.5}, InvalidUsage, "float"),
        ({"markup": "1", "input_mtok": "2"}, InvalidUsage, "both an input and an output"),
        ({"markup": "1", "input_mtok": "-2", "output_mtok": "1"}, InvalidUsage, "input rate"),
        ({"markup": "1", "input_mtok": "NaN", "output_mtok": "1"}, InvalidUsage, "finite"),
        ({"markup": "1", "model": "no-such-model"}, UnknownModel, "no-such-model"),
    ],
)
def test_a_bad_proposed_price_is_refused(kwargs, error, match):
    model = kwargs.pop("model", "gpt-4o")
    with pytest.raises(error, match=match):
        ap.propose_price("openai", model, **kwargs)


def test_the_reprice_preview_equals_a_per_event_recomputation_on_the_real_trace(engine):
    seed_trace(engine, rows=900)
    now = datetime(2023, 11, 20, tzinfo=UTC)
    changes = [
        ap.propose_price("openai", "gpt-4o", markup="1.4"),
        ap.propose_price(
            "anthropic",
            "claude-3-5-haiku-latest",
            markup="1.1",
            input_mtok="0.7",
            output_mtok="3.3",
        ),
    ]
    preview = reprice.reprice_preview(engine, ADMIN, changes, days=30, now=now)

    with engine.connect() as conn:
        events = conn.execute(
            sa.text(
                "SELECT provider, model, input_tokens, output_tokens, created_at, price "
                "FROM usage_events WHERE charge_basis = 'payg'"
            )
        ).all()
    want: dict[str, list] = {
        "gpt-4o": [0, Decimal(0), Decimal(0)],
        "claude-3-5-haiku-latest": [0, Decimal(0), Decimal(0)],
    }
    for provider, model, tin, tout, created_at, price in events:
        if model not in want:
            continue
        at = created_at if isinstance(created_at, datetime) else datetime.fromisoformat(created_at)
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
        new = (
            listed_price(model, provider, (tin, tout), at, "1.4")
            if model == "gpt-4o"
            else override_price((tin, tout), ("0.7", "3.3"), "1.1")
        )
        want[model][0] += 1
        want[model][1] += Decimal(price) * NANO
        want[model][2] += new
    got = {r.model: [r.requests, r.current, r.proposed] for r in preview.rows}
    assert got == want
    assert want["gpt-4o"][0] == 300 and want["gpt-4o"][2] > want["gpt-4o"][1]
    assert preview.delta == sum(w[2] - w[1] for w in want.values())
    # outside the window nothing is repriced
    late = reprice.reprice_preview(engine, ADMIN, changes, days=30, now=now + timedelta(days=60))
    assert late.current == late.proposed == 0


def test_price_history_and_audit_say_who_changed_what(engine):
    seed_accounts(engine)
    ap.set_model_price(
        engine,
        ADMIN,
        ap.propose_price("openai", "gpt-4o", markup="1.3"),
        effective_from=NOW + timedelta(hours=1),
        reason="raise margin",
        now=NOW,
    )
    ap.set_operation_price(
        engine,
        ADMIN,
        "image_generation",
        price="0.04",
        provider_cost="0.02",
        effective_from=NOW,
        reason="launch images",
        now=NOW,
    )
    history = price_views.price_history(engine, ADMIN)
    assert sorted((h.subject, h.actor, h.reason) for h in history) == [
        ("openai/gpt-4o", "ops@example.com", "raise margin"),
        ("operation:image_generation", "ops@example.com", "launch images"),
    ]
    audits = {a.action: a for a in list_audit(engine, ADMIN, action_prefix="price.")}
    model = audits["price.model"]
    assert model.actor == "ops@example.com" and model.created_at == NOW
    assert model.before["markup"] == "1.25" and model.after["markup"] == "1.3"
    assert model.reason == "raise margin" and model.target == "openai/gpt-4o"
    assert audits["price.operation"].after["price"] == "0.04"


def test_a_fixed_operation_price_charges_later_calls(engine):
    seed_accounts(engine)
    ap.set_operation_price(
        engine,
        ADMIN,
        "image_generation",
        price="0.04",
        provider_cost="0.02",
        effective_from=NOW,
        reason="launch",
        now=NOW,
    )
    event = UsageEvent(
        "img",
        "alice",
        "alice",
        "image_generation",
        "openai",
        "gpt-4o",
        0,
        0,
        created_at=NOW + timedelta(minutes=1),
    )
    result = record_usage(engine, event, now=NOW + timedelta(minutes=2))
    assert (result.price, result.provider_cost) == (Decimal("0.04"), Decimal("0.02"))
    [view] = price_views.operation_price_list(engine, ADMIN, now=NOW + timedelta(minutes=2))
    assert (view.operation, view.price, view.scheduled) == (
        "image_generation",
        Decimal("0.04"),
        False,
    )


def test_the_price_book_shows_list_markup_and_effective_prices_of_models_in_use(engine):
    seed_trace(engine, rows=30)
    ap.set_model_price(
        engine,
        ADMIN,
        ap.propose_price("openai", "gpt-4o", markup="2"),
        effective_from=NOW + timedelta(days=1),
        reason="later",
        now=NOW,
    )
    views = {v.model: v for v in price_views.price_book(engine, ADMIN, now=NOW)}
    assert set(views) == {"gpt-4o-mini", "gpt-4o", "claude-3-5-haiku-latest"}
    mini = views["gpt-4o-mini"]
    assert mini.listed == TokenRates(Decimal("0.15"), Decimal("0.6"), Decimal("0.075"))
    assert mini.markup == Decimal("1.25") and mini.effective_from is None
    assert mini.effective == TokenRates(Decimal("0.1875"), Decimal("0.75"), Decimal("0.09375"))
    [scheduled] = views["gpt-4o"].scheduled
    assert scheduled.markup == 2 and views["gpt-4o"].markup == Decimal("1.25")
    stale = price_views.catalog_staleness(engine, ADMIN)
    assert stale.last_override_at == NOW
    assert stale.snapshot_prices_as_of <= datetime.now(UTC).date()


def test_the_public_price_list_ranks_by_the_30_whole_days_before_today(engine):
    seed_accounts(engine)
    calls = [  # (model, days before NOW, calls)
        ("gpt-4o", 3, 2), ("gpt-4o-mini", 5, 3), ("gpt-4o", 31, 5),  # 31: outside the window
        ("gpt-4o", 0, 4),  # today: not counted until tomorrow
        ("gpt-4.1-nano", 0, 1),  # first used today: listed, last
    ]  # fmt: skip
    n = 0
    for model, days, count in calls:
        for _ in range(count):
            n += 1
            event = UsageEvent(f"r{n}", "alice", "alice", "chat_message", "openai", model, 100, 10,
                               created_at=NOW - timedelta(days=days))  # fmt: skip
            record_usage(engine, event, now=NOW)
    by_day: dict[str, int] = {}  # the window's calls per model, counted here
    for model, days, count in calls:
        if 1 <= days <= 30:
            by_day[model] = by_day.get(model, 0) + count
    ranked = sorted(by_day, key=lambda m: -by_day[m])
    listed = [m.model for m in price_list(engine, MEMBER, now=NOW).models]
    assert ranked == ["gpt-4o-mini", "gpt-4o"]
    assert listed == [*ranked, "gpt-4.1-nano"]
    # the next day the window moves: today's 4 calls of gpt-4o now count (2 + 4 > 3)
    tomorrow = [m.model for m in price_list(engine, MEMBER, now=NOW + timedelta(days=1)).models]
    assert tomorrow == ["gpt-4o", "gpt-4o-mini", "gpt-4.1-nano"]
