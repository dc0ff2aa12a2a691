"""Explore (issue 21): renders for a member and an admin with every metric, group and
step; its figures equal the Usage page's and an independent sum over the exported
events of the real trace."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import date
from decimal import Decimal

import pytest
import streamlit as st

from pricing_core.analytics import report_totals, usage_report
from pricing_core.analytics.explore import Group, Metric, Question, Step, explore
from pricing_core.analytics.exports import ExportFormat, export_usage
from pricing_core.domain.errors import InvalidUsage, PermissionDenied
from pricing_core.domain.principal import Principal
from tests.admin_support import ADMIN
from tests.admin_trace import import_real_trace
from tests.app.test_pages import open_page, use_database, view_as

DAY = date(2023, 11, 16)  # the trace's day


@pytest.fixture
def trace_db(sqlite_url, monkeypatch, tmp_path):
    engine = use_database(monkeypatch, sqlite_url)
    st.cache_data.clear()
    import_real_trace(engine, tmp_path, rows=400)
    yield engine
    st.cache_data.clear()


def exported(engine) -> list[dict]:
    out = io.StringIO()
    export_usage(engine, out, ExportFormat.CSV)
    return list(csv.DictReader(io.StringIO(out.getvalue())))


def busiest(rows: list[dict]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[r["account_id"]] += 1
    return max(counts, key=lambda a: counts[a])


def table_values(at, column: str) -> list[Decimal]:
    [table] = [d for d in at.dataframe if column in d.value.columns]
    return [Decimal(str(v)) for v in table.value[column]]


def test_explore_answers_equal_the_exported_events_and_the_usage_page(trace_db):
    rows = exported(trace_db)
    account = busiest(rows)
    mine = [r for r in rows if r["account_id"] == account]
    member = Principal(mine[0]["user_id"], account)
    by_model: dict[str, Decimal] = defaultdict(Decimal)
    for r in mine:
        by_model[r["model"]] += Decimal(r["price_usd"])
    answer = explore(trace_db, member, Question(DAY, DAY, Metric.COST, Group.MODEL))
    assert answer.total == sum(by_model.values())
    assert dict(zip(answer.points["group"], answer.points["value"], strict=True)) == by_model
    report = usage_report(trace_db, member, start=DAY, end=DAY)
    requests, tokens, cost = report_totals(report)
    assert (answer.total, requests) == (cost, len(mine))
    tokens_in = explore(trace_db, member, Question(DAY, DAY, Metric.INPUT_TOKENS, Group.USER))
    assert tokens_in.total == sum(int(r["input_tokens"]) for r in mine)
    hourly = explore(trace_db, member, Question(DAY, DAY, Metric.REQUESTS, Group.OPERATION,
                                                step=Step.HOUR))  # fmt: skip
    assert hourly.total == len(mine) and hourly.source == "usage_events"
    # an admin over every account, from the platform rollup, equals the whole export
    everyone = explore(trace_db, ADMIN, Question(DAY, DAY, Metric.PROVIDER_COST, Group.PROVIDER),
                       account_id="*")  # fmt: skip
    assert everyone.source == "platform_daily"
    assert everyone.total == sum(Decimal(r["provider_cost_usd"]) for r in rows)
    by_account = explore(trace_db, ADMIN, Question(DAY, DAY, Metric.REQUESTS, Group.ACCOUNT),
                         account_id="*")  # fmt: skip
    assert by_account.source == "account_daily" and by_account.total == len(rows)
    cumulative = explore(trace_db, member, Question(DAY, DAY, Metric.AVG_COST, Group.MODEL,
                                                    cumulative=True))  # fmt: skip
    last = cumulative.points.groupby("group")["value"].last()
    for model, value in last.items():
        n = sum(1 for r in mine if r["model"] == model)
        assert value == (by_model[model] / n).quantize(Decimal("1e-9"))


def test_explore_refuses_what_a_member_may_not_see(trace_db):
    member = Principal("u", "trace-user-1")
    for question in (
        Question(DAY, DAY, Metric.PROVIDER_COST),
        Question(DAY, DAY, group=Group.ACCOUNT),
    ):
        with pytest.raises(PermissionDenied):
            explore(trace_db, member, question)
    with pytest.raises(PermissionDenied):
        explore(trace_db, member, Question(DAY, DAY), account_id="*")
    with pytest.raises(InvalidUsage, match="hourly"):
        explore(trace_db, member, Question(DAY, date(2023, 11, 30), step=Step.HOUR))
    with pytest.raises(InvalidUsage, match="subgroup"):
        explore(trace_db, member, Question(DAY, DAY, group=Group.MODEL, subgroup=Group.MODEL))


MEMBER_METRICS = [m for m in Metric if m is not Metric.PROVIDER_COST]


@pytest.mark.parametrize(
    "params",
    [{"metric": m.value} for m in MEMBER_METRICS]
    + [{"group": g.value, "sub": "model" if g is not Group.MODEL else "operation"}
       for g in Group if g is not Group.ACCOUNT]
    + [{"step": s.value, "cum": "1"} for s in Step],
)  # fmt: skip
def test_the_explore_page_renders_for_a_member_from_its_url(trace_db, monkeypatch, params):
    rows = exported(trace_db)
    account = busiest(rows)
    view_as(monkeypatch, account)
    at = open_page("explore", **{"from": DAY.isoformat(), "to": DAY.isoformat(), **params})
    assert not at.exception
    assert at.query_params["metric"] in (
        params.get("metric", "cost"),
        [params.get("metric", "cost")],
    )
    mine = [r for r in rows if r["account_id"] == account]
    if params.get("metric", "cost") == "cost" and params.get("cum") != "1":
        assert sum(table_values(at, "Cost")) == sum(Decimal(r["price_usd"]) for r in mine)
    if params.get("metric") == "requests":
        assert sum(table_values(at, "Requests")) == len(mine)


ADMIN_VIEWS = [
    {"metric": "provider_cost"},
    {"group": "account"},
    {"group": "model", "sub": "account", "f_provider": "openai", "scope": "*"},
]


@pytest.mark.parametrize("params", ADMIN_VIEWS)
def test_the_explore_page_renders_for_an_admin_over_every_account(trace_db, monkeypatch, params):
    rows = exported(trace_db)
    monkeypatch.setattr("pricing_core.access.auth.current_principal", lambda *a, **k: ADMIN)
    at = open_page("explore", **{"from": DAY.isoformat(), "to": DAY.isoformat(), **params})
    assert not at.exception
    if params.get("metric") == "provider_cost":
        assert sum(table_values(at, "Provider cost")) == sum(
            Decimal(r["provider_cost_usd"]) for r in rows
        )
    if "f_provider" in params:
        expected = sum(Decimal(r["price_usd"]) for r in rows if r["provider"] == "openai")
        assert sum(table_values(at, "Cost")) == expected


def test_the_events_behind_a_bar_are_the_exported_events_of_that_bar(trace_db, monkeypatch):
    from pricing_core.analytics.explore import Bar, bar_events

    rows = exported(trace_db)
    account = busiest(rows)
    member = Principal("u", account)
    question = Question(DAY, DAY, Metric.COST, Group.MODEL, Group.OPERATION)
    answer = explore(trace_db, member, question)
    period, model, operation, value = next(answer.points.itertuples(index=False))
    events, count = bar_events(
        trace_db, member, question, Bar(period, model, operation), limit=1000
    )
    expected = [r for r in rows if (r["account_id"], r["model"], r["operation"])
                == (account, model, operation)]  # fmt: skip
    assert count == len(expected) and sum(events["price"]) == value
    assert sum(Decimal(r["price_usd"]) for r in expected) == value
    with pytest.raises(InvalidUsage, match="other"):
        bar_events(trace_db, member, question, Bar(period, "other"))
    with pytest.raises(PermissionDenied):
        bar_events(trace_db, member, question, Bar(period, model, operation), account_id="*")
    # on the page, picking the bar lists those events
    view_as(monkeypatch, account)
    at = open_page("explore", **{"from": DAY.isoformat(), "to": DAY.isoformat(),
                                 "group": "model", "sub": "operation"})  # fmt: skip
    at.selectbox(key="ex_bar").select(0).run()
    assert not at.exception
    assert any(f"{count:,} event(s)" in c.value for c in at.caption)


def test_explore_by_chat_equals_the_exported_events_of_each_chat(trace_db, monkeypatch):
    from pricing_core.analytics.explore import NO_CHAT, Bar, available_groups, bar_events

    rows = exported(trace_db)
    account = busiest(rows)
    member = Principal("u", account)
    by_chat: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        if r["account_id"] == account:
            by_chat[r["chat_id"] or NO_CHAT] += Decimal(r["price_usd"])
    assert len(by_chat) > 1
    answer = explore(trace_db, member, Question(DAY, DAY, Metric.COST, Group.CHAT,
                                                step=Step.WEEK))  # fmt: skip
    assert answer.source == "chat_daily"
    kept = dict(zip(answer.points["group"], answer.points["value"], strict=True))
    if len(by_chat) <= 12:  # TOP_GROUPS: no "other" bar
        assert kept == by_chat
    assert answer.total == sum(by_chat.values())
    chat = max(by_chat, key=lambda c: by_chat[c])
    requests = sum(
        1 for r in rows if r["account_id"] == account and (r["chat_id"] or NO_CHAT) == chat
    )
    for group, source in ((Group.MODEL, "usage_events"), (Group.CHAT, "chat_daily")):
        filtered = explore(trace_db, member, Question(DAY, DAY, Metric.REQUESTS, group,
                                                      filters={Group.CHAT: (chat,)}))  # fmt: skip
        assert (filtered.total, filtered.source) == (requests, source)
    events, count = bar_events(trace_db, member, answer.question,
                               Bar(answer.points["period"].iloc[0], chat), limit=1000)  # fmt: skip
    assert sum(events["price"]) == by_chat[chat]
    # over every account a chat id is ambiguous: the group is not offered, and refused
    assert Group.CHAT not in available_groups(ADMIN, "*")
    assert Group.CHAT in available_groups(ADMIN, account)
    assert Group.ACCOUNT not in available_groups(member)
    with pytest.raises(InvalidUsage, match="one account"):
        explore(trace_db, ADMIN, Question(DAY, DAY, group=Group.CHAT), account_id="*")
    view_as(monkeypatch, account)
    at = open_page("explore", **{"from": DAY.isoformat(), "to": DAY.isoformat(), "group": "chat",
                                 "f_chat": chat})  # fmt: skip
    assert not at.exception
    assert sum(table_values(at, "Cost")) == by_chat[chat]
