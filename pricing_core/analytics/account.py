"""The Overview page's data: balance and its state, spend, forecast, recent entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import accounts, ledger_entries, usage_daily
from pricing_core.analytics.common import _target, _today, local_time
from pricing_core.config import get_settings
from pricing_core.domain.errors import UnknownAccount
from pricing_core.domain.forecast import PACE_WINDOW_DAYS, Forecast, forecast_spend
from pricing_core.domain.money import ZERO
from pricing_core.domain.principal import Principal
from pricing_core.ledger.wallets import EntryKind, LedgerEntry, get_wallet_on

RECENT_ENTRIES = 20


class BalanceState(StrEnum):
    """How worried the viewer should be about the balance (thresholds are settings)."""

    OK = "ok"
    LOW = "low"  # below PRICING_LOW_BALANCE_USD
    CRITICAL = "critical"  # below PRICING_CRITICAL_BALANCE_USD
    NEGATIVE = "negative"  # below zero: the account owes credit


@dataclass(frozen=True, slots=True)
class Overview:
    """The account at a glance. Amounts: Decimal USD.

    `recent_entries`: the last RECENT_ENTRIES ledger entries, newest first.
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


def _account_name(conn: Connection, account_id: str) -> str:
    name = conn.execute(select(accounts.c.name).where(accounts.c.id == account_id)).scalar()
    if name is None:
        raise UnknownAccount(f"unknown account {account_id!r}")
    return name


def _daily_spend(conn: Connection, account_id: str, start: date, end: date) -> dict[date, Decimal]:
    d = usage_daily.c
    rows = conn.execute(
        select(d.day, func.sum(d.price))
        .where(d.account_id == account_id, d.day >= start, d.day <= end)
        .group_by(d.day)
    )
    return {day: total for day, total in rows}


def _first_usage_day(conn: Connection, account_id: str) -> date | None:
    d = usage_daily.c
    return conn.execute(select(func.min(d.day)).where(d.account_id == account_id)).scalar()


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

    Reads: wallets, accounts, usage_daily (days since the start of last month),
    ledger_entries (the last RECENT_ENTRIES by id).
    Raises: PermissionDenied, UnknownAccount.
    """
    target = _target(viewer, account_id)
    today = _today(now)
    month_start = today.replace(day=1)
    last_month_start = (month_start - timedelta(days=1)).replace(day=1)
    since = min(last_month_start, today - timedelta(days=PACE_WINDOW_DAYS))
    with engine.connect() as conn:
        name = _account_name(conn, target)
        wallet = get_wallet_on(conn, target)
        daily = _daily_spend(conn, target, since, today)
        first = _first_usage_day(conn, target)
        recent = conn.execute(
            select(ledger_entries)
            .where(ledger_entries.c.account_id == target)
            .order_by(ledger_entries.c.id.desc())
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
            daily=daily, balance=wallet.available, today=today, first_usage=first
        ),
        recent_entries=entries,
        has_usage=first is not None,
    )


def describe_entry(entry: LedgerEntry) -> str:
    """A short description of a ledger entry for people."""
    if entry.kind == EntryKind.USAGE:
        return f"request {entry.reference}" if entry.reference else "usage"
    if entry.reason:
        return entry.reason
    return entry.reference or str(entry.kind)
