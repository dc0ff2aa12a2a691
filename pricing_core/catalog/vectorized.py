"""Vectorized pricing, the catalog-dependent half of `vectorized.price_frame`.

Rows are grouped by (provider, model, operation); inside a group, by the operator's
rows in effect (fixed operation price, markup / override), the genai-prices price
period (start dates and times of day, in UTC as genai-prices takes them) and the tier
segment of the input tokens. Each sub-group gets its charge as a `LinearCharge`
measured from `genai_prices.calc_price` (`catalog.linear.linear_charge`: probes, then
verification at other points) and is priced with exact integer arithmetic
(`domain.costing.linear_nanos`). Anything that does not fit that model is priced row
by row with `PriceBook.quote`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
from genai_prices.types import ModelPrice, TimeOfDateConstraint

from pricing_core.catalog.linear import linear_charge, tier_starts
from pricing_core.catalog.price_book import (
    PriceBook,
    _find,
    catalog_version,
    provider_price,
)
from pricing_core.domain.costing import (
    FRAME_COLUMNS,
    ChargeBasis,
    LinearCharge,
    TokenCounts,
    linear_nanos,
    special_rows,
)
from pricing_core.domain.errors import InvalidUsage, PricingError
from pricing_core.domain.money import MTOK, ZERO, round_nano, usd_to_nanos
from pricing_core.domain.periods import epoch_micros, from_epoch_micros, time_of_day_micros

DAY_US = 86_400_000_000


def to_micros(values: pd.Series) -> np.ndarray:
    """Timezone-aware timestamps -> int64 microseconds since the epoch (UTC)."""
    stamps = pd.to_datetime(values, utc=True)
    return stamps.dt.tz_localize(None).to_numpy().astype("datetime64[us]").astype(np.int64)


class _Out:
    """The result columns, filled group by group. Basis and price version are kept
    as codes into `labels` (categoricals), errors sparsely: both are few."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.cost: np.ndarray = np.zeros(n, dtype=np.int64)
        self.price: np.ndarray = np.zeros(n, dtype=np.int64)
        self.label = np.zeros(n, dtype=np.int32)
        self.labels: list[tuple[str, str]] = [(str(ChargeBasis.PAYG), catalog_version())]
        self.errors: list[tuple[np.ndarray, PricingError]] = []

    def _code(self, basis: str, version: str) -> int:
        try:
            return self.labels.index((basis, version))
        except ValueError:
            self.labels.append((basis, version))
            return len(self.labels) - 1

    def put(
        self,
        pos: np.ndarray,
        cost: np.ndarray | int,
        price: np.ndarray | int,
        basis: str,
        version: str,
    ) -> None:
        for name, values in (("cost", cost), ("price", price)):
            column = getattr(self, name)
            wide = (
                values.dtype == object if isinstance(values, np.ndarray) else abs(values) >= 2**63
            )
            if wide and column.dtype != object:  # type: ignore[arg-type]
                column = column.astype(object)
                setattr(self, name, column)
            column[pos] = values
        self.label[pos] = self._code(basis, version)

    def fail(self, pos: np.ndarray, error: PricingError) -> None:
        self.errors.append((pos, error))
        self.label[pos] = self._code(str(ChargeBasis.UNPRICED), "unpriced")

    def frame(self, index: pd.Index) -> pd.DataFrame:
        bases = sorted({b for b, _ in self.labels})
        versions = sorted({v for _, v in self.labels})
        basis_of = np.array([bases.index(b) for b, _ in self.labels], dtype=np.int32)
        version_of = np.array([versions.index(v) for _, v in self.labels], dtype=np.int32)
        error = None
        if self.errors:
            error = np.full(self.n, None, dtype=object)
            for pos, exc in self.errors:
                error[pos] = exc
        return pd.DataFrame(
            {
                "provider_cost": self.cost,
                "price": self.price,
                "basis": pd.Categorical.from_codes(basis_of[self.label], bases),
                "price_version": pd.Categorical.from_codes(version_of[self.label], versions),
                "error": error,
            },
            index=index,
        )


def price_rows(frame: pd.DataFrame, book: PriceBook) -> pd.DataFrame:
    """See `vectorized.price_frame`."""
    n = len(frame)
    out = _Out(n)
    if n:
        ts = to_micros(frame["created_at"])
        tokens_in = frame["input_tokens"].to_numpy(dtype=np.int64)
        tokens_out = frame["output_tokens"].to_numpy(dtype=np.int64)
        if "cached_tokens" in frame.columns:
            cached = frame["cached_tokens"].to_numpy(dtype=np.int64)
        else:
            cached = np.zeros(n, dtype=np.int64)
        special = special_rows(frame)
        _price_each(out, book, np.flatnonzero(special), frame)
        linear = np.flatnonzero(~special)
        keys = frame.iloc[linear].groupby(["provider", "model", "operation"], sort=False)
        for (provider, model, operation), pos in keys.indices.items():
            _price_key(
                out, book, str(provider), str(model), str(operation),
                linear[np.asarray(pos)], ts, tokens_in, cached, tokens_out, frame,
            )  # fmt: skip
    return out.frame(frame.index)


def _in_effect(rows: list, ts: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    """Index of the row in effect at each timestamp (bisect_right - 1), -1 for none."""
    if not rows:
        return np.full(len(ts), -1, dtype=np.int64)
    starts = np.array([epoch_micros(r.effective_from) for r in rows], dtype=np.int64)
    return np.searchsorted(starts, ts, side="right").astype(np.int64) - 1


def _price_key(
    out: _Out,
    book: PriceBook,
    provider: str,
    model: str,
    operation: str,
    pos: np.ndarray,
    ts: np.ndarray,
    tokens_in: np.ndarray,
    cached: np.ndarray,
    tokens_out: np.ndarray,
    frame: pd.DataFrame,
) -> None:
    # the model's own fixed price where one is in effect, else the operation-wide one
    # (`PriceBook.operation_row`); every row here has quantity 1 (`special_rows`)
    for rows in (book.operations.get((operation, m), []) for m in (model, "")):
        op_idx = _in_effect(rows, ts[pos])
        for index in np.unique(op_idx[op_idx >= 0]):
            fixed = rows[index]
            out.put(
                pos[op_idx == index],
                usd_to_nanos(round_nano(fixed.provider_cost)),
                usd_to_nanos(round_nano(fixed.price)),
                str(ChargeBasis.FIXED),
                f"op:{fixed.id}",
            )
        pos = pos[op_idx < 0]
    if not len(pos):
        return
    if (provider, model) in book.custom:  # operator rows: priced as the catalog's are, per row
        _price_each(out, book, pos, frame)
        return
    try:
        _provider, info = _find(provider, model)
    except PricingError as exc:
        out.fail(pos, exc)
        return
    period, reps = _periods(info, ts[pos])
    model_rows = book.models.get((provider, model), [])
    mp_idx = _in_effect(model_rows, ts[pos])
    for p, rep in enumerate(reps):
        in_period = period == p
        prices = info.get_prices(rep)  # type: ignore[attr-defined]
        thresholds = tier_starts(prices)
        segment = np.searchsorted(thresholds, tokens_in[pos], side="left")
        for m in np.unique(mp_idx[in_period]):
            for s in np.unique(segment[in_period & (mp_idx == m)]):
                sub = pos[in_period & (mp_idx == m) & (segment == s)]
                row = model_rows[m] if m >= 0 else None
                _price_linear(
                    out, book, provider, model, operation, rep, prices, thresholds, int(s), row,
                    sub, tokens_in, cached, tokens_out, frame,
                )  # fmt: skip


def _periods(info: object, ts: np.ndarray) -> tuple[np.ndarray, list[datetime]]:
    """Group timestamps by the genai-prices price in effect: (period per row, a
    representative timestamp per period)."""
    conditional = info.prices  # type: ignore[attr-defined]
    if isinstance(conditional, ModelPrice):
        return np.zeros(len(ts), dtype=np.int64), [from_epoch_micros(ts[0])]
    bounds = sorted(
        {
            time_of_day_micros(t)
            for c in conditional
            if isinstance(c.constraint, TimeOfDateConstraint)
            for t in (c.constraint.start_time, c.constraint.end_time)
        }
    )
    edges = np.array(bounds, dtype=np.int64)
    bucket = np.searchsorted(edges, ts % DAY_US, side="right") if bounds else np.zeros(len(ts), int)
    code = (ts // DAY_US) * (len(bounds) + 1) + bucket
    uniques, inverse = np.unique(code, return_inverse=True)
    period_of_price: dict[int, int] = {}
    reps: list[datetime] = []
    period_of_code = np.empty(len(uniques), dtype=np.int64)
    for i, value in enumerate(uniques):
        day, b = divmod(int(value), len(bounds) + 1)
        rep = from_epoch_micros(day * DAY_US + (bounds[b - 1] if b else 0))
        prices = info.get_prices(rep)  # type: ignore[attr-defined]
        if id(prices) not in period_of_price:
            period_of_price[id(prices)] = len(reps)
            reps.append(rep)
        period_of_code[i] = period_of_price[id(prices)]
    return period_of_code[inverse.reshape(-1)], reps


def _price_linear(
    out: _Out,
    book: PriceBook,
    provider: str,
    model: str,
    operation: str,
    rep: datetime,
    prices: ModelPrice,
    thresholds: tuple[int, ...],
    segment: int,
    row: object,
    pos: np.ndarray,
    tokens_in: np.ndarray,
    cached: np.ndarray,
    tokens_out: np.ndarray,
    frame: pd.DataFrame,
) -> None:
    try:
        provider_price(provider, model, rep)  # refuses models not priced per token
    except PricingError as exc:
        out.fail(pos, exc)
        return
    markup = row.markup if row is not None else book.default_markup  # type: ignore[attr-defined]
    override = row.override if row is not None else None  # type: ignore[attr-defined]
    version = catalog_version()
    if row is not None:
        version += f";mp:{row.id}"  # type: ignore[attr-defined]
    cost_charge = linear_charge(provider, model, rep, prices, thresholds, segment)
    if cost_charge is None or markup < 0:
        _price_each(out, book, pos, frame)
        return
    if override is not None:
        cache_rate = (
            override.input_mtok if override.cache_read_mtok is None else override.cache_read_mtok
        )
        base = LinearCharge(
            ZERO, override.input_mtok / MTOK, cache_rate / MTOK, override.output_mtok / MTOK
        )
    else:
        base = cost_charge
    uncached = tokens_in[pos] - cached[pos]
    cost = linear_nanos(cost_charge, uncached, cached[pos], tokens_out[pos])
    price = linear_nanos(base.times(markup), uncached, cached[pos], tokens_out[pos])
    if cost is None or price is None:
        _price_each(out, book, pos, frame)
        return
    out.put(pos, cost, price, str(ChargeBasis.PAYG), version)


def _price_each(out: _Out, book: PriceBook, pos: np.ndarray, frame: pd.DataFrame) -> None:
    """The per-row path, for groups the linear model does not cover."""
    rows = frame.iloc[pos]
    for i, r in zip(pos, rows.itertuples(index=False), strict=True):
        one = np.array([i])
        try:
            quote = book.quote(
                provider=r.provider,
                model=r.model,
                operation=r.operation,
                counts=TokenCounts(
                    int(r.input_tokens),
                    int(r.output_tokens),
                    int(getattr(r, "cached_tokens", 0)),
                    int(getattr(r, "cache_write_tokens", 0)),
                ),
                at=pd.Timestamp(r.created_at).tz_convert(UTC).to_pydatetime(),
                service_tier=getattr(r, "service_tier", "standard"),
                quantity=int(getattr(r, "quantity", 1)),
            )
        except PricingError as exc:
            out.fail(one, exc)
            continue
        cost, price = usd_to_nanos(quote.provider_cost), usd_to_nanos(quote.price)
        out.put(one, cost, price, str(quote.basis), quote.price_version)


def price_frame(frame: pd.DataFrame, book: PriceBook, *, errors: str = "raise") -> pd.DataFrame:
    """Price every row of `frame` exactly as `PriceBook.quote` prices one call.

    Args:
        frame: columns provider, model, operation (str), input_tokens, output_tokens,
            cached_tokens (optional; non-negative ints, cached <= input; not checked
            here: validate first), created_at (timezone-aware); optional
            cache_write_tokens, service_tier and quantity (rows with cache writes, a
            non-standard tier or a quantity other than 1 are priced one by one).
        book: the operator's price rows (`price_book.get_price_book`).
        errors: "raise" raises the first row's UnknownModel; "collect" puts it in the
            `error` column and prices the row 0.
    Returns: a DataFrame on `frame`'s index with `provider_cost` and `price` (exact
        nano-USD integers: int64, or Python ints if int64 could overflow), `basis`
        (ChargeBasis value), `price_version` (str) and `error` (UnknownModel or None).
    Raises: UnknownModel (errors="raise"); InvalidUsage for a missing column.
    Prices: genai-prices snapshot (via `calc_price` probes) and the operator's rows.
    """
    missing = [c for c in FRAME_COLUMNS if c not in frame.columns]
    if missing:
        raise InvalidUsage(f"price_frame: missing columns {missing}")
    out = price_rows(frame, book)
    if errors == "raise":
        failed = out["error"].notna()
        if failed.any():
            raise out["error"][failed].iloc[0]
    return out
