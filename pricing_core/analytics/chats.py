"""The Chats page's data: the account's chats and one chat's requests, paged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, or_, select

from pricing_core.adapters.schema import chats, usage_events
from pricing_core.analytics.common import _target, day_bounds, local_time, printable, rows_frame
from pricing_core.catalog.price_book import get_price_book
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.principal import Principal
from pricing_core.metering.charges import corrections_notes, explain_event


@dataclass(frozen=True, slots=True)
class ChatDetail:
    """One chat and one page of its requests, in time order.

    `requests` columns: created_at (aware, configured zone), request_id, user_id,
    model, provider, operation, input_tokens, output_tokens, cached_tokens (int),
    cost (Decimal USD), explanation (str). `page` is 1-based; `offset` is the index
    of the page's first request in the chat.
    """

    chat_id: str
    title: str
    requests_count: int
    input_tokens: int
    output_tokens: int
    cost: Decimal
    first_at: datetime
    last_at: datetime
    requests: pd.DataFrame
    page: int = 1
    pages: int = 1
    offset: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def shown(self) -> tuple[int, int]:
        """(first, last) 1-based positions of this page's requests in the chat."""
        return self.offset + 1, self.offset + len(self.requests)


# ---------------------------------------------------------------- chats


CHAT_COLUMNS = [
    "chat_id",
    "title",
    "user_id",
    "requests",
    "tokens",
    "input_tokens",
    "output_tokens",
    "cost",
    "first_at",
    "last_at",
]


def list_chats(
    engine: Engine,
    viewer: Principal,
    *,
    search: str = "",
    account_id: str | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """The account's chats, most recent activity first, from the `chats` rollup.

    Args: search: case-insensitive substring of the title or the chat id; limit: at
        most this many (the most recent; None: all). The index on (account_id,
        last_at) makes the first ones cheap however many chats there are.
    Returns: DataFrame with CHAT_COLUMNS; `title` falls back to the chat id; `tokens` =
        input + output; cost Decimal USD; times aware in the configured zone.
    """
    query = _chats_query(select(chats), _target(viewer, account_id), search)
    c = chats.c
    query = query.order_by(c.last_at.desc(), c.chat_id)
    if limit is not None:
        query = query.limit(max(1, int(limit)))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return _chats_frame(rows)


def count_chats(
    engine: Engine, viewer: Principal, *, search: str = "", account_id: str | None = None
) -> int:
    """How many chats `list_chats` would list without a limit."""
    query = _chats_query(
        select(func.count()).select_from(chats), _target(viewer, account_id), search
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def chats_active(
    conn: Any, account_id: str | None, start: date, end: date, *, limit: int = 500
) -> list[str]:
    """Ids of the account's chats active in calendar days [start, end] (configured
    zone), from the `chats` rollup, sorted; at most `limit`. The caller scopes
    `account_id` (`_target`)."""
    since, until = day_bounds(start, end)
    c = chats.c
    query = select(c.chat_id).where(
        c.account_id == account_id, c.last_at >= since, c.first_at < until
    )
    return sorted(conn.execute(query.limit(limit)).scalars().all())


def _chats_query(query: Any, target: str, search: str) -> Any:
    c = chats.c
    query = query.where(c.account_id == target)
    needle = printable(search).strip().lower()[:200]
    if needle:
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(
                func.lower(c.chat_id).like(pattern, escape="\\"),
                func.lower(func.coalesce(c.title, "")).like(pattern, escape="\\"),
            )
        )
    return query


def _chats_frame(rows: Any) -> pd.DataFrame:
    return rows_frame(
        [
            (
                r.chat_id,
                r.title or r.chat_id,
                r.user_id,
                r.requests,
                r.input_tokens + r.output_tokens,
                r.input_tokens,
                r.output_tokens,
                r.cost,
                local_time(r.first_at),
                local_time(r.last_at),
            )
            for r in rows
        ],
        CHAT_COLUMNS,
    )


REQUEST_COLUMNS = [
    "created_at",
    "request_id",
    "user_id",
    "model",
    "provider",
    "operation",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost",
    "explanation",
]


CHAT_PAGE_SIZE = 100


def chat_detail(
    engine: Engine,
    viewer: Principal,
    chat_id: str,
    *,
    page: int = 1,
    page_size: int = CHAT_PAGE_SIZE,
    account_id: str | None = None,
) -> ChatDetail | None:
    """One chat of the account with one page of its requests in time order, each
    with the explanation of its charge (`metering.explain_event`).

    Args: page: 1-based, clamped to the chat's pages; page_size: requests per page.
    Returns: None when the account has no such chat. A chat of another account is
        "no such chat" too: every query is scoped to the account, so nothing of it
        is read.
    """
    target = _target(viewer, account_id)
    if not isinstance(chat_id, str) or not chat_id or len(chat_id) > 128:
        return None
    if printable(chat_id) != chat_id:
        return None  # no stored chat id has control characters
    if page_size < 1:
        raise InvalidUsage(f"page size must be at least 1, got {page_size}")
    with engine.connect() as conn:
        chat = conn.execute(
            select(chats).where(chats.c.account_id == target, chats.c.chat_id == chat_id)
        ).first()
        if chat is None:
            return None
        pages = max(1, -(-int(chat.requests) // page_size))
        page = min(max(int(page), 1), pages)
        offset = (page - 1) * page_size
        e = usage_events.c
        rows = conn.execute(
            select(usage_events)
            .where(e.account_id == target, e.chat_id == chat_id)
            .order_by(e.created_at, e.id)
            .offset(offset)
            .limit(page_size)
        ).all()
        book = get_price_book(engine)
        notes = corrections_notes(conn, [r.id for r in rows])
        frame = rows_frame(
            [
                (
                    local_time(r.created_at),
                    r.request_id,
                    r.user_id,
                    r.model,
                    r.provider,
                    r.operation,
                    r.input_tokens,
                    r.output_tokens,
                    r.cached_tokens,
                    r.price,
                    explain_event(book, r, conn=conn, admin=viewer.is_admin, notes=notes),
                )
                for r in rows
            ],
            REQUEST_COLUMNS,
        )
    return ChatDetail(
        chat_id=chat.chat_id,
        title=chat.title or chat.chat_id,
        requests_count=chat.requests,
        input_tokens=chat.input_tokens,
        output_tokens=chat.output_tokens,
        cost=chat.cost,
        first_at=local_time(chat.first_at),
        last_at=local_time(chat.last_at),
        requests=frame,
        page=page,
        pages=pages,
        offset=offset,
    )
