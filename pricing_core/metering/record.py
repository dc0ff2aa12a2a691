"""Recording usage: one model call -> price, debit, event, chat totals, daily rollup.

Everything for one event happens in one transaction, keyed by `(account_id,
request_id)`: a retry with the same content returns the original result and writes
nothing; the same request id with different content raises `DuplicateRequest`.
All checks run before the first write, so a refused event leaves nothing behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import ledger_entries, usage_events
from pricing_core.adapters.server_calls import call_row, is_postgres
from pricing_core.billing.autotopup import request_topup_on
from pricing_core.catalog.price_book import PriceBook, get_price_book
from pricing_core.config import get_settings
from pricing_core.domain.costing import ChargeBasis, Quote
from pricing_core.domain.errors import DuplicateRequest, InsufficientBalance, UnknownAccount
from pricing_core.domain.money import ZERO, nanos_to_usd, usd_to_nanos
from pricing_core.domain.periods import epoch_micros
from pricing_core.domain.usage_event import UsageEvent, api_key_of, same_content, validate_event
from pricing_core.ledger.crossings import default_line_nanos, note_crossings_on
from pricing_core.ledger.holds import HoldStatus, close_hold_on, lock_wallet_on
from pricing_core.ledger.wallets import EntryKind, get_wallet_on, idempotent_write, post_entry
from pricing_core.limits.alerts import BudgetAlert, deliver_alerts, record_alerts_on
from pricing_core.limits.rollout import enforced_for
from pricing_core.metering.charges import (
    charge_before_plan,
    decide_charge,
    explain_event,
    with_substitution,
)
from pricing_core.metering.rollups import add_to_rollups, add_usage_entries, stripe_of
from pricing_core.plans.plan_charges import count_plan_message_on, plan_may_apply


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


def rollup_row(event: UsageEvent, quote: Quote, day: date) -> dict[str, Any]:
    """One recorded event as `rollups.add_to_rollups` takes it (nano-USD integers)."""
    assert event.created_at is not None
    return {
        "account_id": event.account_id,
        "chat_id": event.chat_id,
        "user_id": event.user_id,
        "provider": event.provider,
        "model": event.model,
        "operation": event.operation,
        "input_tokens": event.input_tokens,
        "output_tokens": event.output_tokens,
        "cached_tokens": event.cached_tokens,
        "provider_cost": usd_to_nanos(quote.provider_cost),
        "price": usd_to_nanos(quote.price),
        "micros": epoch_micros(event.created_at),
        "day": day,
        "api_key": api_key_of(event.metadata),
    }


def _local_day(event: UsageEvent) -> date:
    """The event's calendar day in the configured zone (`usage_events.day`)."""
    assert event.created_at is not None
    return event.created_at.astimezone(get_settings().tz).date()


def _status(quote: Quote) -> str:
    return "unpriced" if quote.basis is ChargeBasis.UNPRICED else "priced"


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

    charge = decide_charge(conn, event, book=book, free_reason=free_reason)
    quote, plan_charge = charge.quote, charge.plan_charge
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
        before = balance_after + quote.price
        note_crossings_on(conn, event.account_id, before=before, after=balance_after, now=now)
        request_topup_on(conn, event.account_id, before=before, after=balance_after, now=now)
    else:
        balance_after = get_wallet_on(conn, event.account_id).balance

    if plan_charge is not None:
        count_plan_message_on(conn, plan_charge)
    day = _local_day(event)
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
            cache_write_tokens=event.cache_write_tokens,
            service_tier=event.service_tier,
            quantity=event.quantity,
            provider_cost=quote.provider_cost,
            price=quote.price,
            price_version=quote.price_version,
            charge_basis=str(quote.basis),
            status=_status(quote),
            ledger_entry_id=entry_id,
            day=day,
            created_at=event.created_at,
            metadata=dict(event.metadata) if event.metadata is not None else None,
            hold_id=hold_id,
            exceeded_hold=None if held is None else quote.price > held,
        )
        .returning(usage_events.c.id)
    ).scalar_one()
    add_to_rollups(conn, rollup_row(event, quote, day))
    if entry_id is not None:
        add_usage_entries(
            conn, [event.account_id], [day], [entry_id], [-usd_to_nanos(quote.price)],
            [epoch_micros(event.created_at)],
        )  # fmt: skip
    return _recorded(event, quote, event_id, balance_after, entry_id)


def _recorded(
    event: UsageEvent,
    quote: Quote,
    event_id: int,
    balance_after: Decimal,
    entry_id: int | None,
) -> UsageResult:
    """The result of a first recording (not a replay), on either path."""
    return UsageResult(
        event.request_id,
        event.account_id,
        event_id,
        quote.provider_cost,
        quote.price,
        quote.basis,
        quote.price_version,
        with_substitution(quote.explanation, event.model, event.metadata),
        balance_after,
        entry_id,
        False,
    )


_CHARGE = (
    "SELECT outcome, event_id, entry_id, balance_after, available FROM pricing_record_usage("
    + ", ".join(["%s"] * 17)
    + ", %s::json, %s, %s, %s, %s, %s, %s, %s::bigint[])"
)


def record_in_one_call(
    engine: Engine,
    event: UsageEvent,
    *,
    book: PriceBook,
    now: datetime,
    allow_overdraft: bool,
    alerts: bool,
    hold_id: str | None = None,
) -> UsageResult | None:
    """`record_on`'s work as one server-side call (PostgreSQL's `pricing_record_usage`,
    migration 0008), for the common case: a new request id of an account without a
    plan in effect (and, with `alerts`, without a budget). With `hold_id`, the event
    settles that active hold (as `record_on(hold_id=...)`: no floor). Returns None
    when the general path must decide instead; nothing is written then.

    Events with cache writes, a non-standard service tier or a quantity other than 1
    take the general path (the function stores none of them; the columns' defaults
    are the plain case).

    Raises: InsufficientBalance, UnknownAccount, UnknownModel (as `record_usage`).
    """
    assert event.created_at is not None
    if event.cache_write_tokens or event.service_tier != "standard" or event.quantity != 1:
        return None
    quote = charge_before_plan(book, event)
    day = _local_day(event)
    params = (
        event.account_id, event.request_id, event.user_id, event.chat_id,
        event.operation, event.provider, event.model,
        event.input_tokens, event.output_tokens, event.cached_tokens,
        usd_to_nanos(quote.provider_cost), usd_to_nanos(quote.price), quote.price_version,
        str(quote.basis), _status(quote),
        day, event.created_at,
        None if event.metadata is None else json.dumps(dict(event.metadata)),
        None if allow_overdraft or hold_id is not None else 0,
        plan_may_apply(quote, event.operation), alerts, hold_id, stripe_of(event.account_id),
        now, default_line_nanos(),
    )  # fmt: skip
    row = call_row(engine, _CHARGE, params)
    if row is None:  # a concurrent call with this request id won: replay it
        return None
    outcome, event_id, entry_id, balance_after, available = row
    if outcome == "short":
        raise InsufficientBalance(event.account_id, nanos_to_usd(available), quote.price)
    if outcome == "unknown":
        raise UnknownAccount(f"unknown account {event.account_id!r}")
    if outcome != "charged":  # present, plan, budgets, hold
        return None
    after = nanos_to_usd(balance_after)
    return _recorded(event, quote, event_id, after, entry_id)


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
    usage, _ = _record(engine, event, allow_overdraft=allow_overdraft, now=now, alerts=False)
    return usage


def record_request_usage(
    engine: Engine, event: UsageEvent, *, now: datetime | None = None
) -> tuple[UsageResult, tuple[BudgetAlert, ...]]:
    """Record a model call that was not authorized first (`POST /usage`), as
    `record_usage` does, plus the product rules: with enforcement off for the account
    (`PRICING_ENABLE_BUDGET_ENFORCEMENT`, its rollout or grace period) the wallet may
    overdraw, and the budget
    alerts the usage newly reaches are stored (and delivered).

    Returns: (UsageResult, alerts newly reached). Raises: as `record_usage`.
    """
    at = now or datetime.now(UTC)
    overdraft = not enforced_for(engine, event.account_id, now=at)
    return _record(engine, event, allow_overdraft=overdraft, now=at, alerts=True)


def _record(
    engine: Engine,
    event: UsageEvent,
    *,
    allow_overdraft: bool,
    now: datetime | None,
    alerts: bool,
) -> tuple[UsageResult, tuple[BudgetAlert, ...]]:
    at = now or datetime.now(UTC)
    checked = validate_event(event, now=at)
    book = get_price_book(engine)
    if is_postgres(engine) and not (alerts and get_settings().default_monthly_budget):
        done = record_in_one_call(
            engine, checked, book=book, now=at, allow_overdraft=allow_overdraft, alerts=alerts
        )
        if done is not None:
            return done, ()

    def work(conn: Connection) -> tuple[UsageResult, tuple[BudgetAlert, ...]]:
        if alerts:  # the alert check reads the spend this charge adds to
            lock_wallet_on(conn, checked.account_id)
        usage = record_on(
            conn,
            checked,
            book=book,
            now=at,
            allow_overdraft=allow_overdraft,
            timestamp_given=event.created_at is not None,
        )
        if usage.replayed or not alerts:
            return usage, ()
        reached = record_alerts_on(
            conn, account_id=checked.account_id, user_id=checked.user_id, now=at
        )
        return usage, tuple(reached)

    usage, reached = idempotent_write(engine, work)
    if reached:
        deliver_alerts(engine)
    return usage, reached
