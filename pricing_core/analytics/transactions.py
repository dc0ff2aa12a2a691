"""The Transactions page's data: the ledger by value date with usage per day (from
`usage_entries_daily`), one day's usage entries, and the CSV of the entries."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import BigInteger, Engine, String, and_, func, select, type_coerce
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import OTHER_THAN_USAGE, ledger_entries, usage_events
from pricing_core.adapters.schema_rollups import usage_entries_daily
from pricing_core.analytics.common import (
    _local_times,
    _target,
    _today,
    day_bounds,
    local_time,
    nanos_str,
)
from pricing_core.config import get_settings
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.money import nanos_to_usd
from pricing_core.domain.principal import Principal
from pricing_core.ledger.wallets import EntryKind

ENTRIES_SHOWN = 100  # a day's usage entries listed at once (the busiest: ~1,100 a day)
ROW_COLUMNS = [
    "value_at",
    "created_at",
    "day",
    "kind",
    "description",
    "entries",
    "amount",
    "balance_after",
]
ENTRY_COLUMNS = [
    "id",
    "value_at",
    "created_at",
    "kind",
    "amount",
    "balance_after",
    "reference",
    "reason",
    "actor",
]


@dataclass(frozen=True, slots=True)
class LedgerView:
    """The ledger of one account, filtered, newest value date first.

    An entry's value date is when the usage happened for a usage entry (its event's
    `created_at`, so imported usage sits on the days it was used), when it was posted
    for every other entry. `rows` has one row per value day for the usage entries
    (kind "usage", `entries` of them; `usage_entries_of_day` lists them) and one row
    per other entry; ties by posting order.
    Columns: value_at (aware, configured zone; a usage row's latest event), created_at
    (when the row's last entry was posted), day (date of value_at), kind, description
    (str), entries (int), amount (Decimal USD, signed), balance_after (Decimal USD, the
    balance after the row's last posted entry).
    """

    account_id: str
    rows: pd.DataFrame


# ---------------------------------------------------------------- transactions


def _value_at() -> Any:
    """A ledger entry's value date: its usage event's time for a usage entry (the
    event's request id is the entry's reference), else when it was posted."""
    return func.coalesce(usage_events.c.created_at, ledger_entries.c.created_at)


def _with_events(query: Any) -> Any:
    le, ue = ledger_entries.c, usage_events.c
    return query.select_from(
        ledger_entries.outerjoin(
            usage_events,
            (ue.account_id == le.account_id)
            & (ue.request_id == le.reference)
            & (le.kind == str(EntryKind.USAGE)),
        )
    )


def _kinds(kinds: Sequence[str] | None, start: date | None, end: date | None) -> set[str]:
    """The kinds asked for (every kind when none is), checked with the range."""
    if start and end and start > end:
        raise InvalidUsage(f"the date range starts ({start}) after it ends ({end})")
    return {str(EntryKind(k)) for k in kinds} if kinds else {str(k) for k in EntryKind}


def ledger_span(
    engine: Engine,
    viewer: Principal,
    *,
    account_id: str | None = None,
    now: datetime | None = None,
) -> tuple[date, date] | None:
    """(value day of the first ledger entry, today) in the configured zone, or None
    without entries. Raises PermissionDenied. Sources: usage_entries_daily and the
    account's other entries."""
    target = _target(viewer, account_id)
    u, le = usage_entries_daily.c, ledger_entries.c
    with engine.connect() as conn:
        first_usage = conn.execute(select(func.min(u.day)).where(u.account_id == target)).scalar()
        first_other = conn.execute(
            select(func.min(le.created_at)).where(le.account_id == target, OTHER_THAN_USAGE)
        ).scalar()
    firsts = [d for d in (first_usage, first_other and local_time(first_other).date()) if d]
    if not firsts:
        return None
    return min(firsts), max(min(firsts), _today(now))


def ledger_view(
    engine: Engine,
    viewer: Principal,
    *,
    kinds: Sequence[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    account_id: str | None = None,
) -> LedgerView:
    """The account's ledger, filtered by kind and value days (configured zone), with
    its usage entries grouped per value day. Amounts are integer nano-USD sums in the
    database (exact), converted to Decimal USD per row.
    Raises: InvalidUsage for an unknown kind or a reversed range; PermissionDenied.
    Sources: usage_entries_daily (with the last entry of each day for its balance)
    and the account's other entries (`ix_ledger_entries_account_other`)."""
    target = _target(viewer, account_id)
    wanted = _kinds(kinds, start, end)
    with engine.connect() as conn:
        found = _usage_days(conn, target, start, end) if EntryKind.USAGE in wanted else []
        found += _other_entries(conn, target, wanted - {str(EntryKind.USAGE)}, start, end)
    found.sort(key=lambda row: (row[0], row[-1]), reverse=True)  # value_at, then entry id
    rows = [
        (
            local_time(value_at),
            local_time(posted),
            day or local_time(value_at).date(),
            kind,
            description,
            entries,
            nanos_to_usd(amount),
            nanos_to_usd(balance),
        )
        for value_at, posted, day, kind, description, entries, amount, balance, _ in found
    ]
    return LedgerView(target, pd.DataFrame(rows, columns=ROW_COLUMNS))


def _usage_days(
    conn: Connection, account: str, start: date | None, end: date | None
) -> list[tuple[Any, ...]]:
    """The account's usage per value day: (last_at, posted, day, kind, description,
    entries, amount nanos, balance_after nanos, last entry id)."""
    u, le = usage_entries_daily.c, ledger_entries.c
    query = (
        select(
            u.last_at,
            le.created_at,
            u.day,
            u.entries,
            type_coerce(u.amount, BigInteger),
            type_coerce(le.balance_after, BigInteger),
            u.last_entry_id,
        )
        .select_from(
            usage_entries_daily.join(
                ledger_entries, and_(le.id == u.last_entry_id, le.account_id == u.account_id)
            )
        )
        .where(u.account_id == account)
    )
    if start:
        query = query.where(u.day >= start)
    if end:
        query = query.where(u.day <= end)
    return [
        (last_at, posted, day, str(EntryKind.USAGE),
         f"usage: {n:,} request{'' if n == 1 else 's'}", int(n), int(amount), int(balance), entry)
        for last_at, posted, day, n, amount, balance, entry in conn.execute(query)
    ]  # fmt: skip


def _other_entries(
    conn: Connection, account: str, kinds: set[str], start: date | None, end: date | None
) -> list[tuple[Any, ...]]:
    """The account's entries of `kinds` (not usage) posted in the range, as
    `_usage_days` shapes its rows (no day: the local day of when it was posted)."""
    if not kinds:
        return []
    le = ledger_entries.c
    query = select(
        le.created_at,
        le.kind,
        le.reason,
        le.reference,
        type_coerce(le.amount, BigInteger),
        type_coerce(le.balance_after, BigInteger),
        le.id,
    ).where(le.account_id == account, OTHER_THAN_USAGE, le.kind.in_(sorted(kinds)))
    if start:
        query = query.where(le.created_at >= day_bounds(start, start)[0])
    if end:
        query = query.where(le.created_at < day_bounds(end, end)[1])
    return [
        (at, at, None, kind, reason or reference or kind, 1, int(amount), int(balance), entry)
        for at, kind, reason, reference, amount, balance, entry in conn.execute(query)
    ]


def usage_entries_of_day(
    engine: Engine,
    viewer: Principal,
    *,
    day: date,
    account_id: str | None = None,
    limit: int = ENTRIES_SHOWN,
) -> pd.DataFrame:
    """The account's newest `limit` usage entries of one value day (configured zone),
    newest first; `ledger_csv` of that day has them all. Columns: ENTRY_COLUMNS;
    value_at and created_at aware in the configured zone, amount and balance_after
    Decimal USD. Raises PermissionDenied."""
    target = _target(viewer, account_id)
    le, ue, r = ledger_entries.c, usage_events.c, usage_entries_daily.c
    with engine.connect() as conn:
        # the day's latest event (the rollup's) bounds the index walk from above, so
        # the next day's events are not read; a day earlier from below, for a zone
        # changed since the day was recorded
        last_at = conn.execute(
            select(r.last_at).where(r.account_id == target, r.day == day)
        ).scalar()
        if last_at is None:
            return pd.DataFrame([], columns=ENTRY_COLUMNS)
        low = day_bounds(day - timedelta(days=1), day)[0]
        query = (
            select(
                le.id,
                ue.created_at,
                le.created_at,
                le.kind,
                type_coerce(le.amount, BigInteger),
                type_coerce(le.balance_after, BigInteger),
                le.reference,
                le.reason,
                le.actor,
            )
            .select_from(
                usage_events.join(
                    ledger_entries,
                    and_(le.id == ue.ledger_entry_id, le.account_id == ue.account_id),
                )
            )
            .where(
                ue.account_id == target,
                ue.created_at >= low,
                ue.created_at <= last_at,
                ue.day == day,
            )
            .order_by(ue.created_at.desc(), le.id.desc())
            .limit(limit)
        )
        rows = [
            (entry, local_time(value_at), local_time(posted), kind, nanos_to_usd(amount),
             nanos_to_usd(balance), reference, reason, actor)
            for entry, value_at, posted, kind, amount, balance, reference, reason, actor
            in conn.execute(query)
        ]  # fmt: skip
    return pd.DataFrame(rows, columns=ENTRY_COLUMNS)


def ledger_csv(
    engine: Engine,
    viewer: Principal,
    *,
    kinds: Sequence[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    account_id: str | None = None,
) -> str:
    """The account's ledger entries, filtered as `ledger_view` filters (one row each,
    oldest value date first), as CSV with exact decimal strings and ISO 8601 times in
    the configured zone: `value_at` (when the usage happened) and `created_at` (when
    the entry was posted); in credits mode also `amount_credits` and
    `balance_after_credits`, exact (`DisplayUnit.plain`). Raises as `ledger_view`."""
    target = _target(viewer, account_id)
    wanted = _kinds(kinds, start, end)
    le = ledger_entries.c
    value_at = _value_at()
    query = select(
        le.id,
        type_coerce(value_at, String),
        type_coerce(le.created_at, String),
        le.kind,
        type_coerce(le.amount, BigInteger),
        type_coerce(le.balance_after, BigInteger),
        le.reference,
        le.reason,
    )
    query = _with_events(query).where(le.account_id == target, le.kind.in_(sorted(wanted)))
    if start:
        query = query.where(value_at >= day_bounds(start, start)[0])
    if end:
        query = query.where(value_at < day_bounds(end, end)[1])
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(value_at, le.id)).all()
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [()] * 8
    ids, value_ats, posted, kind, amounts, balances, references, reasons = columns
    unit = get_settings().display_unit
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["entry_id", "value_at", "created_at", "kind", "amount_usd", "balance_after_usd"]
        + ["reference", "reason"]
        + (["amount_credits", "balance_after_credits"] if unit.credits else [])
    )
    extra = []
    if unit.credits:  # the same amounts in credits, exact
        for column in (amounts, balances):
            extra.append([unit.plain(nanos_to_usd(n)) for n in column])
    writer.writerows(
        zip(
            ids,
            [t.isoformat() for t in _local_times(value_ats)],
            [t.isoformat() for t in _local_times(posted)],
            kind,
            [nanos_str(n) for n in amounts],
            [nanos_str(n) for n in balances],
            [r or "" for r in references],
            [r or "" for r in reasons],
            *extra,
            strict=True,
        )
    )
    return out.getvalue()
