"""Batched ingest: many usage events, priced vectorized, written with set-based SQL.

`record_usage_batch(engine, events)` records exactly what calling `record_usage` on
each event in the same order would record: the same events, the same ledger entries
(amounts, `balance_after`, keys), the same wallet balances and versions, chat totals
and daily rollups. Only the row ids and the cost differ.

How a chunk (default 50,000 events, one write transaction) is recorded:

1. checks (`batch_checks`): every rule of `domain.usage_event.validate_event`,
   vectorized; rows the fast checks cannot clear (non-ASCII ids, metadata, odd
   types) go through `validate_event` itself, so errors and messages are the same;
2. the chunk's wallets are locked (`SELECT ... FOR UPDATE`, in account order, on
   PostgreSQL; SQLite holds its one write lock from `BEGIN IMMEDIATE`);
3. request ids already recorded are replayed (same content) or refused
   (`DuplicateRequest`); a request id repeated inside the chunk splits the chunk
   into consecutive segments, so the repeat sees the first occurrence as the
   per-event path would;
4. prices: `catalog.vectorized.price_frame` (exact nano-USD integers, equal to
   `charges.quote_event` row by row);
5. balances, in event order per account: a debit is refused (`InsufficientBalance`)
   when it would take `balance - held` below zero, unless `allow_overdraft`; a
   refused event changes nothing and later (smaller) events may still pass, as on
   the per-event path. Accounts that never come near zero are settled with one
   cumulative sum; the others event by event;
6. writes: ledger entries and events with COPY (PostgreSQL) or `executemany`
   (SQLite), one wallet update per account, chat totals and daily rollups
   aggregated in memory and upserted once per key (`rollups.upsert_rollups`, the same
   writer a single charge uses).

Events whose charge is not plain pay-as-you-go (`charges.needs_per_event_charge`:
plan subscribers, anonymous users, pricing switched off) are recorded with
`record.record_on` inside the same transaction, so `charges.decide_charge` decides
them exactly as one by one. Holds are not part of batches: settle them with `settle`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from pricing_core.adapters.storage import run_write
from pricing_core.catalog.price_book import PriceBook, get_price_book
from pricing_core.catalog.vectorized import price_frame
from pricing_core.config import get_settings
from pricing_core.domain.costing import special_rows
from pricing_core.domain.errors import (
    DuplicateRequest,
    InsufficientBalance,
    PricingError,
    UnknownAccount,
    UnknownModel,
)
from pricing_core.domain.money import nanos_to_usd
from pricing_core.domain.usage_event import (
    UsageEvent,
    same_content,
    validate_event,
)
from pricing_core.metering import batch_sql
from pricing_core.metering.batch_checks import Checked, check_rows, chunks, event_of
from pricing_core.metering.charges import needs_per_event_charge
from pricing_core.metering.record import record_on


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event the batch did not record: its 0-based position in the batch, its
    request id (as given) and the error `record_usage` would have raised."""

    position: int
    request_id: object
    error: PricingError


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a batch did. Amounts: Decimal USD, totals of the newly recorded events."""

    recorded: int = 0
    replayed: int = 0
    rejected: tuple[Rejection, ...] = ()
    provider_cost: Decimal = Decimal(0)
    price: Decimal = Decimal(0)

    def __add__(self, other: BatchResult) -> BatchResult:
        return BatchResult(
            self.recorded + other.recorded,
            self.replayed + other.replayed,
            self.rejected + other.rejected,
            self.provider_cost + other.provider_cost,
            self.price + other.price,
        )


def record_usage_batch(
    engine: Engine,
    events: pd.DataFrame | Iterable[UsageEvent],
    *,
    allow_overdraft: bool = False,
    now: datetime | None = None,
    chunk_size: int = 50_000,
    on_progress: Callable[[int], None] | None = None,
) -> BatchResult:
    """Record many usage events at once, exactly as `record_usage` would one by one.

    Args:
        events: UsageEvent objects, or a DataFrame with the UsageEvent fields as
            columns (cached_tokens, chat_id, created_at and metadata optional; missing
            values mean None; created_at timezone-aware).
        allow_overdraft: record events even when the wallet cannot pay (imports of
            past usage); otherwise such events are rejected with InsufficientBalance.
        chunk_size: events per write transaction; a chunk is all-or-nothing.
        on_progress: called with the number of events done after each chunk.
    Returns: BatchResult; rejected events carry the PricingError `record_usage` would
        raise for them (InvalidUsage, UnknownModel, DuplicateRequest, UnknownAccount,
        InsufficientBalance); nothing of a rejected event is written.
    Raises: InvalidUsage if a DataFrame lacks a required column.
    Prices: the price book in effect at each event's `created_at`.
    """
    at = now or datetime.now(UTC)
    book = get_price_book(engine)
    total = BatchResult()
    for offset, frame, originals in chunks(events, chunk_size):
        total = total + _record_chunk(engine, frame, originals, offset, book, at, allow_overdraft)
        if on_progress:
            on_progress(len(frame))
    return total


def per_event_accounts(conn: Connection, account_ids: list[str]) -> set[str]:
    """Accounts whose events go through `record.record_on` one by one, inside the
    batch's transaction: those that ever had a plan subscription (a plan's charge
    depends on the month's earlier messages: included, overage, cap). Accounts that
    never subscribed are pay-as-you-go at every instant, which the set-based path
    prices exactly.
    """
    return batch_sql.subscribed_accounts(conn, account_ids)


# ---------------------------------------------------------------- one chunk


def _record_chunk(
    engine: Engine,
    frame: pd.DataFrame,
    originals: list[UsageEvent] | None,
    offset: int,
    book: PriceBook,
    now: datetime,
    allow_overdraft: bool,
) -> BatchResult:
    checked = check_rows(frame, originals, now)

    def work(conn: Connection) -> BatchResult:
        return _Chunk(conn, frame, originals, checked, book, now, allow_overdraft).run(offset)

    try:
        return run_write(engine, work)
    except IntegrityError:  # a concurrent writer recorded one of these request ids
        return run_write(engine, work)


class _Chunk:
    """Records one chunk inside one write transaction."""

    def __init__(
        self,
        conn: Connection,
        frame: pd.DataFrame,
        originals: list[UsageEvent] | None,
        checked: Checked,
        book: PriceBook,
        now: datetime,
        allow_overdraft: bool,
    ) -> None:
        self.conn = conn
        self.frame = frame
        self.originals = originals
        self.checked = checked
        self.book = book
        self.now = now
        self.allow_overdraft = allow_overdraft
        self.error = checked.error.copy()
        self.replayed = np.zeros(len(frame), dtype=bool)
        self.accounts = frame["account_id"].astype(object).to_numpy()
        self.requests = frame["request_id"].astype(object).to_numpy()
        self.recorded_cost = 0
        self.recorded_price = 0
        self.recorded = 0
        self.special = special_rows(frame)

    def run(self, offset: int) -> BatchResult:
        valid = np.flatnonzero(pd.isna(self.error))
        ids = sorted(set(self.accounts[valid].tolist()))
        self.wallets = batch_sql.lock_wallets(self.conn, ids)  # account -> [balance, held, n]
        # accounts with a row the set-based path does not price (cache writes, a
        # service tier) go one by one too: an account's wallet has one writer per chunk
        special = per_event_accounts(self.conn, ids) | set(self.accounts[self.special].tolist())
        for segment in _segments(self.accounts[valid], self.requests[valid]):
            self._segment(valid[segment], special)
        batch_sql.update_wallets(self.conn, self.wallets, self.now)
        rejected = tuple(
            Rejection(offset + int(i), self.requests[i], self.error[i])
            for i in np.flatnonzero(pd.notna(self.error))
        )
        return BatchResult(
            self.recorded,
            int(self.replayed.sum()),
            rejected,
            nanos_to_usd(self.recorded_cost),
            nanos_to_usd(self.recorded_price),
        )

    def _segment(self, rows: np.ndarray, special: set[str]) -> None:
        rows = self._drop_existing(rows)
        users = self.frame["user_id"].to_numpy()[rows]
        mask = needs_per_event_charge(self.accounts[rows], users, special)
        for i in rows[mask]:
            self._record_one(int(i))
        rows = rows[~mask]
        if not len(rows):
            return
        priced = self._price(rows)
        keep = pd.isna(self.error[rows])
        rows, priced = rows[keep], priced[keep]
        accepted, after = self._debit(rows, priced["price"].to_numpy())
        rows, priced, after = rows[accepted], priced[accepted], after[accepted]
        if not len(rows):
            return
        self._write(rows, priced, after)

    def _drop_existing(self, rows: np.ndarray) -> np.ndarray:
        found = batch_sql.existing_events(self.conn, self.accounts[rows], self.requests[rows])
        if not found:
            return rows
        keep = np.ones(len(rows), dtype=bool)
        for k, i in enumerate(rows):
            row = found.get((self.accounts[i], self.requests[i]))
            if row is None:
                continue
            keep[k] = False
            event = self._event(int(i))
            if same_content(row, event, timestamp_given=bool(self.checked.given[i])):
                self.replayed[i] = True
            else:
                self.error[i] = DuplicateRequest(
                    f"request id {event.request_id!r} was already recorded with different content"
                )
        return rows[keep]

    def _event(self, i: int) -> UsageEvent:
        """Row i as a validated UsageEvent (created_at in UTC)."""
        if i in self.checked.events:
            return self.checked.events[i]
        event = self.originals[i] if self.originals is not None else event_of(self.frame, i)
        return validate_event(event, now=self.now)

    def _record_one(self, i: int) -> None:
        try:
            result = record_on(
                self.conn,
                self._event(i),
                book=self.book,
                now=self.now,
                allow_overdraft=self.allow_overdraft,
                timestamp_given=bool(self.checked.given[i]),
            )
        except PricingError as exc:
            self.error[i] = exc
            return
        if result.replayed:
            self.replayed[i] = True
            return
        self.recorded += 1
        self.recorded_cost += int(result.provider_cost.scaleb(9))
        self.recorded_price += int(result.price.scaleb(9))

    def _price(self, rows: np.ndarray) -> pd.DataFrame:
        part = self.frame.iloc[rows][["provider", "model", "operation"]].reset_index(drop=True)
        for name in ("input_tokens", "output_tokens", "cached_tokens"):
            part[name] = self._tokens(name, rows)
        part["created_at"] = pd.to_datetime(self.checked.micros[rows], unit="us", utc=True)
        priced = price_frame(part, self.book, errors="collect")
        failed = priced["error"].notna().to_numpy()
        if failed.any():
            queue = get_settings().unpriced_policy == "queue"
            for k in np.flatnonzero(failed):
                exc = priced["error"].iloc[k]
                if not (queue and isinstance(exc, UnknownModel)):
                    self.error[rows[k]] = exc
        return priced

    def _tokens(self, name: str, rows: np.ndarray) -> np.ndarray:
        values = self.frame[name]
        if values.dtype.kind in "iu":
            return values.to_numpy(dtype=np.int64)[rows]
        return np.array([int(getattr(self._event(int(i)), name)) for i in rows], dtype=np.int64)

    def _debit(self, rows: np.ndarray, price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which rows the wallets accept, and each row's balance after it (nano-USD)."""
        n = len(rows)
        accepted = np.ones(n, dtype=bool)
        after = np.zeros(n, dtype=object if price.dtype == object else np.int64)
        accounts = pd.Series(self.accounts[rows])
        for account, index in accounts.groupby(accounts, sort=False).indices.items():
            wallet = self.wallets.get(account)
            if wallet is None:
                for k in index:
                    self.error[rows[k]] = UnknownAccount(f"unknown account {account!r}")
                accepted[index] = False
                continue
            balance, held, _ = wallet
            debits = price[index]
            running = balance - np.cumsum(debits)
            if self.allow_overdraft or (len(running) and running.min() - held >= 0):
                after[index] = running
                wallet[0] = running[-1] if len(running) else balance
                wallet[2] += int((debits > 0).sum())
                continue
            for k, debit in zip(index, debits, strict=True):
                if debit > 0 and wallet[0] - held - debit < 0:
                    self.error[rows[k]] = InsufficientBalance(
                        account, nanos_to_usd(wallet[0] - held), nanos_to_usd(int(debit))
                    )
                    accepted[k] = False
                    continue
                wallet[0] -= int(debit)
                wallet[2] += int(debit > 0)
                after[k] = wallet[0]
        return accepted, after

    def _write(self, rows: np.ndarray, priced: pd.DataFrame, after: np.ndarray) -> None:
        price = priced["price"].to_numpy()
        cost = priced["provider_cost"].to_numpy()
        frame = self.frame.iloc[rows].reset_index(drop=True)
        micros = self.checked.micros[rows]
        records = batch_sql.Records(
            account_id=self.accounts[rows],
            request_id=self.requests[rows],
            user_id=frame["user_id"].astype(object).to_numpy(),
            chat_id=frame["chat_id"]
            .astype(object)
            .where(frame["chat_id"].notna(), None)
            .to_numpy(),
            operation=frame["operation"].astype(object).to_numpy(),
            provider=frame["provider"].astype(object).to_numpy(),
            model=frame["model"].astype(object).to_numpy(),
            input_tokens=self._tokens("input_tokens", rows),
            output_tokens=self._tokens("output_tokens", rows),
            cached_tokens=self._tokens("cached_tokens", rows),
            provider_cost=cost,
            price=price,
            price_version=priced["price_version"].astype(object).to_numpy(),
            basis=priced["basis"].astype(object).to_numpy(),
            balance_after=after,
            micros=micros,
            day=_days(micros),
            metadata=[self.checked.metadata[i] for i in rows],
        )
        batch_sql.write_records(self.conn, records, self.now)
        self.recorded += len(rows)
        self.recorded_cost += int(cost.sum())
        self.recorded_price += int(price.sum())


def _days(micros: np.ndarray) -> np.ndarray:
    """Calendar days (datetime64[D]) in the configured time zone."""
    stamps = pd.to_datetime(micros, unit="us", utc=True)
    tz = get_settings().timezone
    if tz != "UTC":
        stamps = stamps.tz_convert(tz)
    return stamps.tz_localize(None).to_numpy().astype("datetime64[D]")


def _segments(accounts: np.ndarray, requests: np.ndarray) -> list[np.ndarray]:
    """Split positions into consecutive runs with no repeated (account, request id)."""
    keys = pd.DataFrame({"a": accounts, "r": requests})
    if not keys.duplicated().any():
        return [np.arange(len(keys))]
    segments: list[np.ndarray] = []
    seen: set[tuple[object, object]] = set()
    start = 0
    for k, key in enumerate(zip(accounts, requests, strict=True)):
        if key in seen:
            segments.append(np.arange(start, k))
            seen, start = set(), k
        seen.add(key)
    segments.append(np.arange(start, len(keys)))
    return segments
