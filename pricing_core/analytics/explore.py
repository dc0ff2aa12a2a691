"""Explore: one question about spend, answered from the rollups.

A question (`explore_question.Question`) picks a metric, a group and an optional
subgroup, a time step, a range of calendar days, cumulative or not, and filters on any
dimension. The answer (`Answer`) is one value per (period, group, subgroup), exact:
money is summed as integer nano-USD and shown as Decimal USD.

Sources, cheapest first: an admin's question over every account reads
`platform_daily` when it needs only provider, model and operation, `account_daily`
when it needs only the account, else `usage_daily`; a member's reads `usage_daily`
through its (account_id, day) key. Hourly steps read `usage_events` of at most
`MAX_HOURLY_DAYS` days (the rollups are daily). One account's questions by chat and
API key (alone, or with each other) read `chat_daily`; with other dimensions, or over
every account, they group the events in the database (`explore_events`); chats are
asked of one account at a time. Plans come from the rollups, with the
events of the days a subscription starts or ends (`explore_plans`).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import Engine, Table, select

from pricing_core.adapters.schema import account_daily, platform_daily, usage_daily
from pricing_core.adapters.schema_rollups import NO_KEY, chat_daily
from pricing_core.analytics.common import rows_columns
from pricing_core.analytics.explore_events import (
    EVENT_COLUMNS,
    MISSING,
    Bar,
    bar_events,
    event_dimension_values,
    events_frame,
)
from pricing_core.analytics.explore_plans import plan_frame, rollup_sums
from pricing_core.analytics.explore_question import (
    MAX_HOURLY_DAYS,
    NO_API_KEY,
    NO_CHAT,
    OTHER,
    TOP_GROUPS,
    Group,
    Metric,
    Question,
    Step,
    _scope,
    available_groups,
    hourly_view,
    replace_url_params,
    url_params,
)
from pricing_core.domain.errors import InvalidUsage, PermissionDenied
from pricing_core.domain.money import nanos_to_usd, round_nano
from pricing_core.domain.periods import Granularity, check_range, period_start
from pricing_core.domain.principal import Principal

__all__ = [  # the question and the events behind a bar live beside, and read from here
    "EVENT_COLUMNS", "MAX_HOURLY_DAYS", "NO_API_KEY", "NO_CHAT", "OTHER", "TOP_GROUPS",
    "Answer", "Bar", "Group", "Metric", "Question", "Step", "available_groups",
    "bar_events", "dimension_values", "explore", "hourly_view", "replace_url_params",
    "url_params",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Answer:
    """`points` columns: period (date, or an aware datetime for hours), group, subgroup
    (str; "" without a subgroup), value (int, or Decimal USD for money metrics).
    `total`: the metric over the whole selection (not cumulative)."""

    question: Question
    points: pd.DataFrame
    total: int | Decimal
    source: str  # the table read

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        name = self.question.metric.value + ("_usd" if self.question.metric.money else "")
        writer.writerow(["period", self.question.group.value, "subgroup", name])
        for r in self.points.itertuples(index=False):
            writer.writerow([r.period.isoformat(), r.group, r.subgroup, r.value])
        return out.getvalue()


def explore(
    engine: Engine, viewer: Principal, question: Question, *, account_id: str | None = None
) -> Answer:
    """Answer `question` for one account (the viewer's, or `account_id` for an admin),
    or, for an admin with `account_id="*"`, for every account.

    Raises: InvalidUsage (a range backwards, an hourly range over MAX_HOURLY_DAYS days, a
    subgroup equal to the group), PermissionDenied (a member asking for provider cost,
    accounts, or another account).
    """
    check_range(question.start, question.end)
    target = _scope(viewer, account_id)
    everyone = target is None
    dims = _dimensions(question)
    if not viewer.is_admin and (question.metric is Metric.PROVIDER_COST or Group.ACCOUNT in dims):
        raise PermissionDenied("provider cost and accounts are for admins")
    if question.subgroup is not None and question.subgroup == question.group:
        raise InvalidUsage("the subgroup must differ from the group")
    if everyone and Group.CHAT in dims:
        raise InvalidUsage("chats belong to one account: choose an account to see its chats")
    long = (question.end - question.start).days >= MAX_HOURLY_DAYS
    if question.step is Step.HOUR and long:
        raise InvalidUsage(f"hourly steps cover at most {MAX_HOURLY_DAYS} days")
    rollups = all(d.in_rollups for d in dims)
    by_plan = Group.PLAN in dims and all(d.in_rollups for d in dims if d is not Group.PLAN)
    if everyone and long and not (rollups or by_plan):
        # every account's events for weeks: 45 s at 10M events (bench B3)
        raise InvalidUsage(
            f"API keys over every account cover at most {MAX_HOURLY_DAYS} days: "
            "narrow the dates or choose an account"
        )
    by_chat = all(d in (Group.CHAT, Group.API_KEY) for d in dims)
    if target is not None and question.step is not Step.HOUR and by_chat:
        columns, source = _by_chat(engine, question, target, dims), chat_daily.name
    elif question.step is Step.HOUR or not (rollups or by_plan):
        frame = events_frame(engine, question, target, dims)
        columns, source = _columns(frame), "usage_events"
    elif not rollups:
        frame, source = plan_frame(engine, question, target, dims)
        columns = _columns(frame)
    else:
        table = _table(dims, everyone)
        columns, source = _daily(engine, table, question, target, dims), table.name
    return _answer(question, columns, source)


def _columns(frame: pd.DataFrame) -> dict[str, list[Any]]:
    return {name: frame[name].tolist() for name in frame.columns}


def _dimensions(question: Question) -> list[Group]:
    dims = [question.group, *([question.subgroup] if question.subgroup else [])]
    return dims + [g for g, kept in question.filters.items() if kept and g not in dims]


def _table(dims: list[Group], everyone: bool) -> Table:
    if not everyone:
        return usage_daily
    names = {d.column for d in dims}
    if names <= {"provider", "model", "operation"}:
        return platform_daily
    if names <= {"account_id"}:
        return account_daily
    return usage_daily


def _daily(
    engine: Engine, table: Table, q: Question, target: str | None, dims: list[Group]
) -> dict[str, list[Any]]:
    """The rollup's rows of the question grouped by day and dimensions, as columns
    (day, each dimension's column, the sums `_measures` names, period): plain lists,
    since `_answer` sums them in Python and a frame in between cost more than the
    query."""
    c = table.c
    keys = [c[d.column] for d in dims]
    measures = set(_measures(q.metric))
    sums = [s for s in rollup_sums(table) if s.name in measures]
    query = select(c.day, *keys, *sums).where(c.day >= q.start, c.day <= q.end)
    if target is not None:
        query = query.where(c.account_id == target)
    for group, kept in q.filters.items():
        if kept:
            query = query.where(c[group.column].in_(list(kept)))
    with engine.connect() as conn:
        rows = conn.execute(query.group_by(c.day, *keys)).all()
    columns = rows_columns(rows, ["day", *(d.column for d in dims), *(s.name for s in sums)])
    step = Granularity(q.step.value)
    columns["period"] = [period_start(d, step) for d in columns["day"]]
    return columns


def _by_chat(engine: Engine, q: Question, target: str, dims: list[Group]) -> dict[str, list[Any]]:
    """`_daily` over `chat_daily`, whose "" is no chat / no API key (MISSING's names)."""
    filters = {
        g: tuple(NO_KEY if v == MISSING.get(g) else v for v in kept)
        for g, kept in q.filters.items()
    }
    columns = _daily(engine, chat_daily, replace(q, filters=filters), target, dims)
    for group in dims:
        columns[group.column] = [v or MISSING[group] for v in columns[group.column]]
    return columns


def _answer(q: Question, frame: dict[str, list[Any]], source: str) -> Answer:
    """Sum the columns (period, the dimensions', the sums `_measures` names; the
    events' frames have them all) per (period, group, subgroup), the groups past the
    TOP_GROUPS costliest (ties by name) as OTHER, running totals when cumulative. In
    plain Python: a few hundred rows cost pandas' per-call overhead, 15 ms, not the
    sums."""
    if not frame["period"]:
        points = pd.DataFrame(columns=["period", "group", "subgroup", "value"])
        return Answer(q, points, _value_of(q.metric)([0, 0, 0]), source)
    groups = [str(g) for g in frame[q.group.column]]
    subs = [str(g) for g in frame[q.subgroup.column]] if q.subgroup else [""] * len(groups)
    # integers (nano-USD, counts); a sum the database or a join left empty counts 0
    measures = _measures(q.metric)
    ints = {s: [0 if v is None or v != v else int(v) for v in frame[s]] for s in set(measures)}
    columns = [ints[s] for s in measures]
    totals = [sum(c) for c in columns]
    spend: dict[str, int] = defaultdict(int)
    for g, price in zip(groups, columns[1], strict=True):
        spend[g] += price
    if len(spend) > TOP_GROUPS:
        kept = set(sorted(spend, key=lambda g: (-spend[g], g))[:TOP_GROUPS])
        groups = [g if g in kept else OTHER for g in groups]
    summed: dict[tuple[Any, str, str], list[int]] = {}
    keys = zip(frame["period"], groups, subs, strict=True)
    for key, requests, price, own in zip(keys, *columns, strict=True):
        into = summed.get(key)
        if into is None:
            summed[key] = [requests, price, own]
        else:
            into[0] += requests
            into[1] += price
            into[2] += own
    if q.cumulative:  # running totals, carried through the periods a group was idle
        summed = _running(summed)
    ordered = sorted(summed.items())  # the keys are distinct: only they are compared
    value = _value_of(q.metric)
    points = pd.DataFrame(
        {
            "period": [k[0] for k, _ in ordered],
            "group": [k[1] for k, _ in ordered],
            "subgroup": [k[2] for k, _ in ordered],
            "value": [value(sums) for _, sums in ordered],
        }
    )
    return Answer(q, points, value(totals), source)


def _running(
    summed: dict[tuple[Any, str, str], list[int]],
) -> dict[tuple[Any, str, str], list[int]]:
    """Running totals per (group, subgroup) over every period of the answer, kept
    from the first period with a request."""
    periods = sorted({period for period, _, _ in summed})
    out = {}
    for g, sub in sorted({(g, sub) for _, g, sub in summed}):
        running = [0, 0, 0]
        for period in periods:
            for k, v in enumerate(summed.get((period, g, sub), ())):
                running[k] += v
            if running[0] > 0:  # requests
                out[period, g, sub] = list(running)
    return out


def _measures(metric: Metric) -> tuple[str, str, str]:
    """The sums an answer reads: requests (where running totals start), price (the
    groups' ranking) and the metric's own (`_value_of`)."""
    own = "price" if metric in (Metric.COST, Metric.AVG_COST) else metric.value
    return ("requests", "price", own)


def _value_of(metric: Metric) -> Callable[[Sequence[int]], int | Decimal]:
    """The metric of sums given as integers in `_measures` order (money in nano-USD)."""
    if metric is Metric.AVG_COST:
        return lambda s: round_nano(nanos_to_usd(s[1]) / s[0]) if s[0] else Decimal(0)
    if metric.money:
        return lambda s: nanos_to_usd(s[2])
    return lambda s: s[2]


def dimension_values(
    engine: Engine,
    viewer: Principal,
    *,
    start: date,
    end: date,
    account_id: str | None = None,
    limit: int = 500,
) -> dict[Group, list[str]]:
    """The values each dimension takes in [start, end] (the filters' choices), sorted;
    at most `limit` each. Accounts only for admins. Raises: PermissionDenied."""
    check_range(start, end)
    target = _scope(viewer, account_id)
    everyone = target is None
    out: dict[Group, list[str]] = {}
    with engine.connect() as conn:
        for group in available_groups(viewer, "*" if everyone else target):
            if not group.in_rollups:
                out[group] = event_dimension_values(conn, group, target, start, end, limit)
                continue
            table = _table([group], everyone)
            column = table.c[group.column]
            query = select(column).distinct().where(table.c.day >= start, table.c.day <= end)
            if target is not None:
                query = query.where(table.c.account_id == target)
            out[group] = sorted(conn.execute(query.limit(limit)).scalars().all())
    return out
