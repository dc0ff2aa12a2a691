"""Recording usage: one model call -> price, debit, event, chat totals, daily rollup.

Everything for one event happens in one transaction, keyed by `(account_id,
request_id)`: a retry with the same content returns the original result and writes
nothing; the same request id with different content raises `DuplicateRequest`.
All checks run before the first write, so a refused event leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import chats, ledger_entries, usage_daily, usage_events
from pricing_core.adapters.storage import dialect_insert
from pricing_core.catalog.price_book import PriceBook, get_price_book
from pricing_core.config import get_settings
from pricing_core.domain.costing import ChargeBasis, Quote, TokenCounts
from pricing_core.domain.errors import DuplicateRequest, PricingError, UnknownModel
from pricing_core.domain.money import ZERO, format_usd_exact
from pricing_core.domain.usage_event import UsageEvent, same_content, validate_event
from pricing_core.ledger.holds import HoldStatus, close_hold_on
from pricing_core.ledger.wallets import EntryKind, get_wallet_on, idempotent_write, post_entry
from pricing_core.plans.plan_charges import (
    count_plan_message_on,
    decide_plan_charge_on,
    explain_plan_event,
)


@dataclass(frozen=True, slots=True)
class UsageResult:
    """What recording an event did. Amounts: Decimal USD.

    `balance_after` is the wallet balance right after this event's debit.
    `replayed` is True when the request id had already been recorded.
    """

    request_id: str
    account_id: str
    event_id: int
    provider_cost: Decimal
    price: Decimal
    basis: ChargeBasis
    price_version: str
    explanation: str
    balance_after: Decimal
    ledger_entry_id: int | None
    replayed: bool


def _quote(book: PriceBook, event: UsageEvent) -> Quote:
    counts = TokenCounts(event.input_tokens, event.output_tokens, event.cached_tokens)
    assert event.created_at is not None
    try:
        return book.quote(
            provider=event.provider,
            model=event.model,
            operation=event.operation,
            counts=counts,
            at=event.created_at,
        )
    except UnknownModel as exc:
        if get_settings().unpriced_policy != "queue":
            raise
        return Quote(
            ZERO,
            ZERO,
            ChargeBasis.UNPRICED,
            Decimal(1),
            (),
            "unpriced",
            f"not charged yet: {exc}; queued for an admin to price",
        )


ANONYMOUS_PREFIX = "anon:"  # user ids of anonymous sessions: "anon:<session id>"


def free_reason_for(user_id: str) -> str | None:
    """Why an event of `user_id` is recorded at $0, or None if it is charged:
    anonymous users are never debited; `PRICING_ENABLE_PRICING` off records tokens only."""
    if user_id.startswith(ANONYMOUS_PREFIX):
        return "anonymous user"
    if not get_settings().enable_pricing:
        return "pricing is switched off"
    return None


def record_on(
    conn: Connection,
    event: UsageEvent,
    *,
    book: PriceBook,
    now: datetime,
    allow_overdraft: bool = False,
    timestamp_given: bool = True,
    hold_id: str | None = None,
    free_reason: str | None = None,
) -> UsageResult:
    """Record one validated event inside an open write transaction (see `record_usage`).

    Args:
        hold_id: settle this active hold of the account in the same transaction: it
            is closed as settled and its amount leaves `wallets.held`; the actual
            price is charged even above the hold (no floor), and the event is then
            flagged `exceeded_hold`. Raises HoldNotActive if the hold is not active.
        free_reason: record the event (tokens, provider cost) but charge 0, basis
            `free`; by default `free_reason_for(user_id)` (anonymous users, pricing
            switched off).
    """
    assert event.created_at is not None
    existing = conn.execute(
        select(usage_events).where(
            usage_events.c.account_id == event.account_id,
            usage_events.c.request_id == event.request_id,
        )
    ).first()
    if existing is not None:
        if not same_content(existing, event, timestamp_given=timestamp_given):
            raise DuplicateRequest(
                f"request id {event.request_id!r} was already recorded with different content"
            )
        return _replayed(conn, existing, book)

    quote = _quote(book, event)
    plan_charge = None
    free_reason = free_reason or free_reason_for(event.user_id)
    if free_reason is not None:  # anonymous / pricing off: not a plan message either
        quote = replace(
            quote,
            price=ZERO,
            basis=ChargeBasis.FREE,
            explanation=f"not charged ({free_reason}); at list price: {quote.explanation}",
        )
    else:
        plan_charge = decide_plan_charge_on(
            conn,
            account_id=event.account_id,
            operation=event.operation,
            created_at=event.created_at,
            quote=quote,
        )
        if plan_charge is not None:  # on a plan: included (0) or overage
            quote = plan_charge.quote
    held = None
    if hold_id is not None:
        held = close_hold_on(conn, event.account_id, hold_id, HoldStatus.SETTLED, now=now).amount
    entry_id = None
    if quote.price > 0:
        posting = post_entry(
            conn,
            account_id=event.account_id,
            amount=-quote.price,
            kind=EntryKind.USAGE,
            idempotency_key=f"usage:{event.request_id}",
            reference=event.request_id,
            floor=None if allow_overdraft or held is not None else ZERO,
            now=now,
        )
        entry_id, balance_after = posting.entry.id, posting.entry.balance_after
    else:
        balance_after = get_wallet_on(conn, event.account_id).balance

    if plan_charge is not None:
        count_plan_message_on(conn, plan_charge)
    day = event.created_at.astimezone(get_settings().tz).date()
    event_id = conn.execute(
        insert(usage_events)
        .values(
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
            day=day,
            created_at=event.created_at,
            metadata=dict(event.metadata) if event.metadata is not None else None,
            hold_id=hold_id,
            exceeded_hold=None if held is None else quote.price > held,
        )
        .returning(usage_events.c.id)
    ).scalar_one()
    _upsert_rollups(conn, event, quote, day)
    return UsageResult(
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


def _replayed(conn: Connection, row: Any, book: PriceBook) -> UsageResult:
    balance_after = None
    if row.ledger_entry_id is not None:
        balance_after = conn.execute(
            select(ledger_entries.c.balance_after).where(ledger_entries.c.id == row.ledger_entry_id)
        ).scalar_one()
    if balance_after is None:
        balance_after = get_wallet_on(conn, row.account_id).balance
    return UsageResult(
        row.request_id,
        row.account_id,
        row.id,
        row.provider_cost,
        row.price,
        ChargeBasis(row.charge_basis),
        row.price_version,
        explain_event(book, row, conn=conn),
        balance_after,
        row.ledger_entry_id,
        True,
    )


def explain_event(book: PriceBook, row: Any, *, conn: Connection | None = None) -> str:
    """The explanation of a stored event's charge, re-derived from the price book in
    effect at its `created_at`. Falls back to the stored amounts if the price book
    no longer reproduces the charge (e.g. the default markup setting changed).
    Plan charges (included / overage) are explained from the plan version named in
    the event's `price_version` when a connection `conn` is given.
    """
    basis = ChargeBasis(row.charge_basis)
    if basis in (ChargeBasis.INCLUDED, ChargeBasis.OVERAGE) and conn is not None:
        explained = explain_plan_event(conn, row, _payg_price(book, row))
        if explained is not None:
            return explained
    if basis in (ChargeBasis.PAYG, ChargeBasis.FIXED):
        try:
            quote = book.quote(
                provider=row.provider,
                model=row.model,
                operation=row.operation,
                counts=TokenCounts(row.input_tokens, row.output_tokens, row.cached_tokens),
                at=row.created_at,
            )
            if quote.price == row.price:
                return quote.explanation
        except PricingError:
            pass
    return (
        f"charged {format_usd_exact(row.price)} ({basis}); provider cost "
        f"{format_usd_exact(row.provider_cost)}; prices: {row.price_version}"
    )


def _payg_price(book: PriceBook, row: Any) -> Decimal | None:
    """The pay-as-you-go price of a stored event, re-quoted (None if unpriceable)."""
    try:
        return book.quote(
            provider=row.provider,
            model=row.model,
            operation=row.operation,
            counts=TokenCounts(row.input_tokens, row.output_tokens, row.cached_tokens),
            at=row.created_at,
        ).price
    except PricingError:
        return None


def _upsert_rollups(conn: Connection, event: UsageEvent, quote: Quote, day: Any) -> None:
    if event.chat_id is not None:
        stmt = dialect_insert(conn, chats).values(
            account_id=event.account_id,
            chat_id=event.chat_id,
            user_id=event.user_id,
            title=None,
            requests=1,
            input_tokens=event.input_tokens,
            output_tokens=event.output_tokens,
            provider_cost=quote.provider_cost,
            cost=quote.price,
            first_at=event.created_at,
            last_at=event.created_at,
        )
        c = chats.c
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[c.account_id, c.chat_id],
                set_={
                    "requests": c.requests + 1,
                    "input_tokens": c.input_tokens + stmt.excluded.input_tokens,
                    "output_tokens": c.output_tokens + stmt.excluded.output_tokens,
                    "provider_cost": c.provider_cost + stmt.excluded.provider_cost,
                    "cost": c.cost + stmt.excluded.cost,
                    "first_at": _least(conn, c.first_at, stmt.excluded.first_at),
                    "last_at": _greatest(conn, c.last_at, stmt.excluded.last_at),
                },
            )
        )
    stmt = dialect_insert(conn, usage_daily).values(
        day=day,
        account_id=event.account_id,
        user_id=event.user_id,
        provider=event.provider,
        model=event.model,
        operation=event.operation,
        requests=1,
        input_tokens=event.input_tokens,
        output_tokens=event.output_tokens,
        cached_tokens=event.cached_tokens,
        provider_cost=quote.provider_cost,
        price=quote.price,
    )
    d = usage_daily.c
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[d.account_id, d.day, d.user_id, d.provider, d.model, d.operation],
            set_={
                "requests": d.requests + 1,
                "input_tokens": d.input_tokens + stmt.excluded.input_tokens,
                "output_tokens": d.output_tokens + stmt.excluded.output_tokens,
                "cached_tokens": d.cached_tokens + stmt.excluded.cached_tokens,
                "provider_cost": d.provider_cost + stmt.excluded.provider_cost,
                "price": d.price + stmt.excluded.price,
            },
        )
    )


def _least(conn: Connection, a: Any, b: Any) -> Any:

    return func.min(a, b) if conn.dialect.name == "sqlite" else func.least(a, b)


def _greatest(conn: Connection, a: Any, b: Any) -> Any:

    return func.max(a, b) if conn.dialect.name == "sqlite" else func.greatest(a, b)


def record_usage(
    engine: Engine,
    event: UsageEvent,
    *,
    allow_overdraft: bool = False,
    now: datetime | None = None,
) -> UsageResult:
    """Price one usage event and, in one transaction, debit the wallet with a `usage`
    ledger entry, write the event, and update the chat totals and the daily rollup.

    Args:
        event: the model call; `created_at` defaults to now.
        allow_overdraft: record it even if the wallet cannot pay (imports of past usage).
    Returns: UsageResult (Decimal USD amounts); `replayed=True` on a retry.
    Raises: InvalidUsage, UnknownModel (unless unpriced events are queued),
        InsufficientBalance, DuplicateRequest, UnknownAccount. Nothing is written then.
    Prices: the price book in effect at `created_at` (genai-prices + operator rows).
    """
    at = now or datetime.now(UTC)
    checked = validate_event(event, now=at)
    book = get_price_book(engine)
    return idempotent_write(
        engine,
        lambda conn: record_on(
            conn,
            checked,
            book=book,
            now=at,
            allow_overdraft=allow_overdraft,
            timestamp_given=event.created_at is not None,
        ),
    )
