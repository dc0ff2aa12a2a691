"""The unpriced-usage queue drained: events recorded without a price (under
`PRICING_UNPRICED_POLICY=queue`) priced once the price book knows their model (a
custom model, a loaded catalog), exactly as `record_usage` would have priced them.

Each event is priced in its account's transaction: its `usage` ledger entry (keyed
`usage:<request id>`, as a first recording's, so it exists at most once), the event's
price columns, and the rollups' amounts (requests and tokens were counted when it was
recorded). Usage that already happened is charged even past the wallet's floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial

from sqlalchemy import Engine, func, select, update
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import usage_events
from pricing_core.adapters.storage import run_write
from pricing_core.catalog.price_book import PriceBook, load_price_book
from pricing_core.domain.costing import ChargeBasis
from pricing_core.domain.errors import PricingError
from pricing_core.domain.money import ZERO, usd_to_nanos
from pricing_core.domain.periods import epoch_micros
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.holds import lock_wallet_on
from pricing_core.ledger.wallets import EntryKind, post_entry
from pricing_core.metering.charges import decide_charge
from pricing_core.metering.record import rollup_row
from pricing_core.metering.rollups import add_to_rollups, add_usage_entries
from pricing_core.plans.plan_charges import count_plan_message_on

MAX_DRAIN = 10_000  # events per call; the rest wait for the next one


def count_unpriced(conn: Connection) -> int:
    """How many events wait in the queue (a partial index holds only them)."""
    query = select(func.count()).select_from(usage_events)
    return int(conn.execute(query.where(usage_events.c.status == "unpriced")).scalar_one())


@dataclass(frozen=True, slots=True)
class DrainResult:
    """What pricing the queue did. `amount`: Decimal USD charged in total."""

    priced: int
    still_unpriced: int
    amount: Decimal


def drain_unpriced(
    engine: Engine,
    *,
    provider: str | None = None,
    model: str | None = None,
    now: datetime | None = None,
) -> DrainResult:
    """Price the queued events (of one model, or all) that the price book now prices.

    Returns: DrainResult. Events whose model is still unknown stay queued.
    Prices: the price book in effect at each event's `created_at`.
    """
    at = now or datetime.now(UTC)
    book = load_price_book(engine)
    e = usage_events.c
    query = select(e.id, e.account_id).where(e.status == "unpriced")
    if provider is not None:
        query = query.where(e.provider == provider)
    if model is not None:
        query = query.where(e.model == model)
    with engine.connect() as conn:
        queued = conn.execute(query.order_by(e.id).limit(MAX_DRAIN)).all()
    priced, amount = 0, ZERO
    for event_id, account_id in queued:
        charged = run_write(
            engine, partial(_price_one, book=book, account_id=account_id, event_id=event_id, now=at)
        )
        if charged is not None:
            priced += 1
            amount += charged
    return DrainResult(priced, len(queued) - priced, amount)


def _price_one(
    conn: Connection, *, book: PriceBook, account_id: str, event_id: int, now: datetime
) -> Decimal | None:
    lock_wallet_on(conn, account_id)  # every writer of an account locks its wallet first
    e = usage_events.c
    row = conn.execute(select(usage_events).where(e.id == event_id, e.status == "unpriced")).first()
    if row is None:  # priced meanwhile
        return None
    event = UsageEvent(
        row.request_id, row.account_id, row.user_id, row.operation, row.provider, row.model,
        row.input_tokens, row.output_tokens, row.cached_tokens, row.chat_id, row.created_at,
        row.metadata, row.cache_write_tokens, row.service_tier, row.quantity,
    )  # fmt: skip
    try:
        charge = decide_charge(conn, event, book=book)
    except PricingError:
        return None
    quote = charge.quote
    if quote.basis is ChargeBasis.UNPRICED:
        return None
    entry_id = None
    if quote.price > 0:
        entry_id = post_entry(
            conn,
            account_id=account_id,
            amount=-quote.price,
            kind=EntryKind.USAGE,
            idempotency_key=f"usage:{row.request_id}",
            reference=row.request_id,
            floor=None,
            now=now,
        ).entry.id
    if charge.plan_charge is not None:
        count_plan_message_on(conn, charge.plan_charge)
    conn.execute(
        update(usage_events)
        .where(usage_events.c.id == event_id)
        .values(
            provider_cost=quote.provider_cost,
            price=quote.price,
            price_version=quote.price_version,
            charge_basis=str(quote.basis),
            status="priced",
            ledger_entry_id=entry_id,
        )
    )
    if entry_id is not None:
        add_usage_entries(
            conn, [account_id], [row.day], [entry_id], [-usd_to_nanos(quote.price)],
            [epoch_micros(row.created_at)],
        )  # fmt: skip
    amounts = rollup_row(event, quote, row.day)
    amounts |= {"input_tokens": 0, "output_tokens": 0, "cached_tokens": 0}
    add_to_rollups(conn, amounts, requests=0)
    return quote.price
