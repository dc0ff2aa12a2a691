"""Explore's plan questions by day, week or month, from the daily rollups.

A plan is not on the rollups, but it changes only when a subscription starts or
ends. An account with no subscription in the range was on pay-as-you-go throughout:
its rows are summed in the database. A subscribed account's day that no subscription
boundary falls inside had one plan all day: its rollup rows carry that plan. The
few days a boundary splits are read from the events (`explore_events`), each event
with the plan in effect at its time, so the answer equals the events'.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import BigInteger, Engine, Table, func, or_, select, type_coerce

from pricing_core.adapters.schema import account_daily, usage_daily
from pricing_core.adapters.schema_billing import subscriptions
from pricing_core.analytics.common import day_bounds
from pricing_core.analytics.explore_events import AMOUNTS, by_day
from pricing_core.analytics.explore_question import Group, Question
from pricing_core.domain.periods import Granularity, period_start
from pricing_core.domain.plans import PAYG_CODE

SUMS = ("requests", *AMOUNTS)  # what every Explore frame sums


def rollup_sums(table: Table) -> list[Any]:
    """SQL: the sum of each of SUMS in a daily rollup, as integers (nano-USD, counts)."""
    return [func.sum(type_coerce(table.c[s], BigInteger)).label(s) for s in SUMS]


_SPLIT = object()  # a subscription starts or ends inside the day


def plan_frame(
    engine: Engine, q: Question, target: str | None, dims: list[Group]
) -> tuple[pd.DataFrame, str]:
    """(frame, table read) for a question by day, week or month whose dimensions are
    the plan and any the rollups hold: the frame has `explore_events.events_frame`'s
    columns (day, each dimension's column, requests, AMOUNTS, period)."""
    other = [d for d in dims if d is not Group.PLAN]
    table: Table = usage_daily if other else account_daily
    t, s = table.c, subscriptions.c
    since, until = day_bounds(q.start, q.end)
    overlapping = [s.started_at < until, or_(s.ended_at.is_(None), s.ended_at > since)]
    if target is not None:
        overlapping.append(s.account_id == target)
    subscribed = select(s.account_id).where(*overlapping)
    keys = [t[d.column] for d in other]
    where = [t.day >= q.start, t.day <= q.end]
    if target is not None:
        where.append(t.account_id == target)
    where += [t[g.column].in_(list(kept)) for g, kept in q.filters.items() if kept and g in other]
    sums = rollup_sums(table)
    with engine.connect() as conn:
        subs = conn.execute(
            select(s.account_id, s.plan_code, s.started_at, s.ended_at).where(*overlapping)
        ).all()
        payg = conn.execute(
            select(t.day, *keys, *sums)
            .where(*where, t.account_id.not_in(subscribed))
            .group_by(t.day, *keys)
        ).all()
        on_plans = (
            conn.execute(
                select(t.account_id, t.day, *keys, *sums)
                .where(*where, t.account_id.in_(subscribed))
                .group_by(t.account_id, t.day, *keys)
            ).all()
            if subs
            else []
        )
    names = [d.column for d in other]
    columns = ["day", "plan", *names, *SUMS]
    rows = [(day, PAYG_CODE, *rest) for day, *rest in payg]
    plan_of = _day_plans(subs)
    split: set[tuple[str, date]] = set()
    for account, day, *rest in on_plans:
        plan = plan_of(account, day)
        if plan is _SPLIT:
            split.add((account, day))
        else:
            rows.append((day, plan, *rest))
    frames = [pd.DataFrame(rows, columns=columns)]
    for account, day in sorted(split):
        one_day = dataclasses.replace(q, start=day, end=day)
        frames.append(by_day(engine, one_day, account, dims).drop(columns="period"))
    found = [f for f in frames if len(f)]  # a split day's events may all be filtered out
    frame = pd.concat(found, ignore_index=True) if found else frames[0]
    kept = q.filters.get(Group.PLAN)
    if kept:
        frame = frame[frame["plan"].isin(list(kept))].reset_index(drop=True)
    frame["period"] = [period_start(d, Granularity(q.step.value)) for d in frame["day"]]
    return frame, f"{table.name} with subscriptions"


def _day_plans(subs: Sequence[Any]) -> Any:
    """(account, day) -> the plan code in effect all that day (the account's latest
    subscription started by the day's start, unless it had ended; else payg), or
    _SPLIT when a subscription of the account starts or ends inside the day."""
    by_account: dict[str, list[tuple[str, datetime, datetime | None]]] = {}
    for account, code, started, ended in subs:
        by_account.setdefault(account, []).append((code, started, ended))
    for entries in by_account.values():
        entries.sort(key=lambda e: e[1])

    def plan_of(account: str, day: date) -> object:
        low, high = day_bounds(day, day)
        entries = by_account.get(account, [])
        for _, started, ended in entries:
            if low < started < high or (ended is not None and low < ended < high):
                return _SPLIT
        begun = [e for e in entries if e[1] <= low]
        if not begun:
            return PAYG_CODE
        code, _, ended = begun[-1]
        return code if ended is None or ended > low else PAYG_CODE

    return plan_of
