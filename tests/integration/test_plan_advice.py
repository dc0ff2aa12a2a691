"""The recommendation's per-month costs equal an independent recomputation from the
recorded usage events (both back ends), and the CLI prints them as the issue's JSON."""

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from genai_prices import Usage, calc_price
from sqlalchemy import insert, select
from typer.testing import CliRunner

from pricing_core.adapters.schema import usage_events
from pricing_core.adapters.schema_billing import plans
from pricing_core.admin.prices import set_operation_price
from pricing_core.cli.main import app
from pricing_core.config import get_settings
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.wallets import create_account
from pricing_core.metering.batch import record_usage_batch
from pricing_core.plans.advice import advise_plan, monthly_usage_on, recommendation_json
from pricing_core.plans.subscriptions import SubscriptionSource
from pricing_core.plans.switching import switch_plan

ZONE = "America/New_York"
NOW = datetime(2025, 4, 11, 4, tzinfo=UTC)  # April 11, 00:00 in New York: 10 of 30 days
SEEDED = {  # the migration's plans, restated: fee, included, overage, cap
    "starter": (D("5"), 1000, D("0.00015"), D("50")),
    "professional": (D("15"), 10_000, D("0.0001"), D("200")),
}
TINY = (D("1"), 5, D("0.01"), D("1.2"))
ADMIN = Principal("ops", None, role="admin")


@pytest.fixture
def usage(engine, monkeypatch):
    """light: a few cheap messages; heavy: many large gpt-4o messages, and on the
    'tiny' plan since March 1st (New York), so its March/April events were charged by
    the plan, not at their pay-as-you-go prices."""
    monkeypatch.setenv("PRICING_TIMEZONE", ZONE)
    get_settings.cache_clear()
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(plans).values(
                code="tiny",
                version=1,
                name="Tiny",
                monthly_fee=TINY[0],
                included_messages=TINY[1],
                overage_rate=TINY[2],
                monthly_cap=TINY[3],
                position=0,
                active=True,
                effective_from=start,
                created_by="test",
                created_at=start,
            )
        )
    for account in ("light", "heavy"):
        create_account(engine, account, name=account, opening_credit=D("50"), now=start)
    switch_plan(
        engine,
        "heavy",
        "tiny",
        source=SubscriptionSource.DEMO,
        now=datetime(2025, 3, 1, 5, tzinfo=UTC),
    )
    events = []
    # light: January 1 (2025-02-01 03:00 UTC is still January 31 in New York, outside
    # the period), February 3, March 0 (a month with zero usage), April 1 so far.
    for i, at in enumerate(
        [
            "2025-02-01T03:00",
            "2025-02-10T12:00",
            "2025-02-27T12:00",
            "2025-02-28T12:00",
            "2025-04-05T12:00",
        ]
    ):
        events.append(event("light", i, datetime.fromisoformat(at + "+00:00"), 300, 40))
    # heavy: 40 in February, 30 in March, 12 in April so far
    for month, count in (("02", 40), ("03", 30), ("04", 12)):
        for i in range(count):
            at = datetime.fromisoformat(f"2025-{month}-02T06:00+00:00") + timedelta(hours=i * 5)
            events.append(event("heavy", f"{month}-{i}", at, 4000 + i, 900 + i))
    result = record_usage_batch(engine, events, allow_overdraft=True)
    assert not result.rejected, result.rejected
    assert result.recorded == len(events)
    return engine


def event(account, i, at, input_tokens, output_tokens):
    return UsageEvent(
        request_id=f"{account}-{i}",
        account_id=account,
        user_id=account,
        operation="chat_message",
        provider="openai",
        model="gpt-4o",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        created_at=at,
    )


def payg_price(row) -> D:
    """genai-prices x the default markup 1.25, rounded once half-even to the nano-USD."""
    exact = calc_price(
        Usage(input_tokens=row.input_tokens, output_tokens=row.output_tokens),
        row.model,
        provider_id=row.provider,
        genai_request_timestamp=row.created_at,
    ).total_price
    return (exact * D("1.25")).quantize(D("1e-9"), ROUND_HALF_EVEN)


def plan_cost(terms, messages: int) -> D:
    fee, included, rate, cap = terms
    return min(fee + max(0, messages - included) * rate, cap)


def recompute(engine, account: str) -> list[dict]:
    """Per New York calendar month, from the exported events only."""
    with engine.connect() as conn:
        rows = conn.execute(select(usage_events).where(usage_events.c.account_id == account)).all()
    zone = ZoneInfo(ZONE)
    messages, payg = defaultdict(int), defaultdict(D)
    for row in rows:
        month = row.created_at.astimezone(zone).strftime("%Y-%m")
        messages[month] += 1
        payg[month] += payg_price(row)
    months = []
    for month, factor, projected in (
        ("2025-02", 1, False),
        ("2025-03", 1, False),
        ("2025-04", 3, True),
    ):
        n, cost = messages[month] * factor, payg[month] * factor
        costs = {"payg": cost} | {c: plan_cost(t, n) for c, t in SEEDED.items()}
        costs["tiny"] = plan_cost(TINY, n)
        months.append({"month": month, "projected": projected, "messages": n, "costs_usd": costs})
    return months


@pytest.mark.parametrize("account", ["light", "heavy"])
def test_per_month_costs_equal_a_recomputation_from_the_usage_events(usage, account):
    advice = advise_plan(usage, Principal(account, account), months=2, now=NOW)
    expected = recompute(usage, account)
    got = [
        {
            "month": m.month,
            "projected": m.projected,
            "messages": m.messages,
            "costs_usd": dict(m.costs),
        }
        for m in advice.recommendation.months
    ]
    assert got == expected
    totals = {
        code: sum(m["costs_usd"][code] for m in expected) for code in expected[0]["costs_usd"]
    }
    cheapest = min(totals.values())
    assert advice.recommendation.totals[advice.recommendation.recommended] == cheapest
    current = "tiny" if account == "heavy" else "payg"
    assert advice.current.code == current
    assert advice.recommendation.savings_total == totals[current] - cheapest


def test_the_heavy_accounts_history_is_replayed_at_pay_as_you_go_prices_not_plan_charges(usage):
    advice = advise_plan(usage, Principal("heavy", "heavy"), months=2, now=NOW)
    march = advice.history[1]
    assert march.month == "2025-03" and march.messages == 30
    assert march.payg_cost > D("0.5")  # 30 x ~$0.025, while the plan charged 25 x $0.01
    assert advice.this_month.base == D("1") and advice.this_month.overage == D("0.07")


def test_the_cli_prints_the_recommendation_as_the_issues_json(usage):
    result = CliRunner().invoke(
        app,
        [
            "plans",
            "recommend",
            "--account",
            "heavy",
            "--months",
            "2",
            "--json",
            "--as-of",
            NOW.isoformat(),
        ],
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output, parse_float=lambda s: pytest.fail(f"float {s}"))
    assert list(printed) == [
        "account_id",
        "current_plan",
        "recommended_plan",
        "savings_per_month_usd",
        "months",
    ]
    expected = recompute(usage, "heavy")
    assert [m["month"] for m in printed["months"]] == ["2025-02", "2025-03", "2025-04"]
    assert printed["months"][-1]["projected"] is True
    for got, want in zip(printed["months"], expected, strict=True):
        assert set(got) == {"month", "projected", "messages", "costs_usd"}
        assert got["messages"] == want["messages"]
        assert {c: D(v) for c, v in got["costs_usd"].items()} == want["costs_usd"]
        assert all(isinstance(v, str) for v in got["costs_usd"].values())
    advice = advise_plan(usage, Principal("heavy", "heavy"), months=2, now=NOW)
    assert printed == recommendation_json(advice)
    assert printed["current_plan"] == "tiny"
    assert D(printed["savings_per_month_usd"]) == advice.recommendation.savings_per_month


def test_the_cli_reports_an_unknown_account_without_a_traceback(usage):
    result = CliRunner().invoke(app, ["plans", "recommend", "--account", "ghost", "--json"])
    assert result.exit_code == 1 and "unknown account 'ghost'" in result.output


def test_a_young_account_is_not_compared_over_months_before_it_existed(usage):
    create_account(usage, "newbie", name="New", opening_credit=D("5"), now=NOW - timedelta(days=3))
    advice = advise_plan(usage, Principal("newbie", "newbie"), months=3, now=NOW)
    assert [m.month for m in advice.recommendation.months] == ["2025-04"]  # this month only
    older = advise_plan(usage, Principal("heavy", "heavy"), months=2, now=NOW)
    assert [m.month for m in older.recommendation.months] == ["2025-02", "2025-03", "2025-04"]


def test_an_operation_priced_fixed_mid_month_stops_counting_as_messages_from_that_day(usage):
    # chat_message gets a fixed price from February 15th, 00:00 New York: the light
    # account's February 10th message still counts, its 27th and 28th are other usage
    set_operation_price(
        usage, ADMIN, "chat_message", price=D("0.01"), provider_cost=D("0.001"),
        effective_from=datetime(2025, 2, 15, 5, tzinfo=UTC), reason="flat chats",
        allow_retroactive=True, now=NOW,
    )  # fmt: skip
    with usage.connect() as conn:
        rows = conn.execute(select(usage_events).where(usage_events.c.account_id == "light")).all()
        february = monthly_usage_on(conn, "light", ["2025-02"])["2025-02"]
    priced = {r.created_at.astimezone(UTC).strftime("%m-%d"): payg_price(r) for r in rows}
    assert february.messages == 1
    assert february.payg_cost == priced["02-10"]
    assert february.other_cost == priced["02-27"] + priced["02-28"]
