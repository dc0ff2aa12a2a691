"""Catalog updates without a release: a genai-prices data file (the JSON list of
providers that genai-prices publishes as `prices/data.json`), loaded by an operator
(`pricing-core prices update --from FILE`) or on `PRICING_UPDATE_INTERVAL`, stored in
`catalog_snapshots`, and priced with by every process that reads that database.

The newest stored file replaces the bundled snapshot through genai-prices' own hook
(`data_snapshot.set_custom_snapshot`, the one its `UpdatePrices` uses), so it is
process-wide: one process prices against one database's catalog.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pydantic
from genai_prices import data_snapshot
from genai_prices.types import Provider, _providers_from_raw
from sqlalchemy import select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema_prices import catalog_snapshots
from pricing_core.domain.errors import InvalidUsage

MAX_CATALOG_BYTES = 20_000_000

_lock = threading.Lock()
_active: dict[str, str | None] = {"sha256": None}


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def parse_catalog(text: str) -> list[Provider]:
    """Validate a genai-prices data file. Returns its providers.

    Raises: InvalidUsage (not JSON, not a list of providers, or refused by
    genai-prices' own schema, with its message).
    """
    if len(text) > MAX_CATALOG_BYTES:
        raise InvalidUsage(f"the catalog file is larger than {MAX_CATALOG_BYTES:,} bytes")
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidUsage(f"the catalog file is not JSON: {exc}") from None
    if not isinstance(raw, list) or not raw:
        raise InvalidUsage("a genai-prices data file is a non-empty JSON list of providers")
    try:
        # genai-prices' own validator, as `UpdatePrices.fetch` uses it
        return _providers_from_raw(raw)
    except (pydantic.ValidationError, ValueError, TypeError, KeyError) as exc:
        raise InvalidUsage(f"not a valid genai-prices data file: {str(exc)[:400]}") from None


def active_sha256() -> str | None:
    """The sha256 of the loaded data file in use, or None for the bundled snapshot."""
    return _active["sha256"]


def sync_catalog(conn: Connection) -> bool:
    """Make the newest stored data file (or, with none, the bundled snapshot) the
    catalog in use. Returns True if it changed."""
    row = conn.execute(
        select(catalog_snapshots.c.id, catalog_snapshots.c.sha256)
        .order_by(catalog_snapshots.c.id.desc())
        .limit(1)
    ).first()
    wanted = None if row is None else row.sha256
    with _lock:
        if wanted == _active["sha256"]:
            return False
    snapshot = None
    if row is not None:
        text = conn.execute(
            select(catalog_snapshots.c.data).where(catalog_snapshots.c.id == row.id)
        ).scalar_one()
        snapshot = data_snapshot.DataSnapshot(parse_catalog(text), from_auto_update=False)
    with _lock:
        data_snapshot.set_custom_snapshot(snapshot)
        _active["sha256"] = wanted
    return True


def reset_catalog() -> None:
    """Back to the bundled snapshot (tests; a database without loaded files)."""
    with _lock:
        data_snapshot.set_custom_snapshot(None)
        _active["sha256"] = None


@dataclass(frozen=True, slots=True)
class ModelDiff:
    """One model whose standard rates (USD per MTok, now) differ between catalogs;
    None where the model is absent."""

    provider: str
    model: str
    before: tuple[Decimal | None, Decimal | None] | None
    after: tuple[Decimal | None, Decimal | None] | None

    @property
    def change(self) -> str:
        if self.before is None:
            return "added"
        return "removed" if self.after is None else "changed"


def _rates(providers: list[Provider], at: datetime) -> dict[tuple[str, str], tuple]:  # type: ignore[type-arg]
    out = {}
    for provider in providers:
        for model in provider.models:
            price = model.get_prices(at)
            base = [getattr(v, "base", v) for v in (price.input_mtok, price.output_mtok)]
            out[(provider.id, model.id)] = tuple(base)
    return out


def catalog_diff(new: list[Provider], *, now: datetime | None = None) -> list[ModelDiff]:
    """What loading `new` changes against the catalog in use: models added, removed,
    or with other input/output rates now. Sorted by provider and model."""
    at = now or datetime.now(UTC)
    before = _rates(data_snapshot.get_snapshot().providers, at)
    after = _rates(new, at)
    return [
        ModelDiff(p, m, before.get((p, m)), after.get((p, m)))
        for p, m in sorted(before.keys() | after.keys())
        if before.get((p, m)) != after.get((p, m))
    ]
