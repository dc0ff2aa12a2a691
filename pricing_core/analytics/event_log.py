"""Read-only listings of an account's usage events and chats (for `/api/v1`).

Keyset paging: events come newest first (by event id, descending); a page's
`next_cursor` is the last event id on it, and the next page has ids below it. Every
query is filtered by `account_id` first, so a caller never sees another account's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select

from pricing_core.adapters.schema import chats, usage_events

MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class EventRow:
    """One usage event as stored. Amounts: Decimal USD."""

    id: int
    request_id: str
    user_id: str
    chat_id: str | None
    operation: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    provider_cost: Decimal
    price: Decimal
    charge_basis: str
    status: str
    price_version: str
    created_at: datetime
    hold_id: str | None
    exceeded_hold: bool | None


@dataclass(frozen=True, slots=True)
class EventPage:
    items: tuple[EventRow, ...]
    next_cursor: int | None


@dataclass(frozen=True, slots=True)
class ChatTotals:
    """A chat's running totals (kept with every event). Amounts: Decimal USD."""

    chat_id: str
    user_id: str
    title: str | None
    requests: int
    input_tokens: int
    output_tokens: int
    provider_cost: Decimal
    cost: Decimal
    first_at: datetime
    last_at: datetime


def _event(row: Any) -> EventRow:
    return EventRow(*(getattr(row, f) for f in EventRow.__slots__))  # type: ignore[attr-defined]


def list_events(
    engine: Engine,
    account_id: str,
    *,
    user_id: str | None = None,
    chat_id: str | None = None,
    model: str | None = None,
    operation: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: int | None = None,
) -> EventPage:
    """The account's usage events, newest first, filtered; `since` inclusive,
    `until` exclusive (UTC instants). `limit` is capped at MAX_PAGE."""
    e = usage_events.c
    stmt = select(*(e[f] for f in EventRow.__slots__)).where(e.account_id == account_id)  # type: ignore[attr-defined]
    for column, value in (
        (e.user_id, user_id),
        (e.chat_id, chat_id),
        (e.model, model),
        (e.operation, operation),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if since is not None:
        stmt = stmt.where(e.created_at >= since)
    if until is not None:
        stmt = stmt.where(e.created_at < until)
    if cursor is not None:
        stmt = stmt.where(e.id < cursor)
    size = max(1, min(limit, MAX_PAGE))
    with engine.connect() as conn:
        rows = [_event(r) for r in conn.execute(stmt.order_by(e.id.desc()).limit(size + 1))]
    more = len(rows) > size
    rows = rows[:size]
    return EventPage(tuple(rows), rows[-1].id if more else None)


def get_chat(engine: Engine, account_id: str, chat_id: str) -> ChatTotals | None:
    """The chat's totals, or None if the account has no such chat."""
    c = chats.c
    with engine.connect() as conn:
        row = conn.execute(
            select(*(c[f] for f in ChatTotals.__slots__)).where(  # type: ignore[attr-defined]
                c.account_id == account_id, c.chat_id == chat_id
            )
        ).first()
    return ChatTotals(*row) if row is not None else None
