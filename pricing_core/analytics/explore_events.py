"""Explore's reads of usage events: what the daily rollups cannot answer (hours,
chats, API keys, plans) and the events behind one bar of an answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import BigInteger, Connection, Engine, case, func, or_, select, type_coerce

from pricing_core.adapters.schema import api_keys, usage_events
from pricing_core.adapters.schema_billing import plans, subscriptions
from pricing_core.adapters.schema_rollups import event_api_key
from pricing_core.analytics.chats import chats_active
from pricing_core.analytics.common import _local_times, day_bounds, rows_frame
from pricing_core.analytics.explore_question import (
    NO_API_KEY,
    NO_CHAT,
    OTHER,
    Group,
    Question,
    Step,
    _scope,
)
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.money import nanos_to_usd
from pricing_core.domain.periods import Granularity, next_period, period_start
from pricing_core.domain.plans import PAYG_CODE
from pricing_core.domain.principal import Principal

AMOUNTS = ("input_tokens", "output_tokens", "cached_tokens", "provider_cost", "price")  # summed
MISSING = {Group.CHAT: NO_CHAT, Group.API_KEY: NO_API_KEY}  # the group of a NULL


def _expr(group: Group) -> Any:
    """The column of `group` in `usage_events`. A plan is not stored on the event: the
    account is read, and `_resolve` puts the plan in effect at the event's time."""
    e = usage_events.c
    if group is Group.API_KEY:
        return event_api_key()
    return e.account_id if group is Group.PLAN else e[group.column]


def _kept(group: Group, kept: Sequence[str]) -> Any:
    """SQL: the events whose `group` is in `kept` (MISSING: a NULL); None for a plan,
    which `_resolve` filters."""
    if group is Group.PLAN:
        return None
    column, missing = _expr(group), MISSING.get(group)
    if missing in kept:
        return column.in_([k for k in kept if k != missing]) | column.is_(None)
    return column.in_(list(kept))


def _where(q: Question, target: str | None, since: datetime, until: datetime) -> list[Any]:
    e = usage_events.c
    where = [e.created_at >= since, e.created_at < until]
    if target is not None:
        where.append(e.account_id == target)
    kept = [_kept(g, values) for g, values in q.filters.items() if values]
    return where + [k for k in kept if k is not None]


def _resolve(conn: Connection, frame: pd.DataFrame, q: Question, dims: list[Group]) -> pd.DataFrame:
    """Name the NULL groups (MISSING), put each event's plan in its PLAN column (read
    as its account), and keep the filtered plans."""
    for group, name in MISSING.items():
        if group in dims:
            frame[group.column] = frame[group.column].fillna(name)
    if Group.PLAN not in dims:
        return frame
    frame["plan"] = _plans_at(conn, frame["plan"], frame["created_at"])
    plans = q.filters.get(Group.PLAN)
    return frame[frame["plan"].isin(plans)].reset_index(drop=True) if plans else frame


def _plans_at(conn: Connection, accounts: pd.Series, times: pd.Series) -> list[str]:
    """The plan code of each (account, instant) from `subscriptions` ("payg" outside
    any subscription)."""
    if accounts.empty:
        return []
    s = subscriptions.c
    rows = conn.execute(
        select(s.account_id, s.plan_code, s.started_at, s.ended_at).where(
            s.account_id.in_(sorted(set(accounts)))
        )
    ).all()
    events = pd.DataFrame(
        {"account_id": list(accounts), "at": pd.to_datetime(list(times), utc=True, format="mixed")}
    ).reset_index(names="i")
    if not rows:
        return [PAYG_CODE] * len(events)
    subs = pd.DataFrame([tuple(r) for r in rows], columns=["account_id", "code", "start", "end"])
    subs["start"] = pd.to_datetime(subs["start"], utc=True, format="mixed")
    subs["end"] = pd.to_datetime(subs["end"], utc=True, format="mixed")
    merged = pd.merge_asof(
        events.sort_values("at"), subs.sort_values("start"), left_on="at", right_on="start",
        by="account_id", direction="backward",
    ).sort_values("i")  # fmt: skip
    active = merged["code"].notna() & (merged["end"].isna() | (merged["at"] < merged["end"]))
    return [c if a else PAYG_CODE for c, a in zip(merged["code"], active, strict=True)]


def events_frame(
    engine: Engine, q: Question, target: str | None, dims: list[Group]
) -> pd.DataFrame:
    """The usage events of the question grouped by period and dimensions: each
    dimension's column, requests, `AMOUNTS` (integer nano-USD and tokens) and period.
    Days, weeks and months are grouped in the database by the events' recorded day
    (`usage_events.day`, as the rollups are); hours per event in the configured zone."""
    if q.step is not Step.HOUR:
        return by_day(engine, q, target, dims)
    since, until = day_bounds(q.start, q.end)
    e = usage_events.c
    query = select(
        e.created_at,
        *(_expr(d).label(d.column) for d in dims),
        *(type_coerce(e[s], BigInteger).label(s) for s in AMOUNTS),
    ).where(*_where(q, target, since, until))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        frame = pd.DataFrame(
            [tuple(r) for r in rows], columns=["created_at", *(d.column for d in dims), *AMOUNTS]
        )
        frame = _resolve(conn, frame, q, dims)
    frame["requests"] = 1
    frame["period"] = list(_local_times(frame["created_at"]).dt.floor("h"))
    return frame


def by_day(engine: Engine, q: Question, target: str | None, dims: list[Group]) -> pd.DataFrame:
    """`events_frame` for days, weeks and months: one row per recorded day and group,
    summed in the database; a plan is the one in effect at each event's time."""
    since, until = day_bounds(q.start, q.end)
    e = usage_events.c
    per_event = (
        select(
            e.day,
            *((_plan_at_event() if d is Group.PLAN else _expr(d)).label(d.column) for d in dims),
            *(type_coerce(e[s], BigInteger).label(s) for s in AMOUNTS),
        )
        .where(*_where(q, target, since, until))
        .subquery()
    )
    c = per_event.c
    keys = [c.day, *(c[d.column] for d in dims)]
    query = select(
        *keys, func.count().label("requests"), *(func.sum(c[s]).label(s) for s in AMOUNTS)
    ).group_by(*keys)
    if q.filters.get(Group.PLAN):
        query = query.where(c.plan.in_(list(q.filters[Group.PLAN])))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = rows_frame(rows, ["day", *(d.column for d in dims), "requests", *AMOUNTS])
    for group, name in MISSING.items():
        if group in dims:
            frame[group.column] = frame[group.column].fillna(name)
    frame["period"] = [period_start(d, Granularity(q.step.value)) for d in frame["day"]]
    return frame


def _plan_at_event() -> Any:
    """SQL: the plan code in effect at the event's time, as `_plans_at` finds it: the
    account's latest subscription started by then, unless it had ended; else payg."""
    e, s = usage_events.c, subscriptions.c
    latest = (
        select(case((or_(s.ended_at.is_(None), s.ended_at > e.created_at), s.plan_code)))
        .where(s.account_id == e.account_id, s.started_at <= e.created_at)
        .order_by(s.started_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(latest, PAYG_CODE)


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
    chosen = {question.group: (bar.group,)}
    if question.subgroup is not None:
        chosen[question.subgroup] = (bar.subgroup,)
    narrowed = Question(
        question.start, question.end, question.metric, question.group, question.subgroup,
        question.step, filters={**question.filters, **chosen},
    )  # fmt: skip
    e = usage_events.c
    where = _where(narrowed, target, since, until)
    columns = [e[c] if c != "price" else type_coerce(e.price, BigInteger).label("price")
               for c in EVENT_COLUMNS]  # fmt: skip
    plans = Group.PLAN in narrowed.filters
    with engine.connect() as conn:
        query = select(*columns, *([e.account_id.label("plan")] if plans else [])).where(*where)
        query = query.order_by(e.created_at.desc())
        if plans:  # the plan is known per event once read: count after `_resolve`
            frame = pd.DataFrame([tuple(r) for r in conn.execute(query).all()],
                                 columns=[*EVENT_COLUMNS, "plan"])  # fmt: skip
            frame = _resolve(conn, frame, narrowed, [Group.PLAN])
            count, frame = len(frame), frame[EVENT_COLUMNS].head(limit)
        else:
            count = conn.execute(select(func.count()).where(*where)).scalar_one()
            rows = conn.execute(query.limit(limit)).all()
            frame = pd.DataFrame([tuple(r) for r in rows], columns=EVENT_COLUMNS)
    frame["created_at"] = _local_times(frame["created_at"]) if len(frame) else frame["created_at"]
    frame["price"] = [nanos_to_usd(int(v)) for v in frame["price"]]
    return frame, int(count)


def event_dimension_values(
    conn: Connection, group: Group, target: str | None, start: date, end: date, limit: int
) -> list[str]:
    """The choices of a dimension only events know: the account's chats active in the
    days, its API keys, the plans; with the group of events that have none."""
    if group is Group.CHAT:
        return [*chats_active(conn, target, start, end, limit=limit), NO_CHAT]
    if group is Group.API_KEY:
        k = api_keys.c
        query = select(k.id) if target is None else select(k.id).where(k.account_id == target)
        return [*sorted(conn.execute(query.limit(limit)).scalars()), NO_API_KEY]
    codes = conn.execute(select(plans.c.code).distinct().limit(limit)).scalars()
    return sorted({PAYG_CODE, *codes})


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
