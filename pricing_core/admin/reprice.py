"""The reprice preview: what the last days' pay-as-you-go usage would have cost
under proposed prices (`PriceChange`), exactly as `record_usage` would price it; and
applying it: a correcting ledger entry per affected event, never an edit.

A correction is the difference between the event's price under the proposed prices
and what it has been charged so far (its price plus earlier corrections), posted now,
so a closed period is corrected in the current one. Applying the same reprice again
finds nothing left to correct."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
from sqlalchemy import BigInteger, Engine, and_, func, insert, or_, select, type_coerce
from sqlalchemy.engine import Connection

from pricing_core.adapters.audit import actor_of, audit_reason, write_audit
from pricing_core.adapters.schema import usage_events
from pricing_core.adapters.schema_prices import price_corrections, reprices
from pricing_core.adapters.storage import run_write
from pricing_core.admin.prices import PriceChange
from pricing_core.catalog.price_book import (
    ModelPriceRow,
    PriceBook,
    load_price_book,
)
from pricing_core.catalog.vectorized import price_frame
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.money import ZERO, nanos_to_usd
from pricing_core.domain.principal import Principal, require_admin
from pricing_core.domain.usage_event import EARLIEST
from pricing_core.ledger.wallets import EntryKind, post_entry

# ---------------------------------------------------------------- reprice preview


@dataclass(frozen=True, slots=True)
class RepriceRow:
    """One model over the window: what its pay-as-you-go events were charged and
    what they would have been charged under the proposed price. USD."""

    provider: str
    model: str
    requests: int
    current: Decimal
    proposed: Decimal

    @property
    def delta(self) -> Decimal:
        return self.proposed - self.current


@dataclass(frozen=True, slots=True)
class RepricePreview:
    since: datetime
    until: datetime
    rows: tuple[RepriceRow, ...]

    @property
    def current(self) -> Decimal:
        return sum((r.current for r in self.rows), ZERO)

    @property
    def proposed(self) -> Decimal:
        return sum((r.proposed for r in self.rows), ZERO)

    @property
    def delta(self) -> Decimal:
        return self.proposed - self.current


def reprice_preview(
    engine: Engine,
    principal: Principal,
    changes: Sequence[PriceChange],
    *,
    days: int = 30,
    now: datetime | None = None,
) -> RepricePreview:
    """What the pay-as-you-go usage of the last `days` days would have cost under the
    proposed prices, per model and in total, next to what it was charged.

    Exact: every event of the edited models in the window is re-priced as
    `record_usage` would price it (`vectorized.price_frame`, which equals
    `PriceBook.quote` per event, rounded per event), with the proposed row in effect
    over the whole window. Rollups cannot give this exactly because prices are rounded
    per event, so only the edited models' events are read. Events charged by a plan
    (included / overage), a fixed operation price, or not priced are unaffected and
    left out.
    Raises: PermissionDenied, InvalidUsage.
    """
    require_admin(principal)
    since, until, frame = _repriced_window(engine, changes, days, now)
    rows = []
    if len(frame):
        for (provider, model), group in frame.groupby(["provider", "model"], sort=True):
            rows.append(
                RepriceRow(
                    str(provider),
                    str(model),
                    len(group),
                    nanos_to_usd(sum(int(v) for v in group["price"])),
                    nanos_to_usd(sum(int(v) for v in group["proposed"])),
                )
            )
    seen = {(r.provider, r.model) for r in rows}
    rows += [
        RepriceRow(c.provider, c.model, 0, ZERO, ZERO)
        for c in changes
        if (c.provider, c.model) not in seen
    ]
    return RepricePreview(since, until, tuple(rows))


_EVENT_COLUMNS = (
    "id", "account_id", "request_id", "provider", "model", "operation", "input_tokens",
    "output_tokens", "cached_tokens", "cache_write_tokens", "service_tier", "created_at",
)  # fmt: skip


def _repriced_window(
    engine: Engine, changes: Sequence[PriceChange], days: int, now: datetime | None
) -> tuple[datetime, datetime, pd.DataFrame]:
    """The window and its pay-as-you-go events of the changed models, with `proposed`:
    each event's price (nano-USD) with the proposed rows in effect over the window."""
    if not 1 <= int(days) <= 366:
        raise InvalidUsage(f"the reprice window must be 1-366 days, got {days}")
    until = now or datetime.now(UTC)
    since = until - timedelta(days=int(days))
    book = load_price_book(engine)
    models = dict(book.models)
    for change in changes:
        models[(change.provider, change.model)] = [
            ModelPriceRow(-1, EARLIEST, change.markup, change.override)
        ]
    proposed_book = PriceBook(book.default_markup, models, book.operations, book.custom)
    frame = _window_events(engine, changes, since, until)
    if len(frame):
        frame["proposed"] = price_frame(frame, proposed_book)["price"].to_numpy()
    return since, until, frame


def _window_events(
    engine: Engine, changes: Sequence[PriceChange], since: datetime, until: datetime
) -> pd.DataFrame:
    e = usage_events.c
    columns = [*_EVENT_COLUMNS, "price"]
    if not changes:
        return pd.DataFrame(columns=columns)
    query = select(
        *(e[c] for c in _EVENT_COLUMNS),
        type_coerce(e.price, BigInteger).label("price"),  # nano-USD integers
    ).where(
        e.created_at >= since,
        e.created_at < until,
        e.status == "priced",
        e.charge_basis == "payg",
        or_(*(and_(e.provider == c.provider, e.model == c.model) for c in changes)),
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


# ---------------------------------------------------------------- applying a reprice


@dataclass(frozen=True, slots=True)
class RepriceApplied:
    """What applying a reprice posted. `amount`: Decimal USD, + = charged more."""

    reprice_id: int | None  # None when nothing was left to correct
    events: int
    amount: Decimal


def apply_reprice(
    engine: Engine,
    principal: Principal,
    changes: Sequence[PriceChange],
    *,
    reason: str,
    days: int = 30,
    now: datetime | None = None,
) -> RepriceApplied:
    """Correct the pay-as-you-go charges of the last `days` days to the proposed
    prices: for each event whose price under them differs from what it has been
    charged (its price plus earlier corrections), one ledger entry for the difference
    (`adjustment` to charge more, `reversal` to give back; overdraft allowed, as the
    usage happened) and a `price_corrections` row linking it to the event and to the
    `reprices` row, all in one transaction with an audit row. Events are never edited.

    Idempotent: applied again, nothing is left to correct; two concurrent runs post
    one correction per event (the entry is keyed by the event and its corrections so
    far). Returns: RepriceApplied. Raises: PermissionDenied, InvalidUsage.
    """
    require_admin(principal)
    text = audit_reason(reason)
    at = now or datetime.now(UTC)
    since, until, frame = _repriced_window(engine, changes, days, at)
    actor = actor_of(principal)

    def work(conn: Connection) -> RepriceApplied:
        todo = _corrections_due(conn, frame)
        if not todo:
            return RepriceApplied(None, 0, ZERO)
        total = sum(delta for *_, delta in todo)
        reprice_id = conn.execute(
            insert(reprices)
            .values(
                changes=[_change_json(c) for c in changes],
                since=since,
                until=until,
                events=len(todo),
                amount=nanos_to_usd(total),
                actor=actor,
                reason=text,
                created_at=at,
            )
            .returning(reprices.c.id)
        ).scalar_one()
        for event_id, account_id, request_id, done, delta in todo:
            posting = post_entry(
                conn,
                account_id=account_id,
                amount=nanos_to_usd(-delta),
                kind=EntryKind.ADJUSTMENT if delta > 0 else EntryKind.REVERSAL,
                idempotency_key=f"reprice:{event_id}:{done}",
                reference=request_id,
                reason=f"repriced (reprice {reprice_id}): {text}"[:500],
                actor=actor,
                floor=None,
                now=at,
            )
            if posting.replayed:  # a concurrent run corrected this event first
                continue
            conn.execute(
                insert(price_corrections).values(
                    event_id=event_id,
                    account_id=account_id,
                    reprice_id=reprice_id,
                    amount=nanos_to_usd(delta),
                    ledger_entry_id=posting.entry.id,
                    created_at=at,
                )
            )
        write_audit(
            conn,
            actor=actor,
            action="price.reprice",
            now=at,
            target=", ".join(f"{c.provider}/{c.model}" for c in changes)[:200],
            after={"reprice_id": reprice_id, "events": len(todo), "amount": nanos_to_usd(total)},
            reason=text,
        )
        return RepriceApplied(int(reprice_id), len(todo), nanos_to_usd(total))

    return run_write(engine, work)


def _corrections_due(conn: Connection, frame: pd.DataFrame) -> list[tuple[int, str, str, int, int]]:
    """(event id, account, request id, corrections so far, delta nano-USD) per event
    whose proposed price differs from what it has been charged so far."""
    if not len(frame):
        return []
    ids = [int(i) for i in frame["id"]]
    so_far: dict[int, tuple[int, int]] = {}
    c = price_corrections.c
    for lo in range(0, len(ids), 5_000):
        for event_id, count, amount in conn.execute(
            select(c.event_id, func.count(), func.sum(type_coerce(c.amount, BigInteger)))
            .where(c.event_id.in_(ids[lo : lo + 5_000]))
            .group_by(c.event_id)
        ):
            so_far[int(event_id)] = (int(count), int(amount))
    due = []
    for r in frame.itertuples(index=False):
        count, corrected = so_far.get(int(r.id), (0, 0))
        delta = int(r.proposed) - (int(r.price) + corrected)
        if delta:
            due.append((int(r.id), str(r.account_id), str(r.request_id), count, delta))
    return sorted(due, key=lambda d: (d[1], d[0]))  # wallets locked in account order


def _change_json(change: PriceChange) -> dict[str, str | None]:
    rates = change.override
    return {
        "provider": change.provider,
        "model": change.model,
        "markup": str(change.markup),
        "input_mtok": None if rates is None else str(rates.input_mtok),
        "output_mtok": None if rates is None else str(rates.output_mtok),
    }
