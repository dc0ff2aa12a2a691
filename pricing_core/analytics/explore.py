"""Explore: one question about spend, answered from the rollups.

A question (`Question`) picks a metric, a group and an optional subgroup, a time step,
a range of calendar days, cumulative or not, and filters on any dimension. The answer
(`Answer`) is one value per (period, group, subgroup), exact: money is summed as
integer nano-USD and shown as Decimal USD.

Sources, cheapest first: an admin's question over every account reads
`platform_daily` when it needs only provider, model and operation, `account_daily`
when it needs only the account, else `usage_daily`; a member's reads `usage_daily`
through its (account_id, day) key. Hourly steps read `usage_events` of at most
`MAX_HOURLY_DAYS` days (the rollups are daily), and so does a question about chats
(the rollups have no chat), which is asked of one account at a time.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pandas as pd
from sqlalchemy import BigInteger, Engine, Table, func, select, type_coerce

from pricing_core.adapters.schema import account_daily, platform_daily, usage_daily, usage_events
from pricing_core.analytics.chats import chats_active
from pricing_core.analytics.common import _local_times, _target, day_bounds
from pricing_core.domain.errors import InvalidUsage, PermissionDenied
from pricing_core.domain.money import nanos_to_usd, round_nano
from pricing_core.domain.periods import Granularity, check_range, next_period, period_start
from pricing_core.domain.principal import Principal, require_admin

MAX_HOURLY_DAYS = 7
TOP_GROUPS = 12  # groups beyond the biggest this many are summed as "other"
OTHER = "other"
NO_CHAT = "(no chat)"  # the group of events recorded without a chat id


class Metric(StrEnum):
    COST = "cost"  # Decimal USD charged
    PROVIDER_COST = "provider_cost"  # Decimal USD (admins)
    REQUESTS = "requests"
    INPUT_TOKENS = "input_tokens"
    OUTPUT_TOKENS = "output_tokens"
    CACHED_TOKENS = "cached_tokens"
    AVG_COST = "avg_cost"  # Decimal USD per request

    @property
    def money(self) -> bool:
        return self in (Metric.COST, Metric.PROVIDER_COST, Metric.AVG_COST)


class Group(StrEnum):
    MODEL = "model"
    PROVIDER = "provider"
    OPERATION = "operation"
    USER = "user"
    CHAT = "chat"  # one account at a time
    ACCOUNT = "account"  # admins

    @property
    def column(self) -> str:
        names = {"user": "user_id", "account": "account_id", "chat": "chat_id"}
        return names.get(self.value, self.value)


def available_groups(viewer: Principal, account_id: str | None = None) -> list[Group]:
    """The groups `viewer` may ask for: accounts for admins over every account
    (`account_id="*"`), chats for one account."""
    everyone = account_id == "*"
    skip = {Group.CHAT} if everyone else {Group.ACCOUNT}
    return [g for g in Group if g not in skip and (g is not Group.ACCOUNT or viewer.is_admin)]


class Step(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class Question:
    """What to show. `filters`: dimension -> the values kept (empty: all)."""

    start: date
    end: date
    metric: Metric = Metric.COST
    group: Group = Group.MODEL
    subgroup: Group | None = None
    step: Step = Step.DAY
    cumulative: bool = False
    filters: dict[Group, tuple[str, ...]] = field(default_factory=dict)


def url_params(question: Question, *, scope: str | None = None) -> dict[str, str | list[str]]:
    """The question as URL query parameters (`from`, `to`, `metric`, `step`, `group`,
    `cum`, `sub` when set, `scope` for an admin's account, `f_<dimension>` per filter),
    so a view can be shared and survives a reload."""
    params: dict[str, str | list[str]] = {
        "from": question.start.isoformat(),
        "to": question.end.isoformat(),
        "metric": question.metric.value,
        "step": question.step.value,
        "group": question.group.value,
        "cum": "1" if question.cumulative else "0",
    }
    if question.subgroup is not None:
        params["sub"] = question.subgroup.value
    if scope is not None:
        params["scope"] = scope
    for dim, kept in question.filters.items():
        if kept:
            params[f"f_{dim.value}"] = list(kept)
    return params


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


_SUMS = ("requests", "input_tokens", "output_tokens", "cached_tokens", "provider_cost", "price")


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
    if question.step is Step.HOUR and (question.end - question.start).days >= MAX_HOURLY_DAYS:
        raise InvalidUsage(f"hourly steps cover at most {MAX_HOURLY_DAYS} days")
    if question.step is Step.HOUR or Group.CHAT in dims:
        frame, source = _events(engine, question, target, dims), "usage_events"
    else:
        table = _table(dims, everyone)
        frame, source = _daily(engine, table, question, target, dims), table.name
    return _answer(question, frame, source)


def _scope(viewer: Principal, account_id: str | None) -> str | None:
    """The one account asked about, or None for every account ("*": admins only).
    Raises: PermissionDenied."""
    if account_id == "*":
        require_admin(viewer)
        return None
    return _target(viewer, account_id)


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


def _sums(table: Table) -> list[Any]:
    return [func.sum(type_coerce(table.c[s], BigInteger)).label(s) for s in _SUMS]


def _daily(
    engine: Engine, table: Table, q: Question, target: str | None, dims: list[Group]
) -> pd.DataFrame:
    c = table.c
    keys = [c[d.column] for d in dims]
    query = select(c.day, *keys, *_sums(table)).where(c.day >= q.start, c.day <= q.end)
    if target is not None:
        query = query.where(c.account_id == target)
    for group, kept in q.filters.items():
        if kept:
            query = query.where(c[group.column].in_(list(kept)))
    with engine.connect() as conn:
        rows = conn.execute(query.group_by(c.day, *keys)).all()
    frame = pd.DataFrame(
        [tuple(r) for r in rows], columns=["day", *(d.column for d in dims), *_SUMS]
    )
    frame["period"] = [period_start(d, Granularity(q.step.value)) for d in frame["day"]]
    return frame


def _events(engine: Engine, q: Question, target: str | None, dims: list[Group]) -> pd.DataFrame:
    e = usage_events.c
    since, until = day_bounds(q.start, q.end)
    keys = [e[d.column] for d in dims]
    amounts = [s for s in _SUMS if s != "requests"]  # one event is one request
    query = select(
        e.created_at, *keys, *(type_coerce(e[s], BigInteger).label(s) for s in amounts)
    ).where(e.created_at >= since, e.created_at < until)
    if target is not None:
        query = query.where(e.account_id == target)
    query = query.where(*(_kept(e, group, kept) for group, kept in q.filters.items() if kept))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(
        [tuple(r) for r in rows], columns=["created_at", *(d.column for d in dims), *amounts]
    )
    if Group.CHAT in dims:
        frame["chat_id"] = frame["chat_id"].fillna(NO_CHAT)
    frame["requests"] = 1
    local = _local_times(frame["created_at"])
    if q.step is Step.HOUR:
        frame["period"] = list(local.dt.floor("h"))
    else:
        step = Granularity(q.step.value)
        frame["period"] = [period_start(t.date(), step) for t in local]
    return frame


def _kept(columns: Any, group: Group, kept: tuple[str, ...]) -> Any:
    """The events whose `group` is one of `kept` (NO_CHAT: events without a chat)."""
    column = columns[group.column]
    if group is Group.CHAT and NO_CHAT in kept:
        return column.in_([k for k in kept if k != NO_CHAT]) | column.is_(None)
    return column.in_(list(kept))


def _answer(q: Question, frame: pd.DataFrame, source: str) -> Answer:
    group, sub = q.group.column, q.subgroup.column if q.subgroup else None
    if frame.empty:
        points = pd.DataFrame(columns=["period", "group", "subgroup", "value"])
        return Answer(q, points, _value(q.metric, {s: 0 for s in _SUMS}), source)
    frame = frame.assign(
        group=frame[group].astype(str), subgroup=frame[sub].astype(str) if sub else ""
    )
    for s in _SUMS:
        frame[s] = frame[s].fillna(0).astype(object).map(int)
    totals = {s: sum(frame[s]) for s in _SUMS}
    order = frame.groupby("group")["price"].sum().sort_values(ascending=False).index.tolist()
    if len(order) > TOP_GROUPS:
        frame.loc[~frame["group"].isin(order[:TOP_GROUPS]), "group"] = OTHER
    summed = frame.groupby(["period", "group", "subgroup"], sort=True)[list(_SUMS)].sum()
    if q.cumulative:  # running totals, carried through the periods a group was idle
        wide = summed.unstack(["group", "subgroup"], fill_value=0).cumsum()
        summed = wide.stack(["group", "subgroup"], future_stack=True)
        summed = summed[summed["requests"] > 0].sort_index()
    points = summed.reset_index()
    points["value"] = [_value(q.metric, r) for r in points[list(_SUMS)].to_dict("records")]
    return Answer(
        q, points[["period", "group", "subgroup", "value"]], _value(q.metric, totals), source
    )


def _value(metric: Metric, sums: dict[str, Any]) -> int | Decimal:
    if metric is Metric.COST:
        return nanos_to_usd(int(sums["price"]))
    if metric is Metric.PROVIDER_COST:
        return nanos_to_usd(int(sums["provider_cost"]))
    if metric is Metric.AVG_COST:
        requests = int(sums["requests"])
        return round_nano(nanos_to_usd(int(sums["price"])) / requests) if requests else Decimal(0)
    return int(sums[metric.value])


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
            if group is Group.CHAT:
                out[group] = chats_active(conn, target, start, end, limit=limit)
                continue
            table = _table([group], everyone)
            column = table.c[group.column]
            query = select(column).distinct().where(table.c.day >= start, table.c.day <= end)
            if target is not None:
                query = query.where(table.c.account_id == target)
            out[group] = sorted(conn.execute(query.limit(limit)).scalars().all())
    return out


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of an answer: its period (a date, or an aware datetime for hours),
    group and subgroup values ("" without a subgroup)."""

    period: date | datetime
    group: str
    subgroup: str = ""


EVENT_COLUMNS = ["created_at", "account_id", "user_id", "model", "operation",
                 "input_tokens", "output_tokens", "price"]  # fmt: skip


def bar_events(
    engine: Engine,
    viewer: Principal,
    question: Question,
    bar: Bar,
    *,
    account_id: str | None = None,
    limit: int = 100,
) -> tuple[pd.DataFrame, int]:
    """The usage events behind one bar of `explore(question)`, newest first: at most
    `limit` of them (columns EVENT_COLUMNS; price Decimal USD, created_at in the
    configured zone) and how many there are. Reads `usage_events` by time.

    Raises: InvalidUsage for the "other" bar; PermissionDenied as `explore`.
    """
    if bar.group == OTHER:
        raise InvalidUsage("'other' sums several groups: filter on one to see its events")
    target = _scope(viewer, account_id)
    since, until = _bar_bounds(question, bar.period)
    e = usage_events.c
    where = [e.created_at >= since, e.created_at < until, _kept(e, question.group, (bar.group,))]
    if question.subgroup is not None:
        where.append(_kept(e, question.subgroup, (bar.subgroup,)))
    if target is not None:
        where.append(e.account_id == target)
    where += [_kept(e, g, kept) for g, kept in question.filters.items() if kept]
    columns = [e[c] if c != "price" else type_coerce(e.price, BigInteger).label("price")
               for c in EVENT_COLUMNS]  # fmt: skip
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).where(*where)).scalar_one()
        rows = conn.execute(
            select(*columns).where(*where).order_by(e.created_at.desc()).limit(limit)
        ).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=EVENT_COLUMNS)
    frame["created_at"] = _local_times(frame["created_at"]) if len(frame) else frame["created_at"]
    frame["price"] = [nanos_to_usd(int(v)) for v in frame["price"]]
    return frame, int(count)


def _bar_bounds(q: Question, period: date | datetime) -> tuple[datetime, datetime]:
    """[since, until) in UTC of one bar's period, clipped to the question's days."""
    lo, hi = day_bounds(q.start, q.end)
    if q.step is Step.HOUR:
        assert isinstance(period, datetime)
        since, until = period, period + timedelta(hours=1)
    else:
        first = period.date() if isinstance(period, datetime) else period
        last = next_period(first, Granularity(q.step.value)) - timedelta(days=1)
        since, until = day_bounds(first, last)
    return max(lo, since), min(hi, until)
