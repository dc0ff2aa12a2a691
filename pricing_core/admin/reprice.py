"""The reprice preview: what the last days' pay-as-you-go usage would have cost
under proposed prices (`PriceChange`), exactly as `record_usage` would price it.
Past charges never change; this only shows the difference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
from sqlalchemy import BigInteger, Engine, and_, or_, select, type_coerce

from pricing_core.adapters.schema import usage_events
from pricing_core.admin.prices import PriceChange
from pricing_core.catalog.price_book import (
    ModelPriceRow,
    PriceBook,
    load_price_book,
)
from pricing_core.catalog.vectorized import price_frame
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.money import ZERO, nanos_to_usd
from pricing_core.domain.principal import Principal, require_admin
from pricing_core.domain.usage_event import EARLIEST

# ---------------------------------------------------------------- reprice preview


@dataclass(frozen=True, slots=True)
class RepriceRow:
    """One model over the window: what its pay-as-you-go events were charged and
    what they would have been charged under the proposed price. USD."""

    provider: str
    model: str
    requests: int
    current: Decimal
    proposed: Decimal

    @property
    def delta(self) -> Decimal:
        return self.proposed - self.current


@dataclass(frozen=True, slots=True)
class RepricePreview:
    since: datetime
    until: datetime
    rows: tuple[RepriceRow, ...]

    @property
    def current(self) -> Decimal:
        return sum((r.current for r in self.rows), ZERO)

    @property
    def proposed(self) -> Decimal:
        return sum((r.proposed for r in self.rows), ZERO)

    @property
    def delta(self) -> Decimal:
        return self.proposed - self.current


def reprice_preview(
    engine: Engine,
    principal: Principal,
    changes: Sequence[PriceChange],
    *,
    days: int = 30,
    now: datetime | None = None,
) -> RepricePreview:
    """What the pay-as-you-go usage of the last `days` days would have cost under the
    proposed prices, per model and in total, next to what it was charged.

    Exact: every event of the edited models in the window is re-priced as
    `record_usage` would price it (`vectorized.price_frame`, which equals
    `PriceBook.quote` per event, rounded per event), with the proposed row in effect
    over the whole window. Rollups cannot give this exactly because prices are rounded
    per event, so only the edited models' events are read. Events charged by a plan
    (included / overage), a fixed operation price, or not priced are unaffected and
    left out.
    Raises: PermissionDenied, InvalidUsage.
    """
    require_admin(principal)
    if not 1 <= int(days) <= 366:
        raise InvalidUsage(f"the preview window must be 1-366 days, got {days}")
    until = now or datetime.now(UTC)
    since = until - timedelta(days=int(days))
    book = load_price_book(engine)
    models = dict(book.models)
    for change in changes:
        models[(change.provider, change.model)] = [
            ModelPriceRow(-1, EARLIEST, change.markup, change.override)
        ]
    proposed_book = PriceBook(book.default_markup, models, book.operations)
    frame = _window_events(engine, changes, since, until)
    rows = []
    if len(frame):
        frame["proposed"] = price_frame(frame, proposed_book)["price"].to_numpy()
        for (provider, model), group in frame.groupby(["provider", "model"], sort=True):
            rows.append(
                RepriceRow(
                    str(provider),
                    str(model),
                    len(group),
                    nanos_to_usd(sum(int(v) for v in group["price"])),
                    nanos_to_usd(sum(int(v) for v in group["proposed"])),
                )
            )
    seen = {(r.provider, r.model) for r in rows}
    rows += [
        RepriceRow(c.provider, c.model, 0, ZERO, ZERO)
        for c in changes
        if (c.provider, c.model) not in seen
    ]
    return RepricePreview(since, until, tuple(rows))


def _window_events(
    engine: Engine, changes: Sequence[PriceChange], since: datetime, until: datetime
) -> pd.DataFrame:
    e = usage_events.c
    columns = [
        "provider",
        "model",
        "operation",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "created_at",
        "price",
    ]
    if not changes:
        return pd.DataFrame(columns=columns)
    query = select(
        e.provider,
        e.model,
        e.operation,
        e.input_tokens,
        e.output_tokens,
        e.cached_tokens,
        e.created_at,
        type_coerce(e.price, BigInteger).label("price"),  # nano-USD integers
    ).where(
        e.created_at >= since,
        e.created_at < until,
        e.status == "priced",
        e.charge_basis == "payg",
        or_(*(and_(e.provider == c.provider, e.model == c.model) for c in changes)),
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)
