"""Explore's groups that only usage events know (issue 21): the API key a call came
through and the plan the account was on, on both back ends. Expected figures come from
genai-prices and the calls made here, not from the code under test."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from starlette.applications import Starlette

from pricing_core.access.apikeys import create_api_key, reset_default_limiter
from pricing_core.adapters.schema import usage_events
from pricing_core.analytics.explore import (
    NO_API_KEY,
    Bar,
    Group,
    Metric,
    Question,
    Step,
    available_groups,
    bar_events,
    dimension_values,
    explore,
)
from pricing_core.api.http import routes
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent, with_api_key
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account
from pricing_core.metering.record import record_usage
from pricing_core.plans.subscriptions import SubscriptionSource
from pricing_core.plans.switching import switch_plan
from tests.integration.test_api import price, usage_body

OWNER = Principal("user-1", "acct-1")


def test_explore_groups_by_the_api_key_each_call_came_through(engine):
    create_account(engine, "acct-1", name="Shop", user_id="user-1", opening_credit=Decimal("5"))
    reset_default_limiter()
    first, second = create_api_key(engine, OWNER), create_api_key(engine, OWNER)
    expected: dict[str, Decimal] = {first.id: Decimal(0), second.id: Decimal(0)}
    with TestClient(Starlette(routes=routes())) as client:
        for i, key in enumerate([first, first, second]):
            answer = client.post("/api/v1/usage", json=usage_body(f"u{i}", input_tokens=1000 + i),
                                 headers={"Authorization": f"Bearer {key.secret}"})  # fmt: skip
            assert answer.status_code == 201, answer.text
            expected[key.id] += price(1000 + i, 300)
        auth = {"Authorization": f"Bearer {second.secret}"}
        hold = client.post("/api/v1/authorize", headers=auth, json={
            "request_id": "h1", "user_id": "user-1", "model": "gpt-4o-mini",
            "estimated_input_tokens": 1000, "max_output_tokens": 500})  # fmt: skip
        settled = client.post(f"/api/v1/holds/{hold.json()['id']}/settle", headers=auth,
                              json={"input_tokens": 800, "output_tokens": 100})  # fmt: skip
        assert settled.status_code == 200, settled.text
        expected[second.id] += price(800, 100)
    event = UsageEvent("lib", "acct-1", "user-1", "chat_message", "openai", "gpt-4o-mini", 700, 90)
    record_usage(engine, event)  # through the library: no key
    expected[NO_API_KEY] = price(700, 90)

    today = datetime.now(UTC).date()
    answer = explore(engine, OWNER, Question(today, today, Metric.COST, Group.API_KEY))
    assert answer.source == "chat_daily"
    assert dict(zip(answer.points["group"], answer.points["value"], strict=True)) == expected
    hourly = explore(
        engine, OWNER, Question(today, today, Metric.COST, Group.API_KEY, step=Step.HOUR)
    )
    assert hourly.source == "usage_events"  # the events, summed here over the hours
    by_key: dict[str, Decimal] = {}
    for key, value in zip(hourly.points["group"], hourly.points["value"], strict=True):
        by_key[key] = by_key.get(key, Decimal(0)) + value
    assert by_key == expected
    choices = dimension_values(engine, OWNER, start=today, end=today)[Group.API_KEY]
    assert set(choices) == {first.id, second.id, NO_API_KEY}
    only = explore(engine, OWNER, Question(today, today, Metric.REQUESTS, Group.MODEL,
                                           filters={Group.API_KEY: (NO_API_KEY,)}))  # fmt: skip
    assert only.total == 1
    library = explore(engine, OWNER, Question(today, today, Metric.REQUESTS, Group.API_KEY,
                                              filters={Group.API_KEY: (NO_API_KEY,)}))  # fmt: skip
    assert (library.total, library.source) == (1, "chat_daily")
    events, count = bar_events(engine, OWNER, answer.question,
                               Bar(answer.points["period"].iloc[0], second.id))  # fmt: skip
    assert count == 2 and sum(events["price"]) == expected[second.id]


def test_only_text_under_api_key_is_an_api_key_in_the_daily_and_the_hourly_answer(engine):
    create_account(engine, "acct-1", name="Shop", user_id="user-1", opening_credit=Decimal("5"))
    for i, value in enumerate(["key_1", 7, True, None]):
        event = UsageEvent(f"m{i}", "acct-1", "user-1", "chat_message", "openai",
                           "gpt-4o-mini", 500 + i, 50, metadata={"api_key": value})  # fmt: skip
        record_usage(engine, event)
    want = {"key_1": 1, NO_API_KEY: 3}
    today = datetime.now(UTC).date()
    for step, source in ((Step.DAY, "chat_daily"), (Step.HOUR, "usage_events")):
        answer = explore(engine, OWNER, Question(today, today, Metric.REQUESTS, Group.API_KEY,
                                                 step=step))  # fmt: skip
        counts: dict[str, int] = {}
        for key, value in zip(answer.points["group"], answer.points["value"], strict=True):
            counts[key] = counts.get(key, 0) + value
        assert (counts, answer.source) == (want, source)
    assert verify_ledger(engine).ok


def test_a_caller_that_used_every_metadata_key_keeps_them_all():
    full = {f"k{i}": i for i in range(16)}
    assert with_api_key(full, "key_1") == full
    assert with_api_key({"api_key": "mine"}, "key_1") == {"api_key": "key_1"}
    assert with_api_key(None, "key_1") == {"api_key": "key_1"}


def test_explore_groups_by_the_plan_the_account_was_on_at_each_call(engine):
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(hours=3)
    if start.date() != now.date():  # keep every call on today
        now, start = now + timedelta(hours=4), now + timedelta(hours=1)
    create_account(engine, "acct-1", name="Shop", user_id="user-1",
                   opening_credit=Decimal("5"), now=start - timedelta(days=1))  # fmt: skip

    def call(n: int, at: datetime) -> None:
        event = UsageEvent(f"p{n}", "acct-1", "user-1", "chat_message", "openai", "gpt-4o-mini",
                           500 + n, 50, created_at=at)  # fmt: skip
        record_usage(engine, event, now=at)

    call(1, start)
    call(2, start + timedelta(minutes=30))
    switch_plan(engine, "acct-1", "starter", source=SubscriptionSource.DEMO,
                now=start + timedelta(hours=1))  # fmt: skip
    call(3, start + timedelta(hours=2))
    switch_plan(engine, "acct-1", "payg", source=SubscriptionSource.DEMO,
                now=start + timedelta(hours=2, minutes=30))  # fmt: skip
    call(4, start + timedelta(hours=2, minutes=45))  # after the plan ended
    day = start.date()
    answer = explore(engine, OWNER, Question(day, day, Metric.REQUESTS, Group.PLAN, Group.MODEL))
    got = {(g, s): v for _, g, s, v in answer.points.itertuples(index=False)}
    assert got == {("payg", "gpt-4o-mini"): 3, ("starter", "gpt-4o-mini"): 1}
    cost = explore(engine, OWNER, Question(day, day, Metric.COST, Group.PLAN,
                                           filters={Group.PLAN: ("payg",)}))  # fmt: skip
    assert cost.total == price(501, 50) + price(502, 50) + price(504, 50)
    bar = Bar(answer.points["period"].iloc[0], "starter", "gpt-4o-mini")
    events, count = bar_events(engine, OWNER, answer.question, bar)
    assert count == 1 and events["input_tokens"].tolist() == [503]
    assert {Group.PLAN, Group.API_KEY} <= set(available_groups(OWNER))
    admin = Principal("ops", "ops", role="admin")
    week = explore(engine, admin, Question(day - timedelta(days=6), day, Metric.REQUESTS,
                                           Group.PLAN), account_id="*")  # fmt: skip
    assert week.total == 4
    month = explore(engine, admin, Question(day - timedelta(days=30), day, Metric.REQUESTS,
                                            Group.PLAN), account_id="*")  # fmt: skip
    assert month.source == "account_daily with subscriptions" and month.total == 4
    with pytest.raises(InvalidUsage, match="every account cover at most 7 days"):
        explore(engine, admin, Question(day - timedelta(days=7), day, group=Group.API_KEY),
                account_id="*")  # fmt: skip


def test_plans_from_the_rollups_equal_each_events_plan_on_whole_and_split_days(engine):
    """Three accounts over 12 days: one always on pay-as-you-go, one on a plan for
    whole days that it leaves at noon of a later day, one that joins a plan at 15:00
    of another. Each event's plan is found here from those instants."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=12)
    for account in ("pa", "pb", "pc"):
        create_account(engine, account, name=account, user_id=f"u-{account}",
                       opening_credit=Decimal(50), now=first - timedelta(days=2))  # fmt: skip
    b_joins, b_leaves = first - timedelta(days=1), first + timedelta(days=6, hours=12)
    c_joins = first + timedelta(days=4, hours=15)
    switch_plan(engine, "pb", "starter", source=SubscriptionSource.DEMO, now=b_joins)
    plan_of = {"pa": lambda at: "payg",
               "pb": lambda at: "starter" if b_joins <= at < b_leaves else "payg",
               "pc": lambda at: "starter" if at >= c_joins else "payg"}  # fmt: skip
    calls = []
    for k in range(12):
        for hour in (3, 13, 20):
            for n, account in enumerate(("pa", "pb", "pc")):
                at = first + timedelta(days=k, hours=hour, minutes=n)
                calls.append((at, account, "gpt-4o" if hour == 13 else "gpt-4o-mini"))
    for i, (at, account, model) in enumerate(sorted(calls)):
        call = UsageEvent(f"r{i}", account, f"u-{account}", "chat_message", "openai", model,
                          400 + i, 30, created_at=at)  # fmt: skip
        record_usage(engine, call, now=at)
    switch_plan(engine, "pb", "payg", source=SubscriptionSource.DEMO, now=b_leaves)
    switch_plan(engine, "pc", "starter", source=SubscriptionSource.DEMO, now=c_joins)
    with engine.connect() as conn:
        events = conn.execute(sa.select(usage_events.c.account_id, usage_events.c.model,
                                        usage_events.c.created_at)).all()  # fmt: skip
    want: dict[tuple[str, str], int] = {}
    for account, model, at in events:
        key = (plan_of[account](at), model)
        want[key] = want.get(key, 0) + 1
    admin = Principal("ops", "ops", role="admin")
    q = Question(first.date(), (today - timedelta(days=1)).date(), Metric.REQUESTS, Group.PLAN,
                 Group.MODEL)  # fmt: skip
    answer = explore(engine, admin, q, account_id="*")
    got: dict[tuple[str, str], int] = {}
    for _, plan, model, value in answer.points.itertuples(index=False):
        got[plan, model] = got.get((plan, model), 0) + value
    assert answer.source == "usage_daily with subscriptions" and got == want
    by_day = explore(engine, admin, dataclasses.replace(q, subgroup=None), account_id="*")
    assert by_day.source == "account_daily with subscriptions" and by_day.total == len(events)
    kept = explore(engine, admin, dataclasses.replace(q, filters={Group.PLAN: ("starter",)}),
                   account_id="*")  # fmt: skip
    assert kept.total == sum(v for (p, _), v in want.items() if p == "starter")
    # the day pc joins is read from its events; a plan nobody was on finds none there
    joined = c_joins.date()
    nobody = Question(joined, joined, Metric.REQUESTS, Group.PLAN, filters={Group.PLAN: ("pro",)})
    none = explore(engine, admin, nobody, account_id="pc")
    assert none.total == 0 and none.points.empty
