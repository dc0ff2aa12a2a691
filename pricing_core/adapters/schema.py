"""The database schema (SQLAlchemy Core): accounts, wallets, the ledger, holds, usage
events and their rollups, prices, budgets, limits, audit and counters. Alembic
migrations in `migrations/` create it; this `metadata` mirrors it for queries.
Billing tables (Stripe, packages, plans) are in `schema_billing`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    literal,
)

from pricing_core.adapters.types import DecimalText, NanoUSD, UTCDateTime
from pricing_core.domain.usage_event import MAX_ID_LENGTH, MAX_USER_ID_LENGTH

# Id columns as long as the API and `validate_event` allow (one limit in one place).
ShortId = String(MAX_USER_ID_LENGTH)  # account and user ids
LongId = String(MAX_ID_LENGTH)  # request and chat ids

# Autoincrementing 64-bit ids (SQLite only autoincrements INTEGER PRIMARY KEY).
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", ShortId, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(20), nullable=False, default="personal"),  # personal | team
    Column("created_at", UTCDateTime, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", ShortId, primary_key=True),
    Column("account_id", ShortId, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("email", String(320), unique=True),
    Column("name", String(200)),
    Column("role", String(20), nullable=False, default="member"),  # member | admin
    Column("created_at", UTCDateTime, nullable=False),
    # Sign-in (issue 8, migration 0005_auth): the OIDC identity; a row without a
    # subject is an invitation that the first sign-in with its email claims.
    Column("oidc_issuer", String(500)),
    Column("oidc_subject", String(255)),
    Column("last_sign_in_at", UTCDateTime),
    Column("invited_by", String(320)),
    UniqueConstraint("oidc_issuer", "oidc_subject"),
)

wallets = Table(
    "wallets",
    metadata,
    Column("account_id", ShortId, ForeignKey("accounts.id"), primary_key=True),
    Column("balance", NanoUSD, nullable=False),
    Column("held", NanoUSD, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ShortId, nullable=False),  # no FK: see migration 0009
    Column("kind", String(20), nullable=False),
    Column("amount", NanoUSD, nullable=False),
    Column("balance_after", NanoUSD, nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("reference", String(255)),
    Column("reason", Text),
    Column("actor", String(320)),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("account_id", "idempotency_key"),
    Index("ix_ledger_entries_account_created", "account_id", "created_at", "id"),
)

holds = Table(
    "holds",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", ShortId, ForeignKey("accounts.id"), nullable=False),
    Column("user_id", ShortId),
    Column("request_id", LongId),
    Column("amount", NanoUSD, nullable=False),
    Column("status", String(20), nullable=False),  # active | settled | released | expired
    Column("expires_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime),
    UniqueConstraint("account_id", "id"),
    Index("ix_holds_account_status", "account_id", "status"),
)

usage_events = Table(
    "usage_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ShortId, nullable=False),  # no FK: see migration 0009
    Column("request_id", LongId, nullable=False),
    Column("user_id", ShortId, nullable=False),
    Column("chat_id", LongId),
    Column("operation", String(64), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("provider_cost", NanoUSD, nullable=False),
    Column("price", NanoUSD, nullable=False),
    Column("price_version", String(128), nullable=False),
    # migration 0014; defaults on the server, so the charge function and COPY omit them
    Column("cache_write_tokens", BigInteger, nullable=False, server_default="0"),
    Column("service_tier", String(16), nullable=False, server_default="standard"),
    # units of a fixed-price operation (images, videos) in the call
    Column("quantity", Integer, nullable=False, server_default="1"),
    Column("charge_basis", String(20), nullable=False),  # payg | fixed | included | overage | free
    Column("status", String(20), nullable=False),  # priced | unpriced
    Column("ledger_entry_id", BigInteger),
    Column("day", Date, nullable=False),  # calendar day in the configured time zone
    Column("created_at", UTCDateTime, nullable=False),
    Column("metadata", JSON),
    UniqueConstraint("account_id", "request_id"),
    Index("ix_usage_events_account_created", "account_id", "created_at"),
    Index("ix_usage_events_account_chat", "account_id", "chat_id"),
)

chats = Table(
    "chats",
    metadata,
    Column("account_id", ShortId, nullable=False),  # no FK: see migration 0009
    Column("chat_id", LongId, nullable=False),
    Column("user_id", ShortId, nullable=False),
    Column("title", String(200)),
    Column("requests", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("provider_cost", NanoUSD, nullable=False),
    Column("cost", NanoUSD, nullable=False),
    Column("first_at", UTCDateTime, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("account_id", "chat_id"),
    Index("ix_chats_account_last", "account_id", "last_at"),
)


def daily_sums() -> list[Column[Any]]:
    """The sums every daily rollup keeps (fresh Column objects for each table)."""
    return [
        Column("requests", BigInteger, nullable=False),
        Column("input_tokens", BigInteger, nullable=False),
        Column("output_tokens", BigInteger, nullable=False),
        Column("cached_tokens", BigInteger, nullable=False),
        Column("provider_cost", NanoUSD, nullable=False),
        Column("price", NanoUSD, nullable=False),
    ]


usage_daily = Table(
    "usage_daily",
    metadata,
    Column("day", Date, nullable=False),
    Column("account_id", ShortId, nullable=False),  # no FK: see migration 0009
    Column("user_id", ShortId, nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("operation", String(64), nullable=False),
    *daily_sums(),
    PrimaryKeyConstraint("account_id", "day", "user_id", "provider", "model", "operation"),
    Index("ix_usage_daily_day", "day"),
)

# Rollups shaped for the admin pages (migration 0008), written with `usage_daily` by
# every recording path. `platform_daily` has no account: one row per day, provider,
# model, operation and stripe; a charge adds to the stripe of its account
# (`metering.rollups.stripe_of`), so concurrent charges of different accounts rarely
# wait on the same row, and readers sum the stripes.
PLATFORM_STRIPES = 16
platform_daily = Table(
    "platform_daily",
    metadata,
    Column("day", Date, nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("operation", String(64), nullable=False),
    Column("stripe", Integer, nullable=False),
    *daily_sums(),
    PrimaryKeyConstraint("day", "provider", "model", "operation", "stripe"),
)

account_daily = Table(
    "account_daily",
    metadata,
    Column("account_id", ShortId, nullable=False),
    Column("day", Date, nullable=False),
    *daily_sums(),
    PrimaryKeyConstraint("account_id", "day"),
    Index("ix_account_daily_day", "day"),
)

model_prices = Table(
    "model_prices",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("provider", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("effective_from", UTCDateTime, nullable=False),
    Column("markup", DecimalText, nullable=False),
    # Optional overrides of the provider's rates, USD per million tokens.
    Column("input_mtok", DecimalText),
    Column("output_mtok", DecimalText),
    Column("cache_read_mtok", DecimalText),
    Column("actor", String(320)),
    Column("reason", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_model_prices_lookup", "provider", "model", "effective_from"),
)

operation_prices = Table(
    "operation_prices",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("operation", String(64), nullable=False),
    # the model this price is for; "" = every model of the operation without its own row
    Column("model", String(128), nullable=False, server_default=""),
    Column("effective_from", UTCDateTime, nullable=False),
    Column("price", NanoUSD, nullable=False),  # charged per unit (usage_events.quantity)
    Column("provider_cost", NanoUSD, nullable=False),  # what one call costs the operator
    Column("actor", String(320)),
    Column("reason", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_operation_prices_lookup", "operation", "effective_from"),
)


budgets = Table(
    "budgets",
    metadata,
    Column("account_id", ShortId, ForeignKey("accounts.id"), nullable=False),
    Column("user_id", ShortId, nullable=False),  # "" = the whole account
    Column("monthly_limit", NanoUSD),  # None = no budget
    Column("thresholds", String(64), nullable=False),  # percents, e.g. "50,80,100"
    Column("block_at_limit", Boolean, nullable=False),
    Column("updated_by", String(320)),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("account_id", "user_id"),
)

budget_alerts = Table(
    "budget_alerts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ShortId, ForeignKey("accounts.id"), nullable=False),
    Column("user_id", ShortId, nullable=False),
    Column("period", String(7), nullable=False),  # YYYY-MM in the configured time zone
    Column("threshold", Integer, nullable=False),  # percent
    Column("spend", NanoUSD, nullable=False),
    Column("budget", NanoUSD, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("notified_at", UTCDateTime),
    UniqueConstraint("account_id", "user_id", "period", "threshold"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ShortId),  # the account acted on, if any
    Column("actor", String(320), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(255)),
    Column("before", JSON),
    Column("after", JSON),
    Column("reason", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_audit_log_created", "created_at"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", ShortId, ForeignKey("accounts.id"), nullable=False),
    Column("name", String(200)),
    Column("prefix", String(16), nullable=False),  # shown to identify the key
    Column("key_hash", String(128), nullable=False, unique=True),  # sha256 hex
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    Column("created_by", String(320)),  # migration 0005_auth
    UniqueConstraint("account_id", "id"),
    Index("ix_api_keys_account_id", "account_id"),
)


# ------------------------------------------------------- authorize / holds / limits (issue 7)
# Columns added to existing tables by migration 0006_api_holds_limits.

for _column in (
    Column("operation", String(64)),
    Column("provider", String(64)),
    Column("model", String(128)),
    Column("chat_id", LongId),
    Column("input_tokens", BigInteger),  # estimated input tokens
    Column("max_output_tokens", BigInteger),
    Column("estimate_method", String(64)),  # e.g. "heuristic:chars/4", "given"
):
    holds.append_column(_column)
holds.append_constraint(UniqueConstraint("account_id", "request_id"))
Index("ix_holds_status_expires", holds.c.status, holds.c.expires_at)

# migration 0011: the model asked for, when authorize held a cheaper one instead
# (PRICING_OPTIMIZATION=enforce under budget pressure)
holds.append_column(Column("substituted_for", String(128)))

usage_events.append_column(Column("hold_id", String(64)))  # the hold this event settled
usage_events.append_column(Column("exceeded_hold", Boolean))  # charged more than was held

spending_limits = Table(
    "spending_limits",
    metadata,
    Column("account_id", ShortId, nullable=False),  # "" = operator default
    Column("user_id", ShortId, nullable=False),  # "" = the whole account
    Column("operation", String(64), nullable=False),  # "*" = every operation
    Column("max_input_tokens", BigInteger),
    Column("max_output_tokens", BigInteger),
    Column("max_total_tokens", BigInteger),
    Column("daily_cost_cap", NanoUSD),
    Column("monthly_cost_cap", NanoUSD),
    Column("updated_by", String(320)),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("account_id", "user_id", "operation"),
)


# ------------------------------------------------ admin (issue 6; migration 0007_admin)

# Operational counters per (name, local day): rejected API requests, webhook failures.
ops_counters = Table(
    "ops_counters",
    metadata,
    Column("name", String(64), nullable=False),
    Column("day", Date, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
    Column("last_detail", String(500)),
    PrimaryKeyConstraint("name", "day"),
)

# Only the entries that move cash (migration 0010), for the cash figures; and an
# account's entries other than usage (migration 0019), for Transactions. A query uses
# these expressions themselves, constants inline: SQLite's planner matches a partial
# index's condition only against literals, never against bound parameters.
CASH_KINDS = ("purchase", "refund", "reversal")
IS_CASH = ledger_entries.c.kind.in_([literal(k, literal_execute=True) for k in CASH_KINDS])
Index("ix_ledger_entries_cash", ledger_entries.c.created_at, postgresql_where=IS_CASH,
      sqlite_where=IS_CASH)  # fmt: skip
OTHER_THAN_USAGE = ledger_entries.c.kind != literal("usage", literal_execute=True)
Index(
    "ix_ledger_entries_account_other",
    ledger_entries.c.account_id,
    ledger_entries.c.created_at,
    postgresql_where=OTHER_THAN_USAGE,
    sqlite_where=OTHER_THAN_USAGE,
)

# Only the unpriced-usage queue is in this index, so listing the queue stays cheap.
Index(
    "ix_usage_events_unpriced",
    usage_events.c.account_id,
    usage_events.c.created_at,
    postgresql_where=usage_events.c.status == "unpriced",
    sqlite_where=usage_events.c.status == "unpriced",
)
