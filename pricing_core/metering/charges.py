"""The one decision of what a usage event costs, for every recording path: the
quote from the price book in effect at the event's time (or an unpriced quote, when
unknown models are queued), then $0 for anonymous users or with pricing switched
off, else the account's plan (included messages, overage, cap), else pay-as-you-go.

The batch path prices plain pay-as-you-go rows vectorized (the same quote, exactly)
and sends every other row through `decide_charge` (`needs_per_event_charge`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema_prices import price_corrections
from pricing_core.catalog.price_book import PriceBook
from pricing_core.config import get_settings
from pricing_core.domain.costing import ChargeBasis, Quote, TokenCounts
from pricing_core.domain.errors import PricingError, UnknownModel
from pricing_core.domain.money import ZERO, format_money
from pricing_core.domain.usage_event import ANONYMOUS_PREFIX, UsageEvent
from pricing_core.plans.plan_charges import PlanCharge, decide_plan_charge_on, explain_plan_event


@dataclass(frozen=True, slots=True)
class Charge:
    """What an event costs (`quote`: price, provider cost, basis, explanation) and, for a
    plan subscriber, the plan's decision to count with it."""

    quote: Quote
    plan_charge: PlanCharge | None


def quote_event(book: PriceBook, event: UsageEvent) -> Quote:
    """The list-price quote of a validated event at its `created_at`. Raises:
    UnknownModel, unless `PRICING_UNPRICED_POLICY=queue` (then an unpriced quote)."""
    assert event.created_at is not None
    try:
        return requote(book, event)
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


def counts_of(event: Any) -> TokenCounts:
    """The token counts of a UsageEvent or a stored `usage_events` row."""
    return TokenCounts(
        event.input_tokens,
        event.output_tokens,
        event.cached_tokens,
        getattr(event, "cache_write_tokens", 0),
    )


def requote(book: PriceBook, row: Any) -> Quote:
    """The list-price quote of a UsageEvent or a stored event, from the price book in
    effect at its `created_at` (rows without the 0014/0015 columns count as standard,
    no cache writes, quantity 1). Raises: PricingError."""
    return book.quote(
        provider=row.provider,
        model=row.model,
        operation=row.operation,
        counts=counts_of(row),
        at=row.created_at,
        service_tier=getattr(row, "service_tier", "standard"),
        quantity=getattr(row, "quantity", 1),
    )


def free_reason_for(user_id: str) -> str | None:
    """Why an event of `user_id` is recorded at $0, or None if it is charged:
    anonymous users are never debited; `PRICING_ENABLE_PRICING` off records tokens only."""
    if user_id.startswith(ANONYMOUS_PREFIX):
        return "anonymous user"
    if not get_settings().enable_pricing:
        return "pricing is switched off"
    return None


def charge_before_plan(
    book: PriceBook, event: UsageEvent, *, free_reason: str | None = None
) -> Quote:
    """What `event` costs before the account's plan has its say: the list-price quote,
    or $0 (basis FREE) for `free_reason` (default: `free_reason_for(user_id)`).
    A plan can change it only if `plan_charges.plan_may_apply(quote, operation)`.

    Raises: UnknownModel (unless unpriced events are queued).
    """
    quote = quote_event(book, event)
    free_reason = free_reason or free_reason_for(event.user_id)
    if free_reason is None:
        return quote
    return replace(
        quote,
        price=ZERO,
        basis=ChargeBasis.FREE,
        explanation=f"not charged ({free_reason}); at list price: {quote.explanation}",
    )


def decide_charge(
    conn: Connection, event: UsageEvent, *, book: PriceBook, free_reason: str | None = None
) -> Charge:
    """What `event` costs, inside the recording transaction (plans read this month's
    messages). `free_reason` forces $0 (default: `free_reason_for(user_id)`).

    Raises: UnknownModel (unless queued), PricingError from the plan's rules.
    """
    quote = charge_before_plan(book, event, free_reason=free_reason)
    if quote.basis is ChargeBasis.FREE:  # anonymous / pricing off: not a plan message either
        return Charge(quote, None)
    assert event.created_at is not None
    plan_charge = decide_plan_charge_on(
        conn,
        account_id=event.account_id,
        operation=event.operation,
        created_at=event.created_at,
        quote=quote,
    )
    return Charge(quote if plan_charge is None else plan_charge.quote, plan_charge)


def needs_per_event_charge(
    accounts: np.ndarray, users: np.ndarray, subscribed: set[str]
) -> np.ndarray:
    """Which rows of a batch `decide_charge` must price one by one: a plan
    subscriber's (a plan's charge depends on the month's earlier messages), an
    anonymous user's, or every row while pricing is switched off. The others are plain
    pay-as-you-go, which the vectorized price equals exactly."""
    if not get_settings().enable_pricing:
        return np.ones(len(accounts), dtype=bool)
    anonymous = np.array([str(u).startswith(ANONYMOUS_PREFIX) for u in users], dtype=bool)
    return anonymous | np.isin(accounts, list(subscribed))


SUBSTITUTED_FOR = "substituted_for"  # metadata key: the model asked for (optimization)


def with_substitution(explanation: str, model: str, metadata: Any) -> str:
    """`explanation`, preceded by the substitution when the event's metadata names the
    model asked for (authorize held `model` instead, under budget pressure)."""
    asked = metadata.get(SUBSTITUTED_FOR) if isinstance(metadata, dict) else None
    if not asked:
        return explanation
    return f"{model} instead of {asked} (budget pressure, PRICING_OPTIMIZATION); {explanation}"


def explain_event(
    book: PriceBook,
    row: Any,
    *,
    conn: Connection | None = None,
    admin: bool = False,
    notes: Mapping[int, str] | None = None,
) -> str:
    """The explanation of a stored event's charge, re-derived from the price book in
    effect at its `created_at`. Falls back to the stored amounts if the price book
    no longer reproduces the charge (e.g. the default markup setting changed).
    Plan charges (included / overage) are explained from the plan version named in
    the event's `price_version` when a connection `conn` is given. A substituted
    model is named first (`with_substitution`); corrections from applied reprices
    follow (with `conn`: `notes`, from `corrections_notes` for a page of events, or
    read for this event). `admin`: name the markup (`Quote.admin_explanation`).
    """
    text = with_substitution(_explain(book, row, conn, admin), row.model, row.metadata)
    if conn is None:
        return text
    if notes is None:
        notes = corrections_notes(conn, [row.id])
    return text + notes.get(row.id, "")


def corrections_notes(conn: Connection, event_ids: Sequence[int]) -> dict[int, str]:
    """Event id -> "; repriced on 2026-11-28: +$0.0012" per correction of the event
    (`admin.reprice.apply_reprice`), for the events with corrections; one query."""
    c = price_corrections.c
    rows = conn.execute(
        select(c.event_id, c.created_at, c.amount)
        .where(c.event_id.in_(list(event_ids)))
        .order_by(c.event_id, c.id)
    ).all()
    notes: dict[int, str] = {}
    for r in rows:
        notes[r.event_id] = notes.get(r.event_id, "") + (
            f"; repriced on {r.created_at.date().isoformat()}: "
            f"{'+' if r.amount > 0 else '-'}{format_money(abs(r.amount))}"
        )
    return notes


def _explain(book: PriceBook, row: Any, conn: Connection | None, admin: bool) -> str:
    basis = ChargeBasis(row.charge_basis)
    if basis in (ChargeBasis.INCLUDED, ChargeBasis.OVERAGE) and conn is not None:
        explained = explain_plan_event(conn, row, _payg_price(book, row))
        if explained is not None:
            return explained
    if basis in (ChargeBasis.PAYG, ChargeBasis.FIXED):
        try:
            quote = requote(book, row)
            if quote.price == row.price:
                return quote.admin_explanation if admin else quote.explanation
        except PricingError:
            pass
    return (
        f"charged {format_money(row.price)} ({basis}); provider cost "
        f"{format_money(row.provider_cost)}; prices: {row.price_version}"
    )


def _payg_price(book: PriceBook, row: Any) -> Decimal | None:
    """The pay-as-you-go price of a stored event, re-quoted (None if unpriceable)."""
    try:
        return requote(book, row).price
    except PricingError:
        return None
