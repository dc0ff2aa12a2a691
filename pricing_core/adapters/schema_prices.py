"""The pricing-truth tables (on `schema.metadata`): operators' custom models, loaded
genai-prices data files, applied reprices with their per-event corrections, and
imported provider bills."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Date,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from pricing_core.adapters.schema import BigId, ShortId, metadata
from pricing_core.adapters.types import DecimalText, NanoUSD, UTCDateTime

# A model the catalog lacks (or an operator's own provider rates for one it has), per
# service tier, from `effective_from` on. Rates: USD per million tokens. `tiers` is a
# list of {"start": tokens, "input_mtok": "...", "output_mtok": "..."}: past `start`
# input tokens the whole request is priced at that tier's rates (genai-prices' rule).
custom_models = Table(
    "custom_models",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("provider", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("service_tier", String(16), nullable=False),
    Column("effective_from", UTCDateTime, nullable=False),
    Column("input_mtok", DecimalText, nullable=False),
    Column("output_mtok", DecimalText, nullable=False),
    Column("cache_read_mtok", DecimalText),
    Column("cache_write_mtok", DecimalText),
    Column("tiers", JSON),
    Column("actor", String(320)),
    Column("reason", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_custom_models_lookup", "provider", "model", "effective_from"),
)

# A genai-prices data file an operator loaded (`prices update`); the newest row is the
# catalog every process prices with. `data` is the file's JSON text, as loaded.
catalog_snapshots = Table(
    "catalog_snapshots",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("sha256", String(64), nullable=False),
    Column("source", String(500), nullable=False),
    Column("models", Integer, nullable=False),
    Column("data", Text, nullable=False),
    Column("actor", String(320)),
    Column("created_at", UTCDateTime, nullable=False),
)

# A reprice applied to past charges: the proposed prices, the window, and totals.
reprices = Table(
    "reprices",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("changes", JSON, nullable=False),
    Column("since", UTCDateTime, nullable=False),
    Column("until", UTCDateTime, nullable=False),
    Column("events", Integer, nullable=False),
    Column("amount", NanoUSD, nullable=False),  # the sum of the corrections (+ = debit)
    Column("actor", String(320)),
    Column("reason", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# One correction of one event's charge: the difference between what the event was
# charged (plus earlier corrections) and its price under the reprice. The ledger entry
# carries the money; the event itself is never edited.
price_corrections = Table(
    "price_corrections",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event_id", BigId, nullable=False),
    Column("account_id", ShortId, nullable=False),
    Column("reprice_id", BigId, nullable=False),
    Column("amount", NanoUSD, nullable=False),  # + = the event is charged more
    Column("ledger_entry_id", BigId, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("account_id", "ledger_entry_id"),
    Index("ix_price_corrections_event", "event_id"),
)

# A provider's own bill, imported per day and model (USD), to reconcile against.
provider_bills = Table(
    "provider_bills",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("provider", String(64), nullable=False),
    Column("day", Date, nullable=False),
    Column("model", String(128), nullable=False),
    Column("cost", NanoUSD, nullable=False),
    Column("source", String(500), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("provider", "day", "model"),
)

# Every (provider, model) with usage: added by an insert trigger on `platform_daily`
# (migration 0018), so the price book need not group all of it to list the models.
models_in_use = Table(
    "models_in_use",
    metadata,
    Column("provider", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    PrimaryKeyConstraint("provider", "model"),
)
