"""Exports of usage events and ledger entries as CSV or JSON Lines.

Rows are streamed from the database (server-side cursor on PostgreSQL), never loaded
all at once. Amounts are exact decimal strings (`money.usd_str`), timestamps ISO 8601
in UTC with microseconds (`2023-11-16T18:15:46.680590Z`). The order is deterministic
and the same on both back ends: usage by (account_id, created_at, request_id), ledger
by (account_id, entry_id), strings compared by code point (`COLLATE "C"` on
PostgreSQL, SQLite's default BINARY).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, TextIO

from sqlalchemy import Engine, select
from sqlalchemy.sql.elements import ColumnElement

from pricing_core.adapters.schema import ledger_entries, usage_events
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.money import usd_str

USAGE_COLUMNS = (
    "request_id",
    "account_id",
    "user_id",
    "chat_id",
    "operation",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "service_tier",
    "quantity",
    "provider_cost_usd",
    "price_usd",
    "created_at",
)
LEDGER_COLUMNS = (
    "entry_id",
    "account_id",
    "kind",
    "amount_usd",
    "balance_after_usd",
    "idempotency_key",
    "reference",
    "reason",
    "actor",
    "created_at",
)
BATCH = 2000


class ExportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


def iso_utc(at: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a `Z`: `2023-11-16T18:15:46.680590Z`."""
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _text_order(engine: Engine, column: ColumnElement[Any]) -> ColumnElement[Any]:
    return column.collate("C") if engine.dialect.name == "postgresql" else column


def iter_usage_rows(engine: Engine) -> Iterator[dict[str, Any]]:
    """Every usage event as a dict keyed by `USAGE_COLUMNS` (amounts Decimal USD,
    `created_at` an aware UTC datetime), streamed in the export order."""
    e = usage_events.c
    query = select(
        e.request_id,
        e.account_id,
        e.user_id,
        e.chat_id,
        e.operation,
        e.provider,
        e.model,
        e.input_tokens,
        e.output_tokens,
        e.cached_tokens,
        e.cache_write_tokens,
        e.service_tier,
        e.quantity,
        e.provider_cost.label("provider_cost_usd"),
        e.price.label("price_usd"),
        e.created_at,
    ).order_by(_text_order(engine, e.account_id), e.created_at, _text_order(engine, e.request_id))
    yield from _stream(engine, query)


def iter_ledger_rows(engine: Engine) -> Iterator[dict[str, Any]]:
    """Every ledger entry as a dict keyed by `LEDGER_COLUMNS` (amounts Decimal USD),
    streamed by account, then entry id (the order balances ran in)."""
    c = ledger_entries.c
    query = select(
        c.id.label("entry_id"),
        c.account_id,
        c.kind,
        c.amount.label("amount_usd"),
        c.balance_after.label("balance_after_usd"),
        c.idempotency_key,
        c.reference,
        c.reason,
        c.actor,
        c.created_at,
    ).order_by(_text_order(engine, c.account_id), c.id)
    yield from _stream(engine, query)


def _stream(engine: Engine, query: Any) -> Iterator[dict[str, Any]]:
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(query)
        for row in result:
            yield dict(row._mapping)


def _cell(value: Any) -> Any:
    """A JSON-safe value: Decimal -> exact string, datetime -> ISO UTC."""
    if isinstance(value, Decimal):
        return usd_str(value)
    if isinstance(value, datetime):
        return iso_utc(value)
    return value


def write_rows(
    rows: Iterator[dict[str, Any]], columns: tuple[str, ...], out: TextIO, fmt: ExportFormat
) -> int:
    """Write rows as CSV (header first; None as an empty cell) or JSON Lines (None
    as null, amounts as strings). Returns: the number of rows written."""
    count = 0
    if fmt is ExportFormat.CSV:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row[c] is None else _cell(row[c]) for c in columns])
            count += 1
    elif fmt is ExportFormat.JSONL:
        for row in rows:
            out.write(json.dumps({c: _cell(row[c]) for c in columns}, ensure_ascii=False))
            out.write("\n")
            count += 1
    else:
        raise InvalidUsage(f"unknown export format {fmt!r}")
    return count


def export_usage(engine: Engine, out: TextIO, fmt: ExportFormat = ExportFormat.CSV) -> int:
    """Write one row per usage event (`USAGE_COLUMNS`) to `out`. Returns: rows written."""
    return write_rows(iter_usage_rows(engine), USAGE_COLUMNS, out, ExportFormat(fmt))


def export_ledger(engine: Engine, out: TextIO, fmt: ExportFormat = ExportFormat.CSV) -> int:
    """Write one row per ledger entry (`LEDGER_COLUMNS`) to `out`. Returns: rows written."""
    return write_rows(iter_ledger_rows(engine), LEDGER_COLUMNS, out, ExportFormat(fmt))
