"""Invariant checks over the whole database (`verify_ledger`).

1. Every wallet's balance equals the sum of its ledger entries; every ledger entry
   and usage event belongs to an account with a wallet.
2. Every wallet's `held` equals the sum of its active holds.
3. Every entry's `balance_after` equals the running sum of its account's entries.
4. Every priced usage event's charge equals its ledger entry.
5. The daily rollups equal the events grouped by (day, account, user, provider,
   model, operation); the chat totals equal the events grouped by chat; the page
   rollups (`platform_daily`, `account_daily`) equal `usage_daily` regrouped, and
   `account_monthly` equals `account_daily` regrouped by month, `models_in_use`
   lists the models of `platform_daily`, and `usage_entries_daily` equals the usage
   entries grouped by their events' account and day; `chat_daily` equals the events
   grouped by account, day, chat and API key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, Engine, Select, and_, func, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import (
    account_daily,
    chats,
    holds,
    ledger_entries,
    platform_daily,
    usage_daily,
    usage_events,
    wallets,
)
from pricing_core.adapters.schema_prices import models_in_use
from pricing_core.adapters.schema_rollups import (
    NO_KEY,
    account_monthly,
    chat_daily,
    event_api_key,
    usage_entries_daily,
)


@dataclass(slots=True)
class LedgerReport:
    """Counts checked and the violations found (each a sentence)."""

    wallets: int = 0
    entries: int = 0
    events: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def verify_ledger(engine: Engine) -> LedgerReport:
    """Check every invariant of the ledger and rollups. Read-only.

    Returns: LedgerReport; `ok` is True when nothing is violated.
    """
    report = LedgerReport()
    with engine.connect() as conn:
        sums = dict(
            conn.execute(
                select(ledger_entries.c.account_id, func.sum(ledger_entries.c.amount)).group_by(
                    ledger_entries.c.account_id
                )
            ).all()
        )
        held = dict(
            conn.execute(
                select(holds.c.account_id, func.sum(holds.c.amount))
                .where(holds.c.status == "active")
                .group_by(holds.c.account_id)
            ).all()
        )
        for w in conn.execute(select(wallets)):
            report.wallets += 1
            total = sums.pop(w.account_id, None) or Decimal(0)
            if total != w.balance:
                report.violations.append(
                    f"wallet {w.account_id!r}: balance {w.balance} != sum of entries {total}"
                )
            active = held.get(w.account_id) or Decimal(0)
            if active != w.held:
                report.violations.append(
                    f"wallet {w.account_id!r}: held {w.held} != sum of active holds {active}"
                )
        for account_id in sums:
            report.violations.append(f"ledger entries for {account_id!r} have no wallet")
        # the hot tables have no foreign key to accounts (migration 0009): check here
        for (account_id,) in conn.execute(
            select(usage_events.c.account_id)
            .distinct()
            .where(~usage_events.c.account_id.in_(select(wallets.c.account_id)))
            .limit(20)
        ):
            report.violations.append(f"usage events for {account_id!r} have no wallet")

        report.entries = conn.execute(select(func.count()).select_from(ledger_entries)).scalar_one()
        running = func.sum(ledger_entries.c.amount).over(
            partition_by=ledger_entries.c.account_id, order_by=ledger_entries.c.id
        )
        chain = select(
            ledger_entries.c.id, ledger_entries.c.balance_after, running.label("running")
        ).subquery()
        for entry_id, after, run in conn.execute(
            select(chain.c.id, chain.c.balance_after, chain.c.running)
            .where(chain.c.balance_after != chain.c.running)
            .limit(20)
        ):
            report.violations.append(
                f"ledger entry {entry_id}: balance_after {after} != running sum {run} (nano-USD)"
            )

        report.events = conn.execute(select(func.count()).select_from(usage_events)).scalar_one()
        for ev_id, price, amount in conn.execute(
            select(usage_events.c.id, usage_events.c.price, ledger_entries.c.amount)
            .select_from(
                usage_events.outerjoin(
                    ledger_entries,
                    and_(
                        ledger_entries.c.id == usage_events.c.ledger_entry_id,
                        ledger_entries.c.account_id == usage_events.c.account_id,
                    ),
                )
            )
            .where(
                (usage_events.c.price != 0)
                & (
                    (ledger_entries.c.amount.is_(None))
                    | (ledger_entries.c.amount != -usage_events.c.price)
                )
            )
            .limit(20)
        ):
            report.violations.append(
                f"usage event {ev_id}: price {price} has no matching ledger entry ({amount})"
            )

        report.violations.extend(_compare_rollups(conn))
    return report


_KEYS = ("account_id", "day", "user_id", "provider", "model", "operation")
_PLATFORM_KEYS = ("day", "provider", "model", "operation")
_SUMS = ("input_tokens", "output_tokens", "cached_tokens", "provider_cost", "price")
_LIMIT = 20  # violations reported per check: enough to act on, bounded for a page


def _compare_rollups(conn: Connection) -> list[str]:
    """Rollups and chat totals against the events, compared in the database with
    EXCEPT both ways, so memory stays flat however many events there are."""
    e = usage_events.c
    d = usage_daily.c
    by_key = select(
        *(e[k] for k in _KEYS),
        func.count().label("requests"),
        *(func.coalesce(func.sum(e[s]), 0).label(s) for s in _SUMS),
    ).group_by(*(e[k] for k in _KEYS))
    stored = select(
        *(d[k] for k in _KEYS), d.requests, *(func.coalesce(d[s], 0).label(s) for s in _SUMS)
    )
    problems = _mismatches(
        conn, by_key, stored, key_len=6, what="usage_daily", sides=("events", "rollup")
    )
    # the page rollups against usage_daily (itself just checked against the events)
    for table, keys in ((platform_daily, _PLATFORM_KEYS), (account_daily, ("account_id", "day"))):
        from_daily = select(
            *(d[k] for k in keys),
            *(func.coalesce(func.sum(d[s]), 0).label(s) for s in ("requests", *_SUMS)),
        ).group_by(*(d[k] for k in keys))
        t = table.c
        kept = select(
            *(t[k] for k in keys),
            *(func.coalesce(func.sum(t[s]), 0).label(s) for s in ("requests", *_SUMS)),
        ).group_by(*(t[k] for k in keys))  # platform_daily: the stripes summed
        problems += _mismatches(
            conn,
            from_daily,
            kept,
            key_len=len(keys),
            what=table.name,
            sides=("usage_daily", table.name),
        )
    problems += _monthly_mismatches(conn)
    p = platform_daily.c
    problems += _mismatches(
        conn, select(p.provider, p.model).distinct(),
        select(models_in_use.c.provider, models_in_use.c.model),
        key_len=2, what="models_in_use", sides=("platform_daily", "models_in_use"),
    )  # fmt: skip
    problems += _usage_entries_mismatches(conn)
    problems += _chat_daily_mismatches(conn)

    c = chats.c
    chat_events = (
        select(e.account_id, e.chat_id, func.count(), func.coalesce(func.sum(e.price), 0))
        .where(e.chat_id.is_not(None))
        .group_by(e.account_id, e.chat_id)
    )
    chat_rows = select(c.account_id, c.chat_id, c.requests, c.cost)
    return problems + _mismatches(
        conn, chat_events, chat_rows, key_len=2, what="chat", sides=("events", "chat totals")
    )


def _monthly_mismatches(conn: Connection) -> list[str]:
    """`account_monthly` (kept by triggers) against `account_daily` summed by month."""
    d, m = account_daily.c, account_monthly.c
    month = (
        func.date_trunc("month", d.day).cast(Date)
        if conn.dialect.name == "postgresql"
        else func.date(d.day, "start of month")
    )
    sums = ("requests", *_SUMS)
    from_daily = select(d.account_id, month, *(func.sum(d[s]).label(s) for s in sums)).group_by(
        d.account_id, month
    )
    kept = select(m.account_id, m.month, *(m[s] for s in sums))
    return _mismatches(
        conn, from_daily, kept, key_len=2, what="account_monthly",
        sides=("account_daily", "account_monthly"),
    )  # fmt: skip


def _usage_entries_mismatches(conn: Connection) -> list[str]:
    """`usage_entries_daily` (written by every recording path) against the usage
    entries grouped by their events' account and day."""
    e, le, u = usage_events.c, ledger_entries.c, usage_entries_daily.c
    from_entries = (
        select(e.account_id, e.day, func.count(), func.sum(le.amount), func.max(le.id))
        .add_columns(func.max(e.created_at))
        .select_from(usage_events.join(ledger_entries, le.id == e.ledger_entry_id))
        .group_by(e.account_id, e.day)
    )
    kept = select(u.account_id, u.day, u.entries, u.amount, u.last_entry_id, u.last_at)
    return _mismatches(
        conn, from_entries, kept, key_len=2, what="usage_entries_daily",
        sides=("usage entries", "usage_entries_daily"),
    )  # fmt: skip


def _chat_daily_mismatches(conn: Connection) -> list[str]:
    """`chat_daily` (written by every recording path) against the events grouped by
    account, day, chat and API key."""
    e, c = usage_events.c, chat_daily.c
    keys = (
        e.account_id,
        e.day,
        func.coalesce(e.chat_id, NO_KEY),
        func.coalesce(event_api_key(), NO_KEY),
    )
    from_events = select(
        *(k.label(f"k{i}") for i, k in enumerate(keys)),
        func.count(),
        *(func.coalesce(func.sum(e[s]), 0) for s in _SUMS),
    ).group_by(*keys)
    kept = select(c.account_id, c.day, c.chat_id, c.api_key, c.requests, *(c[s] for s in _SUMS))
    return _mismatches(
        conn, from_events, kept, key_len=4, what="chat_daily", sides=("events", "chat_daily"),
    )  # fmt: skip


def _mismatches(
    conn: Connection,
    derived: Select[Any],
    stored: Select[Any],
    *,
    key_len: int,
    what: str,
    sides: tuple[str, str],
) -> list[str]:
    """Rows on either side with no equal row on the other, as sentences."""
    return [
        f"{what} {tuple(row[:key_len])}: {side} totals {tuple(row[key_len:])} have no equal "
        "on the other side"
        for side, rows in zip(
            sides,
            (_one_sided(conn, derived, stored), _one_sided(conn, stored, derived)),
            strict=True,
        )
        for row in rows
    ]


def _one_sided(conn: Connection, left: Select[Any], right: Select[Any]) -> list[Any]:
    """Up to `_LIMIT` rows of `left` that `right` does not hold (NULLs compare equal)."""
    only = left.except_(right).subquery()
    return list(conn.execute(select(only).limit(_LIMIT)))
