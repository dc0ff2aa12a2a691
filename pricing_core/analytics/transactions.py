"""The Transactions page's data: the ledger filtered, usage grouped per day, CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import BigInteger, Engine, String, func, select, type_coerce

from pricing_core.adapters.schema import ledger_entries, usage_events
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


@dataclass(frozen=True, slots=True)
class LedgerView:
    """The ledger of one account, filtered.

    Entries are ordered by value date: when the usage happened for a usage entry
    (its event's `created_at`, so imported usage sits on the days it was used), when
    it was posted for every other entry; ties by posting order.

    `rows`: what the Transactions page lists, newest value date first: non-usage
    entries one by one and usage entries grouped per run within a calendar day.
    Columns: group (int), value_at (aware, configured zone; the group's last entry),
    created_at (when that entry was posted), day (date of value_at), kind,
    description (str), entries (int), amount (Decimal, signed), balance_after (Decimal,
    the balance after the row's last posted entry).
    `entries_nanos`: every matching entry, newest first, with its group; amounts as
    exact integer nano-USD (columns group, id, value_at, created_at, kind,
    amount_nanos, balance_after_nanos, reference, reason, actor). Use
    `entries_of(group)` for one row's entries in Decimal USD.
    """

    account_id: str
    rows: pd.DataFrame
    entries_nanos: pd.DataFrame

    def entries_of(self, group: int) -> pd.DataFrame:
        """The entries of one row, newest first. Columns: ENTRY_COLUMNS (Decimal USD)."""
        chosen = self.entries_nanos[self.entries_nanos["group"] == group]
        return pd.DataFrame(
            {
                "group": chosen["group"],
                "id": chosen["id"],
                "value_at": chosen["value_at"],
                "created_at": chosen["created_at"],
                "kind": chosen["kind"],
                "amount": [nanos_to_usd(n) for n in chosen["amount_nanos"]],
                "balance_after": [nanos_to_usd(n) for n in chosen["balance_after_nanos"]],
                "reference": chosen["reference"],
                "reason": chosen["reason"],
                "actor": chosen["actor"],
            }
        ).reset_index(drop=True)


# ---------------------------------------------------------------- transactions


ENTRY_COLUMNS = [
    "group",
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
ROW_COLUMNS = [
    "group",
    "value_at",
    "created_at",
    "day",
    "kind",
    "description",
    "entries",
    "amount",
    "balance_after",
]


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


def ledger_span(
    engine: Engine,
    viewer: Principal,
    *,
    account_id: str | None = None,
    now: datetime | None = None,
) -> tuple[date, date] | None:
    """(value day of the first ledger entry, today) in the configured zone, or None
    without entries."""
    target = _target(viewer, account_id)
    value_at = _value_at()
    with engine.connect() as conn:
        first = conn.execute(
            _with_events(select(func.min(value_at))).where(ledger_entries.c.account_id == target)
        ).scalar()
    if first is None:
        return None
    first_day = (
        local_time(first).date() if first.tzinfo else local_time(first.replace(tzinfo=UTC)).date()
    )
    return first_day, max(first_day, _today(now))


def ledger_view(
    engine: Engine,
    viewer: Principal,
    *,
    kinds: Sequence[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    account_id: str | None = None,
) -> LedgerView:
    """The account's ledger, filtered by kind and calendar days (configured zone).

    Usage entries are grouped per calendar day (a run of usage entries in one day
    not interrupted by another kind of entry is one row), so the list stays readable;
    the running balance of a row is the balance after its last entry. Amounts are
    summed as integer nano-USD (exact) and converted to Decimal USD per row.
    Raises: InvalidUsage for an unknown kind or a reversed range; PermissionDenied.
    """
    target = _target(viewer, account_id)
    wanted = [EntryKind(k) for k in kinds] if kinds else None
    if start and end and start > end:
        raise InvalidUsage(f"the date range starts ({start}) after it ends ({end})")
    le = ledger_entries.c
    value_at = _value_at()
    query = select(
        le.id,
        type_coerce(value_at, String).label("value_at"),
        type_coerce(le.created_at, String).label("created_at"),
        le.kind,
        type_coerce(le.amount, BigInteger).label("amount_nanos"),
        type_coerce(le.balance_after, BigInteger).label("balance_after_nanos"),
        le.reference,
        le.reason,
        le.actor,
    )
    query = _with_events(query).where(le.account_id == target)
    if start:
        query = query.where(value_at >= day_bounds(start, start)[0])
    if end:
        query = query.where(value_at < day_bounds(end, end)[1])
    if wanted:
        query = query.where(le.kind.in_([str(k) for k in wanted]))
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(value_at, le.id)).all()
    columns = ["id", "value_at", "created_at", "kind", "amount_nanos", "balance_after_nanos"]
    columns += ["reference", "reason", "actor"]
    entries = pd.DataFrame([tuple(r) for r in rows], columns=columns, dtype=object)
    if entries.empty:
        empty_entries = pd.DataFrame(columns=["group", *columns])
        return LedgerView(target, pd.DataFrame(columns=ROW_COLUMNS), empty_entries)
    entries["value_at"] = _local_times(entries["value_at"])
    entries["created_at"] = _local_times(entries["created_at"])
    day = entries["value_at"].dt.date
    usage = entries["kind"] == str(EntryKind.USAGE)
    continues = usage & usage.shift(fill_value=False) & (day == day.shift())
    entries.insert(0, "group", (~continues).cumsum().astype("int64") - 1)
    grouped = entries.groupby("group", sort=True)
    last = grouped.tail(1).set_index("group")
    first = grouped.head(1).set_index("group")
    # the balance after a row is the one after its last *posted* entry
    balances = entries.loc[grouped["id"].idxmax()].set_index("group")["balance_after_nanos"]
    counts = grouped.size()
    descriptions = [
        (f"usage: {n:,} request{'' if n == 1 else 's'}" if kind == EntryKind.USAGE else None)
        or reason
        or reference
        or kind
        for kind, n, reason, reference in zip(
            first["kind"], counts, first["reason"], first["reference"], strict=True
        )
    ]
    # column by column: a lookup per group and cell cost more than the query at scale
    when = last["value_at"]
    groups = list(
        zip(
            counts.index.astype(int),
            when.dt.to_pydatetime(),
            last["created_at"].dt.to_pydatetime(),
            when.dt.date,
            first["kind"],
            descriptions,
            counts.astype(int),
            [nanos_to_usd(int(n)) for n in grouped["amount_nanos"].sum()],
            [nanos_to_usd(int(n)) for n in balances],
            strict=True,
        )
    )
    rows_frame = pd.DataFrame(groups[::-1], columns=ROW_COLUMNS)
    return LedgerView(target, rows_frame, entries.iloc[::-1].reset_index(drop=True))


def ledger_csv(view: LedgerView) -> str:
    """The view's entries (one row each, oldest value date first) as CSV with exact
    decimal strings and ISO 8601 times in the configured zone: `value_at` (when the
    usage happened) and `created_at` (when the entry was posted); in credits mode also
    `amount_credits` and `balance_after_credits`, exact (`DisplayUnit.plain`)."""
    unit = get_settings().display_unit
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["entry_id", "value_at", "created_at", "kind", "amount_usd", "balance_after_usd"]
        + ["reference", "reason"]
        + (["amount_credits", "balance_after_credits"] if unit.credits else [])
    )
    entries = view.entries_nanos.iloc[::-1]
    extra = []
    if unit.credits:  # the same amounts in credits, exact
        for name in ("amount_nanos", "balance_after_nanos"):
            extra.append([unit.plain(nanos_to_usd(n)) for n in entries[name]])
    writer.writerows(
        zip(
            entries["id"],
            [t.isoformat() for t in entries["value_at"]],
            [t.isoformat() for t in entries["created_at"]],
            entries["kind"],
            [nanos_str(n) for n in entries["amount_nanos"]],
            [nanos_str(n) for n in entries["balance_after_nanos"]],
            [r or "" for r in entries["reference"]],
            [r or "" for r in entries["reason"]],
            *extra,
            strict=True,
        )
    )
    return out.getvalue()
