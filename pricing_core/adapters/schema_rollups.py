"""Rollups for the pages' date ranges (on `schema.metadata`): `account_monthly`,
kept by database triggers on `account_daily`, and `usage_entries_daily` and
`chat_daily`, which every recording path (the PL/pgSQL charge, the batch ingest, the
general path, the unpriced-usage queue) writes in its own transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Index,
    PrimaryKeyConstraint,
    String,
    Table,
    func,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from pricing_core.adapters.schema import (
    LongId,
    ShortId,
    account_daily,
    daily_sums,
    metadata,
    usage_events,
)
from pricing_core.adapters.types import NanoUSD, UTCDateTime
from pricing_core.domain.usage_event import API_KEY_METADATA

# Account x month (its first day), from `account_daily` (migration 0017).
account_monthly = Table(
    "account_monthly",
    metadata,
    Column("account_id", ShortId, nullable=False),
    Column("month", Date, nullable=False),
    *daily_sums(),
    PrimaryKeyConstraint("account_id", "month"),
    Index("ix_account_monthly_month", "month"),
)

# The usage ledger entries of an account per value day (the local calendar day of
# their events, `usage_events.day`), from the events that carry an entry (migration
# 0019): the Transactions page's usage rows without reading the entries. `amount` is
# their signed sum (nano-USD, <= 0); `last_entry_id` the last posted of them, whose
# balance_after is the row's; `last_at` the latest of their events' times. Written by
# `metering.rollups.add_usage_entries` and the charge function (migration 0020).
usage_entries_daily = Table(
    "usage_entries_daily",
    metadata,
    Column("account_id", ShortId, nullable=False),
    Column("day", Date, nullable=False),
    Column("entries", BigInteger, nullable=False),
    Column("amount", NanoUSD, nullable=False),
    Column("last_entry_id", BigInteger, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("account_id", "day"),
)

# An account's usage per day, chat and API key (migration 0021): Explore's questions
# by chat or API key without reading the events. "" stands for no chat / no API key
# (key columns cannot be NULL). Written with the daily rollups by every recording
# path (`metering.rollups`, the charge function).
NO_KEY = ""
chat_daily = Table(
    "chat_daily",
    metadata,
    Column("account_id", ShortId, nullable=False),
    Column("day", Date, nullable=False),
    Column("chat_id", LongId, nullable=False),
    Column("api_key", String(255), nullable=False),
    *daily_sums(),
    PrimaryKeyConstraint("account_id", "day", "chat_id", "api_key"),
)


class event_api_key(FunctionElement[str]):  # noqa: N801 (used like a SQL function)
    """SQL: a `usage_events` row's API key, the text under "api_key" in its metadata, or
    NULL (no key; a number or a boolean there is no key either), as `chat_daily` keys
    it ("" for NULL) and `usage_event.api_key_of` reads it in Python."""

    type = String()
    inherit_cache = True


@compiles(event_api_key, "postgresql")
def _event_api_key_pg(element: Any, compiler: Any, **kw: Any) -> str:
    m = compiler.process(usage_events.c.metadata, **kw)
    k = API_KEY_METADATA
    return f"CASE WHEN json_typeof({m}->'{k}') = 'string' THEN {m}->>'{k}' END"


@compiles(event_api_key)
def _event_api_key_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    m = compiler.process(usage_events.c.metadata, **kw)
    k = API_KEY_METADATA
    return f"CASE WHEN json_type({m}, '$.{k}') = 'text' THEN json_extract({m}, '$.{k}') END"


def first_usage_day(account_id: str) -> Any:
    """SQL (a scalar subquery): the account's first day with usage, NULL for none, from
    `account_daily`: the day Overview's forecast and plan advice both count complete
    days from (`forecast.complete_days`), so the two pages agree."""
    d = account_daily.c
    return select(func.min(d.day)).where(d.account_id == account_id).scalar_subquery()
