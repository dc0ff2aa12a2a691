"""A batch's input and checks: events (objects or a DataFrame) in chunks, and every
rule of `domain.usage_event.validate_event` applied vectorized. Rows the fast checks
cannot clear go through `validate_event` itself, so errors and their messages are
the per-event ones."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

import numpy as np
import pandas as pd

from pricing_core.catalog.vectorized import to_micros
from pricing_core.domain.costing import special_rows
from pricing_core.domain.errors import (
    InvalidUsage,
    PricingError,
)
from pricing_core.domain.periods import epoch_micros
from pricing_core.domain.usage_event import (
    EARLIEST,
    ID_PATTERN,
    MAX_TOKENS,
    NAME_PATTERN,
    USER_ID_PATTERN,
    UsageEvent,
    validate_event,
)

FIELDS = tuple(f.name for f in fields(UsageEvent))  # a batch's columns, as UsageEvent's
REQUIRED = tuple(f.name for f in fields(UsageEvent) if f.default is MISSING)


# ---------------------------------------------------------------- input


def chunks(
    events: pd.DataFrame | Iterable[UsageEvent], size: int
) -> Iterator[tuple[int, pd.DataFrame, list[UsageEvent] | None]]:
    if isinstance(events, pd.DataFrame):
        missing = [c for c in REQUIRED if c not in events.columns]
        if missing:
            raise InvalidUsage(f"usage batch: missing columns {missing}")
        for lo in range(0, len(events), size):
            part = events.iloc[lo : lo + size].reset_index(drop=True)
            for name in FIELDS:
                if name not in part.columns:
                    part[name] = 0 if name == "cached_tokens" else None
            yield lo, part, None
        return
    iterator = iter(events)
    offset = 0
    while chunk := list(islice(iterator, size)):
        frame = pd.DataFrame(
            {name: pd.Series([getattr(e, name) for e in chunk], dtype=object) for name in FIELDS}
        )
        for name in ("input_tokens", "output_tokens", "cached_tokens"):
            values = frame[name]
            if all(type(v) is int and 0 <= v <= MAX_TOKENS for v in values):
                frame[name] = values.astype(np.int64)
        yield offset, frame, chunk
        offset += len(chunk)


# ---------------------------------------------------------------- checks


@dataclass(slots=True)
class Checked:
    """A chunk after the checks: errors per row, normalized timestamps."""

    error: np.ndarray  # object: None or PricingError
    micros: np.ndarray  # int64 UTC microseconds
    given: np.ndarray  # bool: created_at was given (not defaulted to now)
    metadata: list[str | None]  # JSON text as stored
    events: dict[int, UsageEvent] = field(default_factory=dict)  # validated, by row


def _fast_ok(values: pd.Series, pattern: str, *, optional: bool = False) -> np.ndarray:
    """Rows that certainly pass the per-event check (printable ASCII etc.)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        cats = pd.Series(values.cat.categories).astype(object)
        ok_cat = _fast_ok(cats, pattern)
        codes = values.cat.codes.to_numpy()
        ok = np.where(codes >= 0, ok_cat[np.maximum(codes, 0)], optional)
        return ok
    text = values
    if not pd.api.types.is_string_dtype(values.dtype):
        return values.isna().to_numpy() if optional else np.zeros(len(values), dtype=bool)
    if values.dtype == object:
        is_str = values.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
        text = values.where(is_str, "").astype(str)
    else:
        is_str = values.notna().to_numpy()
    matched = is_str & text.str.fullmatch(pattern).fillna(False).to_numpy(dtype=bool)
    if pattern in (ID_PATTERN, USER_ID_PATTERN):
        matched &= text.str.contains(r"[^ ]").fillna(False).to_numpy(dtype=bool)
    if optional:
        matched |= values.isna().to_numpy()
    return matched


def check_rows(frame: pd.DataFrame, originals: list[UsageEvent] | None, now: datetime) -> Checked:
    n = len(frame)
    suspect = np.zeros(n, dtype=bool)
    suspect |= ~_fast_ok(frame["request_id"], ID_PATTERN)
    for name in ("account_id", "user_id"):
        suspect |= ~_fast_ok(frame[name], USER_ID_PATTERN)
    suspect |= ~_fast_ok(frame["chat_id"], ID_PATTERN, optional=True)
    for name in ("operation", "provider", "model"):
        suspect |= ~_fast_ok(frame[name], NAME_PATTERN)
    tokens = {}
    for name in ("input_tokens", "output_tokens", "cached_tokens"):
        values = frame[name]
        if values.dtype.kind in "iu":
            array = values.to_numpy(dtype=np.int64)
            suspect |= (array < 0) | (array > MAX_TOKENS)
        else:
            array = np.zeros(n, dtype=np.int64)
            suspect[:] = True
        tokens[name] = array
    suspect |= tokens["cached_tokens"] > tokens["input_tokens"]

    created = frame["created_at"]
    micros = np.full(n, epoch_micros(now), dtype=np.int64)
    given = created.notna().to_numpy(copy=True)
    if isinstance(created.dtype, pd.DatetimeTZDtype):
        stamps = to_micros(created.fillna(pd.Timestamp(now)))
    else:
        aware = created.map(lambda v: isinstance(v, datetime) and v.tzinfo is not None)
        suspect |= given & ~aware.to_numpy(dtype=bool)
        stamps = micros.copy()
        if aware.any():
            stamps[aware.to_numpy(bool)] = to_micros(created[aware])
    micros = np.where(given, stamps, micros)
    limit = epoch_micros(now + timedelta(days=1))
    suspect |= given & ((micros < epoch_micros(EARLIEST)) | (micros > limit))
    metadata: list[str | None] = [None] * n
    has_metadata = frame["metadata"].notna().to_numpy()
    suspect |= has_metadata
    suspect |= special_rows(frame)

    checked = Checked(np.full(n, None, dtype=object), micros, given, metadata)
    for i in np.flatnonzero(suspect):
        event = originals[i] if originals is not None else event_of(frame, int(i))
        try:
            valid = validate_event(event, now=now)
        except PricingError as exc:
            checked.error[i] = exc
            continue
        assert valid.created_at is not None
        checked.micros[i] = epoch_micros(valid.created_at)
        checked.given[i] = event.created_at is not None
        if valid.metadata is not None:
            checked.metadata[i] = json.dumps(dict(valid.metadata))
        checked.events[int(i)] = valid
    return checked


def event_of(frame: pd.DataFrame, i: int) -> UsageEvent:
    """Row `i` as the UsageEvent a caller would have built (numpy scalars -> Python)."""
    values: dict[str, Any] = {}
    for name in FIELDS:
        value = frame[name].iloc[i]
        if value is None or (not isinstance(value, dict | list) and pd.isna(value)):
            value = None
        elif isinstance(value, np.integer):
            value = int(value)
        elif isinstance(value, pd.Timestamp):
            value = value.floor("us").to_pydatetime()
        values[name] = value
    for name, default in _DEFAULTS.items():
        if values[name] is None:
            values[name] = default
    return UsageEvent(**values)


# what a missing value of these columns means (UsageEvent's defaults)
_DEFAULTS = {
    "cached_tokens": 0,
    "cache_write_tokens": 0,
    "service_tier": "standard",
    "quantity": 1,
}
