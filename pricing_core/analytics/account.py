"""The Overview page's data: balance and its state, spend, forecast, recent entries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import (
    account_daily,
    accounts,
    chats,
    ledger_entries,
    usage_daily,
    usage_events,
    wallets,
)
from pricing_core.adapters.schema_rollups import first_usage_day
from pricing_core.analytics.common import _target, _today, local_time
from pricing_core.config import get_settings
from pricing_core.domain.errors import UnknownAccount
from pricing_core.domain.forecast import PACE_WINDOW_DAYS, Forecast, forecast_spend
from pricing_core.domain.money import ZERO
from pricing_core.domain.principal import Principal
from pricing_core.ledger.wallets import EntryKind, LedgerEntry, Wallet

RECENT_ENTRIES = 20
TREND_DAYS = 30  # the spend trend on Overview
TOP_MODELS = 3


class BalanceState(StrEnum):
    """How worried the viewer should be about the balance (thresholds are settings)."""

    OK = "ok"
    LOW = "low"  # below PRICING_LOW_BALANCE_USD
    CRITICAL = "critical"  # below PRICING_CRITICAL_BALANCE_USD
    NEGATIVE = "negative"  # below zero: the account owes credit


@dataclass(frozen=True, slots=True)
class Overview:
    """The account at a glance. Amounts: Decimal USD.

    `recent_entries`: the last RECENT_ENTRIES ledger entries, newest first, and
    `entry_descriptions` one sentence for each (`describe_entry`).
    """

    account_id: str
    account_name: str
    balance: Decimal
    held: Decimal
    available: Decimal
    state: BalanceState
    spend_today: Decimal
    spend_this_month: Decimal
    spend_last_month: Decimal
    forecast: Forecast
    recent_entries: tuple[LedgerEntry, ...]
    has_usage: bool
    entry_descriptions: tuple[str, ...] = ()
    last_30_days: tuple[tuple[date, Decimal], ...] = ()  # (day, spend), oldest first
    top_models: tuple[tuple[str, Decimal], ...] = ()  # this month's 3 costliest

    @property
    def owes_credit(self) -> bool:
        return self.balance < 0

    @property
    def owed(self) -> Decimal:
        """Decimal USD the account owes (0 unless the balance is negative)."""
        return -self.balance if self.balance < 0 else ZERO


def balance_state(balance: Decimal) -> BalanceState:
    """Classify a balance with the `low_balance_usd` / `critical_balance_usd` settings."""
    settings = get_settings()
    if balance < 0:
        return BalanceState.NEGATIVE
    if balance < settings.critical_balance_usd:
        return BalanceState.CRITICAL
    if balance < settings.low_balance_usd:
        return BalanceState.LOW
    return BalanceState.OK


def _account_on(conn: Connection, account_id: str) -> tuple[str, Wallet, date | None]:
    """The account's name, its wallet and its first day with usage (None: no usage),
    in one query. Raises: UnknownAccount."""
    w = wallets.c
    row = conn.execute(
        select(accounts.c.name, w.balance, w.held, first_usage_day(account_id))
        .join_from(accounts, wallets, w.account_id == accounts.c.id)
        .where(accounts.c.id == account_id)
    ).first()
    if row is None:
        raise UnknownAccount(f"unknown account {account_id!r}")
    return row.name, Wallet(account_id, row.balance, row.held), row[3]


def _daily_spend(conn: Connection, account_id: str, start: date, end: date) -> dict[date, Decimal]:
    d = account_daily.c
    rows = conn.execute(
        select(d.day, func.sum(d.price))
        .where(d.account_id == account_id, d.day >= start, d.day <= end)
        .group_by(d.day)
    )
    return {day: total for day, total in rows}


# ---------------------------------------------------------------- overview


def overview(
    engine: Engine,
    viewer: Principal,
    *,
    account_id: str | None = None,
    now: datetime | None = None,
) -> Overview:
    """Balance, spend today / this month / last month (configured time zone), the
    forecast (runway at the pace of the last 14 days) and the last ledger entries.

    Reads: accounts, wallets, account_daily (the days since the start of last month,
    and the first day), usage_daily (this month's top models), ledger_entries (the
    last RECENT_ENTRIES posted) with their events and chats; five queries.
    Raises: PermissionDenied, UnknownAccount.
    """
    target = _target(viewer, account_id)
    today = _today(now)
    month_start = today.replace(day=1)
    last_month_start = (month_start - timedelta(days=1)).replace(day=1)
    trend_start = today - timedelta(days=TREND_DAYS - 1)
    since = min(last_month_start, today - timedelta(days=PACE_WINDOW_DAYS), trend_start)
    with engine.connect() as conn:
        name, wallet, first = _account_on(conn, target)
        daily = _daily_spend(conn, target, since, today)
        le = ledger_entries.c
        # latest postings first; (created_at, id) is the account index's own order, so
        # a busy account reads twenty entries, not all of them sorted by id
        recent = conn.execute(
            select(ledger_entries)
            .where(le.account_id == target)
            .order_by(le.created_at.desc(), le.id.desc())
            .limit(RECENT_ENTRIES)
        ).all()
        entries = tuple(
            LedgerEntry(
                r.id,
                r.account_id,
                r.kind,
                r.amount,
                r.balance_after,
                r.idempotency_key,
                r.reference,
                r.reason,
                r.actor,
                local_time(r.created_at),
            )
            for r in recent
        )
        descriptions = _describe_all(conn, target, entries)
        top = _top_models(conn, target, month_start)
    return Overview(
        account_id=target,
        account_name=name,
        balance=wallet.balance,
        held=wallet.held,
        available=wallet.available,
        state=balance_state(wallet.balance),
        spend_today=daily.get(today, ZERO),
        spend_this_month=sum((v for d, v in daily.items() if d >= month_start), ZERO),
        spend_last_month=sum(
            (v for d, v in daily.items() if last_month_start <= d < month_start), ZERO
        ),
        forecast=forecast_spend(
            daily=daily,
            balance=wallet.available,
            today=today,
            first_usage=first,
            unit=get_settings().display_unit,
        ),  # fmt: skip
        recent_entries=entries,
        has_usage=first is not None,
        entry_descriptions=descriptions,
        last_30_days=tuple(
            (trend_start + timedelta(days=k), daily.get(trend_start + timedelta(days=k), ZERO))
            for k in range(TREND_DAYS)
        ),
        top_models=top,
    )


def _top_models(conn: Connection, account_id: str, since: date) -> tuple[tuple[str, Decimal], ...]:
    """The account's TOP_MODELS costliest models since `since` (spend > 0), by spend."""
    d = usage_daily.c
    spend = func.sum(d.price).label("spend")
    rows = conn.execute(
        select(d.model, spend)
        .where(d.account_id == account_id, d.day >= since)
        .group_by(d.model)
        .having(spend > 0)
        .order_by(spend.desc(), d.model)
        .limit(TOP_MODELS)
    ).all()
    return tuple((model, total) for model, total in rows)


def _describe_all(
    conn: Connection, account_id: str, entries: tuple[LedgerEntry, ...]
) -> tuple[str, ...]:
    """`describe_entry` of each entry, usage entries with their events and chat titles
    (one indexed query, however many entries)."""
    requests = [x.reference for x in entries if x.kind == EntryKind.USAGE and x.reference]
    e, c = usage_events.c, chats.c
    rows = conn.execute(
        select(e.request_id, e.model, e.chat_id, e.input_tokens, e.output_tokens, c.title)
        .select_from(
            usage_events.outerjoin(chats, (c.account_id == e.account_id) & (c.chat_id == e.chat_id))
        )
        .where(e.account_id == account_id, e.request_id.in_(requests))
    ).all()
    events = {r.request_id: r for r in rows}
    titles = {r.chat_id: r.title for r in rows if r.chat_id}
    return tuple(
        describe_entry(x, events.get(x.reference) if x.reference else None, titles) for x in entries
    )


def describe_entry(
    entry: LedgerEntry, event: Any = None, titles: Mapping[str, str | None] | None = None
) -> str:
    """A short description of a ledger entry for people. A usage entry with its event
    (model, chat_id, input_tokens, output_tokens) reads "gpt-4o-mini · chat 'Trip plan'
    · 1,180 → 312 tokens" (`titles`: chat id -> title; the id when untitled)."""
    if entry.kind == EntryKind.USAGE:
        if event is None:
            return f"request {entry.reference}" if entry.reference else "usage"
        parts = [event.model]
        if event.chat_id:
            title = (titles or {}).get(event.chat_id) or event.chat_id
            parts.append(f"chat {title!r}")
        parts.append(f"{event.input_tokens:,} → {event.output_tokens:,} tokens")
        return " · ".join(parts)
    if entry.reason:
        return entry.reason
    return entry.reference or str(entry.kind)
