"""Demo data: deterministic, consistent ledger, the promised variety."""

import math
import random
import statistics
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text

from pricing_core.demo import accounts as demo_accounts
from pricing_core.demo import seed as demo
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import get_wallet
from pricing_core.limits.rules import list_limits

NOW = datetime(2025, 6, 15, 18, 30, tzinfo=UTC)


def test_the_same_seed_plans_the_same_data_and_another_seed_differs(sqlite_url):
    from pricing_core.adapters.storage import make_engine

    engine = make_engine(sqlite_url)
    demo.seed_prices(engine, now=NOW)
    first = demo.plan_demo(engine, seed=0, now=NOW)
    again = demo.plan_demo(engine, seed=0, now=NOW)
    other = demo.plan_demo(engine, seed=1, now=NOW)
    assert first.events == again.events and first.credits == again.credits
    assert first.titles == again.titles
    assert [e for _, e in first.events] != [e for _, e in other.events]
    engine.dispose()


@pytest.mark.parametrize(
    ("fit", "median"),
    [
        (demo_accounts.CONVERSATION_INPUT, 760),
        (demo_accounts.CONVERSATION_OUTPUT, 151),
        (demo_accounts.CODE_OUTPUT, 16),
    ],
)
def test_token_draws_follow_the_fitted_lognormal(fit, median):
    rng = random.Random(7)
    draws = [fit.draw(rng) for _ in range(4000)]
    assert round(math.exp(fit.mu)) == median
    assert abs(statistics.median(draws) - median) / median < 0.08
    assert min(draws) >= fit.low and max(draws) <= fit.high


def test_the_demo_seeds_a_consistent_ledger_with_every_kind_of_account(sqlite_url):
    # SQLite only: the demo writes through metering, which is tested on both back
    # ends; seeding ~1,100 events on PostgreSQL would add a minute to the suite.
    from pricing_core.adapters.storage import make_engine

    engine = make_engine(sqlite_url)
    summary = demo.seed_demo(engine, seed=0, now=NOW)
    assert summary.refused == 0
    assert verify_ledger(engine).ok
    [defaults] = list_limits(engine)  # the `standard` preset, as the operator's defaults
    assert (defaults.account_id, defaults.max_total_tokens, defaults.daily_cost_cap) == (
        "",
        12_000,
        Decimal(5),
    )
    with engine.connect() as conn:

        def rows(sql):
            return conn.execute(text(sql)).all()

        per_account = dict(
            rows("SELECT account_id, COUNT(*) FROM usage_events GROUP BY account_id")
        )
        chats = dict(rows("SELECT account_id, COUNT(*) FROM chats GROUP BY account_id"))
        users = dict(rows("SELECT account_id, COUNT(*) FROM users GROUP BY account_id"))
        operations = {r[0] for r in rows("SELECT DISTINCT operation FROM usage_events")}
        image_prices = {
            r[0]
            for r in rows(
                "SELECT DISTINCT price FROM usage_events "
                "WHERE operation = 'image_generation' AND model = 'gpt-image-1'"
            )
        }
        # the studio's calls: (operation, model) -> {(quantity, price in nano-USD)}
        studio = rows(
            "SELECT operation, model, quantity, price FROM usage_events WHERE account_id = 'pixel'"
        )
        kinds = {r[0] for r in rows("SELECT DISTINCT kind FROM ledger_entries")}
        span = rows("SELECT MIN(day), MAX(day) FROM usage_daily")[0]
    assert summary.accounts == 13 and summary.events == sum(per_account.values())
    assert users["northwind"] == 4
    assert "noah" not in per_account  # the new account has no usage yet
    # several chats each, over the 90 days (Tom's disputed purchase cut his use short)
    assert all(chats[a.id] >= 3 for a in demo_accounts.ACCOUNTS if a.history_days == 90)
    assert chats["tom"] >= 1
    heavy = min(
        per_account[a.id]
        for a in demo_accounts.ACCOUNTS
        if a.intensity == "heavy" and a.history_days == 90
    )
    light = max(per_account.get(a.id, 0) for a in demo_accounts.ACCOUNTS if a.intensity == "light")
    assert heavy > 3 * light
    assert operations == {
        "chat_message", "code_completion", "image_generation",
        "video_generation", "style_transfer", "meme_generation",
    }  # fmt: skip
    assert image_prices == {40_000_000}  # $0.04 fixed, in nano-USD
    # the source's credits per unit at 10 credits per USD (1 credit = 100,000,000 nano-USD)
    credits = {"dall-e-3": 10, "stable-diffusion": 3, "ghibli": 8, "cartoon": 6, "meme": 5,
               "veo-3": 50}  # fmt: skip
    assert {q for *_, q, _p in studio} == {1, 2, 3, 4}
    assert all(p == credits[m] * q * 100_000_000 for _o, m, q, p in studio), studio[:5]
    assert kinds == {"grant", "purchase", "usage", "bonus", "adjustment", "refund"}
    assert str(span[0]) == "2025-03-18" and str(span[1]) == "2025-06-15"  # 90 days up to now
    assert Decimal("0.10") <= get_wallet(engine, "sofia").balance < Decimal("1.00")
    assert Decimal(0) <= get_wallet(engine, "kenji").balance < Decimal("0.10")
    assert get_wallet(engine, "tom").balance < 0
    # Revenue's default window (the last 30 days) tells a believable story: packs were
    # sold in it, and the one dispute sits days after the sale it takes back.
    with engine.connect() as conn:
        moves = conn.execute(
            text(
                "SELECT account_id, kind, amount, created_at FROM ledger_entries "
                "WHERE kind IN ('purchase', 'refund') ORDER BY created_at"
            )
        ).all()
    window_start = NOW - timedelta(days=30)
    recent = [m for m in moves if _utc(m.created_at) >= window_start]
    assert sum(m.amount for m in recent if m.kind == "purchase") >= 100 * 10**9  # nano-USD
    [refund] = [m for m in moves if m.kind == "refund"]
    sale = max(
        (m for m in moves if m.kind == "purchase" and m.account_id == refund.account_id),
        key=lambda m: _utc(m.created_at),
    )
    assert sale.amount == -refund.amount
    assert window_start <= _utc(sale.created_at) < _utc(refund.created_at)
    assert _utc(refund.created_at) - _utc(sale.created_at) <= timedelta(days=10)
    with pytest.raises(demo_accounts.DatabaseNotEmpty):
        demo.seed_demo(engine, seed=0, now=NOW)


def _utc(stamp: object) -> datetime:
    """A timestamp read back from SQLite (naive UTC text) as an aware datetime."""
    return datetime.fromisoformat(str(stamp)).replace(tzinfo=UTC)
