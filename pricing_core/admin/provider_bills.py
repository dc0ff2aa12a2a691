"""Reconciliation against the provider's own bill: import a provider's cost export
and compare it, per day and model, with the provider cost we computed.

Formats (the documented response shapes, saved as JSON):
- `openai`: the Costs endpoint (`GET /v1/organization/costs`, grouped by `line_item`):
  `data[].start_time` (Unix seconds, UTC) and `data[].results[].amount.value` (USD);
  the model is the `line_item` before its first comma ("gpt-4o-2024-08-06, input").
- `anthropic`: the Cost Report (`GET /v1/organizations/cost_report`, grouped by
  `description`): `data[].starting_at` (RFC 3339) and `data[].results[].amount`, a
  decimal string in cents ("123.45" is $1.23), with `model`.
- `csv`: our own plain shape, columns `date,model,cost_usd`.

Model names on both sides are matched through genai-prices ("gpt-4o-2024-08-06" and
"gpt-4o" are one model). Our side is `platform_daily`'s provider cost, whose days are
the configured time zone's (`PRICING_TIMEZONE`, UTC by default, as the providers' are).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

import genai_prices
from sqlalchemy import BigInteger, Engine, delete, func, insert, select, type_coerce
from sqlalchemy.engine import Connection

from pricing_core.adapters.audit import actor_of, write_audit
from pricing_core.adapters.schema import platform_daily
from pricing_core.adapters.schema_prices import provider_bills
from pricing_core.adapters.storage import run_write
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.money import ZERO, nanos_to_usd, round_nano
from pricing_core.domain.principal import Principal, require_admin
from pricing_core.domain.usage_event import check_name

DEFAULT_TOLERANCE_PCT = Decimal(2)
MAX_BILL_BYTES = 50_000_000


class BillFormat(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    CSV = "csv"


def canonical_model(provider: str, name: str) -> str:
    """The catalog's id for `name` (genai-prices' matching), else `name` itself."""
    try:
        _, info = genai_prices.data_snapshot.get_snapshot().find_provider_model(
            name, None, provider, None
        )
    except LookupError:
        return name
    return str(info.id)


def _decimal(value: object, where: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise InvalidUsage(f"{where}: not a number: {value!r:.40}") from None
    if not number.is_finite() or abs(number) > 10**12:
        raise InvalidUsage(f"{where}: out of range: {value!r:.40}")
    return number


def _day(value: object, where: str) -> date:
    try:
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            return datetime.fromtimestamp(int(value), UTC).date()
        text = str(value)
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).date()
    except (ValueError, OverflowError, OSError):
        raise InvalidUsage(f"{where}: not a date: {value!r:.40}") from None


def parse_bill(fmt: BillFormat, text: str) -> dict[tuple[date, str], Decimal]:
    """A provider's cost export -> USD per (UTC day, model as the file names it).
    Raises: InvalidUsage (not the format's shape, with where)."""
    if len(text) > MAX_BILL_BYTES:
        raise InvalidUsage(f"the bill is larger than {MAX_BILL_BYTES:,} bytes")
    lines: dict[tuple[date, str], Decimal] = defaultdict(lambda: ZERO)
    if fmt is BillFormat.CSV:
        reader = csv.DictReader(io.StringIO(text))
        if not {"date", "model", "cost_usd"} <= set(reader.fieldnames or ()):
            raise InvalidUsage("the CSV needs the columns date,model,cost_usd")
        for n, row in enumerate(reader, start=2):
            key = (_day(row["date"], f"line {n}"), row["model"].strip() or "(none)")
            lines[key] += _decimal(row["cost_usd"], f"line {n}")
        return dict(lines)
    try:
        page = json.loads(text, parse_float=Decimal)  # never a float for money
    except ValueError as exc:
        raise InvalidUsage(f"the bill is not JSON: {exc}") from None
    buckets = page.get("data") if isinstance(page, dict) else None
    if not isinstance(buckets, list):
        raise InvalidUsage(f"a {fmt} cost export is an object with a 'data' list")
    for b, bucket in enumerate(buckets):
        where = f"data[{b}]"
        if not isinstance(bucket, dict) or not isinstance(bucket.get("results"), list):
            raise InvalidUsage(f"{where}: a bucket needs a 'results' list")
        start = bucket.get("start_time" if fmt is BillFormat.OPENAI else "starting_at")
        day = _day(start, where)
        for r, result in enumerate(bucket["results"]):
            model, cost = _result(fmt, result, f"{where}.results[{r}]")
            lines[(day, model)] += cost
    return dict(lines)


def _result(fmt: BillFormat, result: Any, where: str) -> tuple[str, Decimal]:
    if not isinstance(result, dict):
        raise InvalidUsage(f"{where}: not an object")
    if fmt is BillFormat.OPENAI:
        amount = result.get("amount")
        if not isinstance(amount, dict) or str(amount.get("currency", "usd")).lower() != "usd":
            raise InvalidUsage(f"{where}: amount must be {{value, currency: usd}}")
        item = result.get("line_item") or "(none)"
        return str(item).split(",")[0].strip(), _decimal(amount.get("value"), where)
    if str(result.get("currency", "USD")).upper() != "USD":
        raise InvalidUsage(f"{where}: only USD cost reports are supported")
    cents = _decimal(result.get("amount"), where)
    return str(result.get("model") or "(none)"), cents / 100


def import_bill(
    engine: Engine,
    principal: Principal,
    provider: str,
    fmt: BillFormat,
    text: str,
    *,
    source: str,
    now: datetime | None = None,
) -> int:
    """Store a provider's bill per day and model (a re-import of a day replaces it),
    audited. Returns the number of (day, model) rows. Raises: PermissionDenied,
    InvalidUsage."""
    require_admin(principal)
    check_name("provider", provider)
    bill: dict[tuple[date, str], Decimal] = defaultdict(lambda: ZERO)
    for (day, model), cost in parse_bill(fmt, text).items():
        bill[(day, canonical_model(provider, model)[:128])] += cost
    if not bill:
        raise InvalidUsage("the bill has no cost lines")
    at = now or datetime.now(UTC)
    days = sorted({day for day, _ in bill})

    def work(conn: Connection) -> None:
        b = provider_bills.c
        conn.execute(delete(provider_bills).where(b.provider == provider, b.day.in_(days)))
        conn.execute(
            insert(provider_bills),
            [
                {
                    "provider": provider,
                    "day": day,
                    "model": model,
                    "cost": round_nano(cost),
                    "source": source[:500],
                    "created_at": at,
                }  # fmt: skip
                for (day, model), cost in sorted(bill.items())
            ],
        )
        write_audit(
            conn,
            actor=actor_of(principal),
            action="price.provider_bill",
            now=at,
            target=provider,
            after={
                "days": len(days),
                "first": days[0].isoformat(),
                "last": days[-1].isoformat(),
                "rows": len(bill),
            },
            reason=f"provider bill imported from {source[:200]}",
        )

    run_write(engine, work)
    return len(bill)


@dataclass(frozen=True, slots=True)
class Drift:
    """Our provider cost against the provider's bill (USD) for a day, or a day and
    model (`model` None for the day's total)."""

    day: date
    model: str | None
    ours: Decimal
    billed: Decimal
    flagged: bool

    @property
    def drift(self) -> Decimal:
        return self.ours - self.billed

    @property
    def drift_pct(self) -> Decimal | None:
        return None if not self.billed else round(self.drift * 100 / self.billed, 2)


def _over(ours: Decimal, billed: Decimal, tolerance_pct: Decimal) -> bool:
    if not billed:
        return ours != 0
    return abs(ours - billed) * 100 > abs(billed) * tolerance_pct


def reconcile(
    engine: Engine,
    principal: Principal,
    provider: str,
    *,
    start: date,
    end: date,
    tolerance_pct: object = DEFAULT_TOLERANCE_PCT,
) -> tuple[list[Drift], list[Drift]]:
    """Per day, and per day and model, our provider cost for `provider` next to its
    imported bill, over the days the bill covers in [start, end]. A day is flagged
    when its drift exceeds `tolerance_pct` percent of the bill (a number or its text,
    0..100; a widget's float is read by its shortest text, never as binary).

    Returns: (days, day-and-model rows), sorted. Raises: PermissionDenied,
    InvalidUsage (a tolerance outside 0..100).
    """
    require_admin(principal)
    tolerance = _decimal(tolerance_pct, "the tolerance")
    if not 0 <= tolerance <= 100:
        raise InvalidUsage(f"the tolerance is a percent from 0 to 100, got {tolerance}")
    if end < start:
        raise InvalidUsage("the end day is before the start day")
    b, d = provider_bills.c, platform_daily.c
    with engine.connect() as conn:
        billed = {
            (r.day, r.model): nanos_to_usd(int(r.cost))
            for r in conn.execute(
                select(b.day, b.model, type_coerce(b.cost, BigInteger).label("cost")).where(
                    b.provider == provider, b.day >= start, b.day <= end
                )
            )
        }
        days = sorted({day for day, _ in billed})
        ours: dict[tuple[date, str], Decimal] = defaultdict(lambda: ZERO)
        if days:
            cost = func.sum(type_coerce(d.provider_cost, BigInteger))
            for day, model, nanos in conn.execute(
                select(d.day, d.model, cost)
                .where(d.provider == provider, d.day.in_(days))
                .group_by(d.day, d.model)
            ):
                ours[(day, canonical_model(provider, model))] += nanos_to_usd(int(nanos))
    rows = []
    for day, model in sorted(billed.keys() | ours.keys()):
        mine, theirs = ours.get((day, model), ZERO), billed.get((day, model), ZERO)
        rows.append(Drift(day, model, mine, theirs, _over(mine, theirs, tolerance)))
    totals = []
    for day in days:
        mine = sum((r.ours for r in rows if r.day == day), ZERO)
        theirs = sum((r.billed for r in rows if r.day == day), ZERO)
        totals.append(Drift(day, None, mine, theirs, _over(mine, theirs, tolerance)))
    return totals, rows
