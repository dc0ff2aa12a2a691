"""The admin's view of accounts, read-only: search, one account's state (balance,
holds, plan, spend this month), its ledger and its usage. Decimal USD.
Balance changes are `admin.accounts`'."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import Engine, func, or_, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import (
    account_daily,
    accounts,
    holds,
    ledger_entries,
    usage_daily,
    users,
    wallets,
)
from pricing_core.adapters.storage import NUMERIC_ORDER
from pricing_core.config import get_settings
from pricing_core.domain.errors import (
    UnknownAccount,
)
from pricing_core.domain.money import ZERO
from pricing_core.domain.periods import month_period
from pricing_core.domain.principal import Principal, require_admin
from pricing_core.ledger.wallets import (
    LedgerEntry,
)
from pricing_core.plans.subscriptions import plan_names_on


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """An account as the admin list shows it. Decimal USD."""

    account_id: str
    name: str
    kind: str
    emails: tuple[str, ...]
    balance: Decimal
    held: Decimal
    spend_this_month: Decimal
    plan: str
    created_at: datetime

    @property
    def available(self) -> Decimal:
        return self.balance - self.held


@dataclass(frozen=True, slots=True)
class HoldRow:
    id: str
    amount: Decimal
    request_id: str | None
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One day x model of an account's usage (from the rollups). USD."""

    day: date
    model: str
    operation: str
    requests: int
    input_tokens: int
    output_tokens: int
    price: Decimal
    provider_cost: Decimal


def _summaries(conn: Connection, ids: Sequence[str], now: datetime) -> list[AccountSummary]:
    if not ids:
        return []
    rows = conn.execute(
        select(accounts, wallets.c.balance, wallets.c.held)
        .join(wallets, wallets.c.account_id == accounts.c.id)
        .where(accounts.c.id.in_(ids))
    ).all()
    emails: dict[str, list[str]] = {}
    for account_id, email in conn.execute(
        select(users.c.account_id, users.c.email)
        .where(users.c.account_id.in_(ids), users.c.email.is_not(None))
        .order_by(users.c.email)
    ):
        emails.setdefault(account_id, []).append(email)
    d = account_daily.c
    spend = dict(
        conn.execute(
            select(d.account_id, func.sum(d.price))
            .where(d.account_id.in_(ids), d.day >= month_period(now, get_settings().tz).first_day)
            .group_by(d.account_id)
        ).all()
    )
    plans = plan_names_on(conn, [r.id for r in rows], now)
    by_id = {
        r.id: AccountSummary(
            r.id,
            r.name,
            r.kind,
            tuple(emails.get(r.id, ())),
            r.balance,
            r.held,
            spend.get(r.id) or ZERO,
            plans[r.id],
            r.created_at,
        )
        for r in rows
    }
    return [by_id[i] for i in ids if i in by_id]


def search_accounts(
    engine: Engine,
    principal: Principal,
    query: str = "",
    *,
    limit: int = 50,
    now: datetime | None = None,
) -> list[AccountSummary]:
    """Accounts whose id, name or a user's email contains `query` (case-insensitive;
    empty: all), by name with numbers compared as numbers, at most `limit`. Spend is
    this calendar month's (configured zone), from the rollups. Raises: PermissionDenied.
    """
    require_admin(principal)
    at = now or datetime.now(UTC)
    needle = (query or "").strip().lower()[:320]
    a = accounts.c
    stmt = (
        select(a.id)
        .order_by(a.name.collate(NUMERIC_ORDER), a.id.collate(NUMERIC_ORDER))
        .limit(max(1, min(int(limit), 500)))
    )
    if needle:
        stmt = stmt.where(
            or_(
                func.lower(a.id).contains(needle, autoescape=True),
                func.lower(a.name).contains(needle, autoescape=True),
                a.id.in_(
                    select(users.c.account_id).where(
                        func.lower(users.c.email).contains(needle, autoescape=True)
                    )
                ),
            )
        )
    with engine.connect() as conn:
        ids = list(conn.execute(stmt).scalars())
        return _summaries(conn, ids, at)


def account_summary(
    engine: Engine, principal: Principal, account_id: str, *, now: datetime | None = None
) -> AccountSummary:
    """One account's balance, available balance, holds, spend this month and plan.

    Raises: PermissionDenied, UnknownAccount.
    """
    require_admin(principal)
    with engine.connect() as conn:
        found = _summaries(conn, [account_id], now or datetime.now(UTC))
    if not found:
        raise UnknownAccount(f"unknown account {account_id!r}")
    return found[0]


def account_holds(engine: Engine, principal: Principal, account_id: str) -> list[HoldRow]:
    """The account's active holds, newest first. Raises: PermissionDenied."""
    require_admin(principal)
    h = holds.c
    with engine.connect() as conn:
        return [
            HoldRow(r.id, r.amount, r.request_id, r.created_at, r.expires_at)
            for r in conn.execute(
                select(holds)
                .where(h.account_id == account_id, h.status == "active")
                .order_by(h.created_at.desc())
            )
        ]


def account_ledger(
    engine: Engine, principal: Principal, account_id: str, *, limit: int = 200
) -> list[LedgerEntry]:
    """The account's newest ledger entries first. Raises: PermissionDenied."""
    require_admin(principal)
    le = ledger_entries.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(ledger_entries)
            .where(le.account_id == account_id)
            .order_by(le.id.desc())
            .limit(max(1, min(int(limit), 5000)))
        ).all()
    return [LedgerEntry(**{f: getattr(r, f) for f in LedgerEntry.__slots__}) for r in rows]  # type: ignore[attr-defined]


def account_usage(
    engine: Engine, principal: Principal, account_id: str, *, start: date, end: date
) -> list[UsageRow]:
    """The account's usage per day, model and operation over [start, end], newest day
    first. Raises: PermissionDenied. Source: usage_daily."""
    require_admin(principal)
    d = usage_daily.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                d.day,
                d.provider,
                d.model,
                d.operation,
                func.sum(d.requests),
                func.sum(d.input_tokens),
                func.sum(d.output_tokens),
                func.sum(d.price),
                func.sum(d.provider_cost),
            )
            .where(d.account_id == account_id, d.day >= start, d.day <= end)
            .group_by(d.day, d.provider, d.model, d.operation)
            .order_by(d.day.desc(), d.provider, d.model, d.operation)
        ).all()
    return [
        UsageRow(r[0], f"{r[1]}/{r[2]}", r[3], int(r[4]), int(r[5]), int(r[6]), r[7], r[8])
        for r in rows
    ]
