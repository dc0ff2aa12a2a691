"""Pricing truth for operators: custom models (a model the catalog lacks, priced
before the catalog), genai-prices data files loaded without a release, and the
unpriced-usage queue priced in one step. Every change is audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.audit import actor_of, audit_reason, write_audit
from pricing_core.adapters.schema_prices import catalog_snapshots, custom_models
from pricing_core.adapters.storage import run_write
from pricing_core.admin.prices import MAX_RATE_MTOK, _decimal, _effective_from
from pricing_core.catalog.custom import ContextTier
from pricing_core.catalog.price_book import clear_price_cache, load_price_book
from pricing_core.catalog.snapshots import ModelDiff, catalog_diff, parse_catalog, sha256_of
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.money import ZERO
from pricing_core.domain.principal import Principal, require_admin
from pricing_core.domain.usage_event import MAX_TOKENS, SERVICE_TIERS, check_name
from pricing_core.metering.queue import DrainResult, count_unpriced, drain_unpriced

_RATE: dict[str, Any] = {"low": ZERO, "high": MAX_RATE_MTOK}


def _rate(value: object, what: str) -> Decimal:
    return _decimal(value, f"{what} per MTok", **_RATE)


def _optional_rate(value: object, what: str) -> Decimal | None:
    return None if value in (None, "") else _rate(value, what)


def context_tiers(values: Sequence[tuple[object, object, object]]) -> tuple[ContextTier, ...]:
    """(start tokens, input, output USD per MTok) triples -> validated context tiers.
    Raises: InvalidUsage (a start outside 1..MAX_TOKENS, repeated, or a bad rate)."""
    tiers = []
    for start, input_mtok, output_mtok in values:
        if isinstance(start, bool) or not isinstance(start, int) or not 0 < start < MAX_TOKENS:
            raise InvalidUsage(f"a context tier starts at 1..{MAX_TOKENS:,} tokens, got {start!r}")
        tiers.append(
            ContextTier(start, _rate(input_mtok, "tier input"), _rate(output_mtok, "tier output"))
        )
    if len({t.start for t in tiers}) != len(tiers):
        raise InvalidUsage("two context tiers start at the same token count")
    return tuple(sorted(tiers, key=lambda t: t.start))


def add_custom_model(
    engine: Engine,
    principal: Principal,
    provider: str,
    model: str,
    *,
    input_mtok: object,
    output_mtok: object,
    cache_read_mtok: object = None,
    cache_write_mtok: object = None,
    tiers: Sequence[tuple[object, object, object]] = (),
    service_tier: str = "standard",
    effective_from: datetime | None = None,
    reason: str,
    allow_retroactive: bool = False,
    now: datetime | None = None,
) -> int:
    """Price `provider`/`model` (in `service_tier`) at these provider rates, USD per
    million tokens, from `effective_from` on (None: now); it prices before the catalog.
    Past `tiers`' starts the whole request costs that tier's rates. The row and an
    audit row are written in one transaction, then the price cache is cleared.

    Returns: the row id. Raises: PermissionDenied, InvalidUsage (bad names or rates, a
    past `effective_from` unless allowed: queued usage needs it, no reason).
    """
    require_admin(principal)
    at = now or datetime.now(UTC)
    check_name("provider", provider)
    check_name("model", model)
    if service_tier not in SERVICE_TIERS:
        raise InvalidUsage(f"service_tier must be one of {', '.join(SERVICE_TIERS)}")
    start = _effective_from(effective_from, at, allow_retroactive)
    text = audit_reason(reason)
    values = {
        "provider": provider,
        "model": model,
        "service_tier": service_tier,
        "effective_from": start,
        "input_mtok": _rate(input_mtok, "input"),
        "output_mtok": _rate(output_mtok, "output"),
        "cache_read_mtok": _optional_rate(cache_read_mtok, "cache read"),
        "cache_write_mtok": _optional_rate(cache_write_mtok, "cache write"),
        "tiers": [t.as_json() for t in context_tiers(tiers)] or None,
    }
    actor = actor_of(principal)

    def work(conn: Connection) -> int:
        row_id = conn.execute(
            insert(custom_models)
            .values(**values, actor=actor, reason=text, created_at=at)
            .returning(custom_models.c.id)
        ).scalar_one()
        write_audit(
            conn,
            actor=actor,
            action="price.custom_model",
            now=at,
            target=f"{provider}/{model}",
            after={**values, "custom_models_id": row_id},
            reason=text,
        )
        return int(row_id)

    row_id = run_write(engine, work)
    clear_price_cache()
    return row_id


@dataclass(frozen=True, slots=True)
class CustomModel:
    """A custom-model row as the Price truth page lists it (rates USD per MTok)."""

    id: int
    provider: str
    model: str
    service_tier: str
    effective_from: datetime
    input_mtok: Decimal
    output_mtok: Decimal
    cache_read_mtok: Decimal | None
    cache_write_mtok: Decimal | None
    tiers: int
    actor: str | None
    reason: str | None


def custom_model_list(engine: Engine, principal: Principal) -> list[CustomModel]:
    """Every custom-model row, newest first. Raises: PermissionDenied."""
    require_admin(principal)
    c = custom_models.c
    with engine.connect() as conn:
        rows = conn.execute(select(custom_models).order_by(c.effective_from.desc(), c.id.desc()))
        return [
            CustomModel(
                r.id,
                r.provider,
                r.model,
                r.service_tier,
                r.effective_from,
                r.input_mtok,
                r.output_mtok,
                r.cache_read_mtok,
                r.cache_write_mtok,
                len(r.tiers or ()),
                r.actor,
                r.reason,
            )  # fmt: skip
            for r in rows
        ]


@dataclass(frozen=True, slots=True)
class CatalogFile:
    """A checked genai-prices data file and what loading it changes."""

    sha256: str
    models: int
    diff: tuple[ModelDiff, ...]


def check_catalog_file(text: str) -> CatalogFile:
    """Validate a genai-prices data file and diff it against the catalog in use.
    Raises: InvalidUsage."""
    providers = parse_catalog(text)
    models = sum(len(p.models) for p in providers)
    return CatalogFile(sha256_of(text), models, tuple(catalog_diff(providers)))


def load_catalog_file(
    engine: Engine, principal: Principal, text: str, *, source: str, now: datetime | None = None
) -> CatalogFile:
    """Make a genai-prices data file the catalog every process prices with (stored in
    `catalog_snapshots`, audited with its diff). Returns what it changed.
    Raises: PermissionDenied, InvalidUsage."""
    require_admin(principal)
    checked = check_catalog_file(text)
    at = now or datetime.now(UTC)
    actor = actor_of(principal)

    def work(conn: Connection) -> None:
        conn.execute(
            insert(catalog_snapshots).values(
                sha256=checked.sha256,
                source=source[:500],
                models=checked.models,
                data=text,
                actor=actor,
                created_at=at,
            )  # fmt: skip
        )
        write_audit(
            conn,
            actor=actor,
            action="price.catalog",
            now=at,
            target=source[:200],
            after={
                "sha256": checked.sha256,
                "models": checked.models,
                "changed": [f"{d.provider}/{d.model}: {d.change}" for d in checked.diff[:50]],
            },
            reason=f"catalog file loaded ({len(checked.diff)} models differ)",
        )

    run_write(engine, work)
    clear_price_cache()
    load_price_book(engine)  # this process switches now; others on their next refresh
    return checked


@dataclass(frozen=True, slots=True)
class CatalogStatus:
    """The catalog in use: a loaded file (when, from where, sha) or the bundled one."""

    loaded_at: datetime | None
    source: str | None
    sha256: str | None
    models: int | None
    unpriced: int


def catalog_status(engine: Engine, principal: Principal) -> CatalogStatus:
    """The newest loaded catalog file, if any, and the unpriced-queue length.
    Raises: PermissionDenied."""
    require_admin(principal)
    s = catalog_snapshots.c
    with engine.connect() as conn:
        row = conn.execute(
            select(s.created_at, s.source, s.sha256, s.models).order_by(s.id.desc()).limit(1)
        ).first()
        unpriced = count_unpriced(conn)
    if row is None:
        return CatalogStatus(None, None, None, None, unpriced)
    return CatalogStatus(row.created_at, row.source, row.sha256, row.models, unpriced)


def price_unpriced(
    engine: Engine,
    principal: Principal,
    *,
    provider: str | None = None,
    model: str | None = None,
    now: datetime | None = None,
) -> DrainResult:
    """Price the queued events that the price book now prices (`metering.queue`),
    and audit the run. Raises: PermissionDenied."""
    require_admin(principal)
    at = now or datetime.now(UTC)
    result = drain_unpriced(engine, provider=provider, model=model, now=at)
    if result.priced:
        run_write(
            engine,
            lambda conn: write_audit(
                conn,
                actor=actor_of(principal),
                action="price.unpriced_queue",
                now=at,
                target=f"{provider or '*'}/{model or '*'}",
                after={"priced": result.priced, "amount": result.amount},
                reason="queued usage priced",
            ),
        )
    return result
