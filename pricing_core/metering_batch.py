"""The fast path of `metering.record_usage_many`: many events in one transaction with
a handful of statements, with the same outcome as `record_on` for each in turn.

New events of pay-as-you-go accounts (request id unseen, no ledger entry under its
key, the account never had a subscription) are collected into a run; a run is
priced, debited through `ledger.post_entries` (wallets locked once, floors checked on
the running balance), and written as multi-row inserts of events plus one upsert per
chat and per daily rollup key. Anything else (a retry of a stored request, the same
request id twice in one batch, an account with a plan) first writes the pending run,
then goes through `record_on`, so replays, conflicts and plan charges behave exactly
as one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from .catalog import PriceBook
from .config import get_settings
from .costing import ChargeBasis, Quote
from .errors import PricingError, UnknownAccount
from .ledger import EntryKind, EntryRequest, Posting, lock_wallets, post_entries
from .metering import UsageEvent, UsageResult, _greatest, _least, _quote, record_on, validate_event
from .money import ZERO
from .storage import (
    chats,
    dialect_insert,
    insert_many_returning_ids,
    ledger_entries,
    subscriptions,
    usage_daily,
    usage_events,
)

_IN_BATCH = 1000  # keys per IN (...) list


def _existing_pairs(
    conn: Connection, first: Any, second: Any, pairs: list[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which (first, second) pairs exist. Two plain IN lists (index-friendly and
    cheap to plan on both back ends), then exact pairs filtered here."""
    wanted = set(pairs)
    found: set[tuple[str, str]] = set()
    for start in range(0, len(pairs), _IN_BATCH):
        part = pairs[start : start + _IN_BATCH]
        query = select(first, second).where(
            first.in_(sorted({a for a, _ in part})), second.in_([b for _, b in part])
        )
        found.update(pair for pair in map(tuple, conn.execute(query)) if pair in wanted)
    return found  # type: ignore[return-value]


def record_batch_on(
    conn: Connection,
    events: Sequence[UsageEvent],
    *,
    book: PriceBook,
    now: datetime,
    allow_overdraft: bool = False,
) -> list[UsageResult | PricingError]:
    """Record `events` inside an open write transaction, in order, exactly as
    `record_on` would one by one. Returns: one result or PricingError per event."""
    out: list[UsageResult | PricingError | None] = [None] * len(events)
    checked: list[tuple[int, UsageEvent, bool]] = []
    for i, event in enumerate(events):
        try:
            checked.append((i, validate_event(event, now=now), event.created_at is not None))
        except PricingError as exc:
            out[i] = exc
    keys = sorted({(e.account_id, e.request_id) for _, e, _ in checked})
    e, c = usage_events.c, ledger_entries.c
    unusual = _existing_pairs(conn, e.account_id, e.request_id, keys) | {
        (a, k.removeprefix("usage:"))
        for a, k in _existing_pairs(
            conn, c.account_id, c.idempotency_key, [(a, f"usage:{r}") for a, r in keys]
        )
    }
    # Accounts that ever had a subscription go one by one: their plan decides charges.
    accounts = sorted({a for a, _ in keys})
    on_plans = {
        a
        for start in range(0, len(accounts), _IN_BATCH)
        for (a,) in conn.execute(
            select(subscriptions.c.account_id)
            .where(subscriptions.c.account_id.in_(accounts[start : start + _IN_BATCH]))
            .distinct()
        )
    }
    run: list[tuple[int, UsageEvent]] = []
    in_run: set[tuple[str, str]] = set()
    for i, event, timestamp_given in checked:
        key = (event.account_id, event.request_id)
        if key in unusual or key in in_run or event.account_id in on_plans:
            _write_run(conn, run, out, book=book, now=now, allow_overdraft=allow_overdraft)
            unusual |= in_run
            run, in_run = [], set()
            try:
                out[i] = record_on(
                    conn,
                    event,
                    book=book,
                    now=now,
                    allow_overdraft=allow_overdraft,
                    timestamp_given=timestamp_given,
                )
            except PricingError as exc:
                out[i] = exc
            unusual.add(key)
        else:
            run.append((i, event))
            in_run.add(key)
    _write_run(conn, run, out, book=book, now=now, allow_overdraft=allow_overdraft)
    assert all(r is not None for r in out)
    return out  # type: ignore[return-value]


def _write_run(
    conn: Connection,
    run: list[tuple[int, UsageEvent]],
    out: list[UsageResult | PricingError | None],
    *,
    book: PriceBook,
    now: datetime,
    allow_overdraft: bool,
) -> None:
    """Write a run of new, distinct events (see the module docstring)."""
    priced: list[tuple[int, UsageEvent, Quote]] = []
    for i, event in run:
        try:
            priced.append((i, event, _quote(book, event)))
        except PricingError as exc:
            out[i] = exc
    if not priced:
        return
    wallets = lock_wallets(conn, (e.account_id for _, e, _ in priced))
    charged = [(i, e, q) for i, e, q in priced if q.price > 0]
    postings = iter(
        post_entries(
            conn,
            [
                EntryRequest(
                    account_id=e.account_id,
                    amount=-q.price,
                    kind=EntryKind.USAGE,
                    idempotency_key=f"usage:{e.request_id}",
                    reference=e.request_id,
                    floor=None if allow_overdraft else ZERO,
                )
                for _, e, q in charged
            ],
            now=now,
        )
    )
    running = {a: w.balance for a, w in wallets.items()}
    tz = get_settings().tz
    written: list[tuple[int, UsageEvent, Quote, int | None, Decimal]] = []
    rows: list[dict[str, Any]] = []
    for i, event, quote in priced:
        if quote.price > 0:
            posting = next(postings)
            if not isinstance(posting, Posting):
                out[i] = posting
                continue
            entry_id, balance_after = posting.entry.id, posting.entry.balance_after
            running[event.account_id] = balance_after
        elif event.account_id not in running:
            out[i] = UnknownAccount(f"unknown account {event.account_id!r}")
            continue
        else:
            entry_id, balance_after = None, running[event.account_id]
        assert event.created_at is not None
        rows.append(
            dict(
                account_id=event.account_id,
                request_id=event.request_id,
                user_id=event.user_id,
                chat_id=event.chat_id,
                operation=event.operation,
                provider=event.provider,
                model=event.model,
                input_tokens=event.input_tokens,
                output_tokens=event.output_tokens,
                cached_tokens=event.cached_tokens,
                provider_cost=quote.provider_cost,
                price=quote.price,
                price_version=quote.price_version,
                charge_basis=str(quote.basis),
                status="unpriced" if quote.basis is ChargeBasis.UNPRICED else "priced",
                ledger_entry_id=entry_id,
                day=event.created_at.astimezone(tz).date(),
                created_at=event.created_at,
                metadata=dict(event.metadata) if event.metadata is not None else None,
            )
        )
        written.append((i, event, quote, entry_id, balance_after))
    if not rows:
        return
    ids = insert_many_returning_ids(conn, usage_events, rows)
    _upsert_chats(conn, rows)
    _upsert_daily(conn, rows)
    for event_id, (i, event, quote, entry_id, balance_after) in zip(ids, written, strict=True):
        out[i] = UsageResult(
            event.request_id,
            event.account_id,
            event_id,
            quote.provider_cost,
            quote.price,
            quote.basis,
            quote.price_version,
            quote.explanation,
            balance_after,
            entry_id,
            False,
        )


def _upsert_chats(conn: Connection, rows: list[dict[str, Any]]) -> None:
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        if r["chat_id"] is None:
            continue
        t = totals.get((r["account_id"], r["chat_id"]))
        if t is None:
            totals[(r["account_id"], r["chat_id"])] = dict(
                account_id=r["account_id"],
                chat_id=r["chat_id"],
                user_id=r["user_id"],
                title=None,
                requests=1,
                input_tokens=r["input_tokens"],
                output_tokens=r["output_tokens"],
                provider_cost=r["provider_cost"],
                cost=r["price"],
                first_at=r["created_at"],
                last_at=r["created_at"],
            )
        else:
            t["requests"] += 1
            t["input_tokens"] += r["input_tokens"]
            t["output_tokens"] += r["output_tokens"]
            t["provider_cost"] += r["provider_cost"]
            t["cost"] += r["price"]
            t["first_at"] = min(t["first_at"], r["created_at"])
            t["last_at"] = max(t["last_at"], r["created_at"])
    if not totals:
        return
    stmt = dialect_insert(conn, chats)
    c = chats.c
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[c.account_id, c.chat_id],
            set_={
                "requests": c.requests + stmt.excluded.requests,
                "input_tokens": c.input_tokens + stmt.excluded.input_tokens,
                "output_tokens": c.output_tokens + stmt.excluded.output_tokens,
                "provider_cost": c.provider_cost + stmt.excluded.provider_cost,
                "cost": c.cost + stmt.excluded.cost,
                "first_at": _least(conn, c.first_at, stmt.excluded.first_at),
                "last_at": _greatest(conn, c.last_at, stmt.excluded.last_at),
            },
        ),
        list(totals.values()),
    )


_DAILY_KEY = ("account_id", "day", "user_id", "provider", "model", "operation")
_DAILY_SUMS = ("input_tokens", "output_tokens", "cached_tokens", "provider_cost", "price")


def _upsert_daily(conn: Connection, rows: list[dict[str, Any]]) -> None:
    totals: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        key = tuple(r[k] for k in _DAILY_KEY)
        t = totals.get(key)
        if t is None:
            totals[key] = {k: r[k] for k in _DAILY_KEY + _DAILY_SUMS} | {"requests": 1}
        else:
            t["requests"] += 1
            for k in _DAILY_SUMS:
                t[k] += r[k]
    stmt = dialect_insert(conn, usage_daily)
    d = usage_daily.c
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[d[k] for k in _DAILY_KEY],
            set_={"requests": d.requests + stmt.excluded.requests}
            | {k: d[k] + stmt.excluded[k] for k in _DAILY_SUMS},
        ),
        list(totals.values()),
    )
