"""Database schema (SQLAlchemy Core), column types, engine factory and migrations.

Money columns are BIGINT nano-USD behind one TypeDecorator (`NanoUSD`), so SQLite and
PostgreSQL store identical exact integers. Timestamps are UTC (`UTCDateTime`).
The schema itself is created by Alembic migrations in `migrations/`; this module's
`metadata` mirrors it for queries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.types import TypeDecorator

from pricing_core.config import PROJECT_ROOT, get_settings
from pricing_core.domain.money import nanos_to_usd, usd_to_nanos

T = TypeVar("T")


class NanoUSD(TypeDecorator[Decimal]):
    """Decimal USD in Python <-> BIGINT nano-USD in the database. Never a float."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, float | bool):
            raise TypeError(f"money must be Decimal, not {type(value).__name__}: {value!r}")
        return usd_to_nanos(Decimal(value))

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        return None if value is None else nanos_to_usd(int(value))


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both back ends (naive UTC text on SQLite)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise TypeError(f"timestamps must be timezone-aware datetimes: {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DecimalText(TypeDecorator[Decimal]):
    """Exact non-money decimals (markups, rates) stored as text."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError(f"decimals must not be floats: {value!r}")
        return str(Decimal(value))

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(value)


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
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(20), nullable=False, default="personal"),  # personal | team
    Column("created_at", UTCDateTime, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("email", String(320), unique=True),
    Column("name", String(200)),
    Column("role", String(20), nullable=False, default="member"),  # member | admin
    Column("created_at", UTCDateTime, nullable=False),
    # Sign-in (issue 8, migration 0009_auth): the OIDC identity; a row without a
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
    Column("account_id", String(64), ForeignKey("accounts.id"), primary_key=True),
    Column("balance", NanoUSD, nullable=False),
    Column("held", NanoUSD, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("amount", NanoUSD, nullable=False),
    Column("balance_after", NanoUSD, nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("reference", String(255)),
    Column("reason", Text),
    Column("actor", String(320)),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("account_id", "idempotency_key"),
    UniqueConstraint("account_id", "id"),
    Index("ix_ledger_entries_account_created", "account_id", "created_at"),
)

holds = Table(
    "holds",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("user_id", String(64)),
    Column("request_id", String(128)),
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
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("chat_id", String(128)),
    Column("operation", String(64), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("provider_cost", NanoUSD, nullable=False),
    Column("price", NanoUSD, nullable=False),
    Column("price_version", String(128), nullable=False),
    Column("charge_basis", String(20), nullable=False),  # payg | fixed | included | overage | free
    Column("status", String(20), nullable=False),  # priced | unpriced
    Column("ledger_entry_id", BigInteger),
    Column("day", Date, nullable=False),  # calendar day in the configured time zone
    Column("created_at", UTCDateTime, nullable=False),
    Column("metadata", JSON),
    UniqueConstraint("account_id", "request_id"),
    UniqueConstraint("account_id", "id"),
    Index("ix_usage_events_account_created", "account_id", "created_at"),
    Index("ix_usage_events_account_chat", "account_id", "chat_id"),
)

chats = Table(
    "chats",
    metadata,
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("chat_id", String(128), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("title", String(200)),
    Column("requests", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("provider_cost", NanoUSD, nullable=False),
    Column("cost", NanoUSD, nullable=False),
    Column("first_at", UTCDateTime, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("account_id", "chat_id"),
)

usage_daily = Table(
    "usage_daily",
    metadata,
    Column("day", Date, nullable=False),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("operation", String(64), nullable=False),
    Column("requests", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("provider_cost", NanoUSD, nullable=False),
    Column("price", NanoUSD, nullable=False),
    PrimaryKeyConstraint("account_id", "day", "user_id", "provider", "model", "operation"),
    Index("ix_usage_daily_day", "day"),
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
    Column("effective_from", UTCDateTime, nullable=False),
    Column("price", NanoUSD, nullable=False),  # charged per call
    Column("provider_cost", NanoUSD, nullable=False),  # what one call costs the operator
    Column("actor", String(320)),
    Column("reason", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_operation_prices_lookup", "operation", "effective_from"),
)


budgets = Table(
    "budgets",
    metadata,
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("user_id", String(64), nullable=False),  # "" = the whole account
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
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("user_id", String(64), nullable=False),
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
    Column("account_id", String(64)),  # the account acted on, if any
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
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("name", String(200)),
    Column("prefix", String(16), nullable=False),  # shown to identify the key
    Column("key_hash", String(128), nullable=False, unique=True),  # sha256 hex
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    Column("created_by", String(320)),  # migration 0009_auth
    UniqueConstraint("account_id", "id"),
    Index("ix_api_keys_account_id", "account_id"),
)


# ---------------------------------------------------------------- checkout (Stripe)
# Credit packages, Checkout Sessions and the Stripe webhook inbox (issue 4).

credit_packages = Table(
    "credit_packages",
    metadata,
    # One row per version of a package: a price used by past purchases is never
    # edited in place (admins create a new version and deactivate the old one).
    Column("id", String(64), primary_key=True),
    Column("code", String(64), nullable=False),  # stable name across versions
    Column("version", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("price_cents", BigInteger, nullable=False),  # what Stripe charges
    Column("currency", String(3), nullable=False),  # ISO 4217, lower case
    Column("credits", NanoUSD, nullable=False),  # USD of credit
    Column("bonus", NanoUSD, nullable=False),  # extra USD of credit (volume bonus)
    Column("popular", Boolean, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("sort_order", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("code", "version"),
)

checkout_sessions = Table(
    "checkout_sessions",
    metadata,
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("id", String(255), nullable=False),  # Stripe's Checkout Session id (cs_...)
    Column("package_id", String(64), nullable=False),
    Column("user_id", String(64)),
    # What the package cost when the session was created (the amounts we verify).
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("credits", NanoUSD, nullable=False),
    Column("bonus", NanoUSD, nullable=False),
    # open | processing | complete | expired | failed | mismatch
    Column("status", String(20), nullable=False),
    Column("payment_intent", String(255)),
    Column("receipt_url", Text),
    Column("refunded_cents", BigInteger, nullable=False),
    Column("dispute_status", String(20)),  # None | held | won | lost
    Column("simulated", Boolean, nullable=False),
    Column("error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("fulfilled_at", UTCDateTime),
    PrimaryKeyConstraint("account_id", "id"),
    Index("ix_checkout_sessions_id", "id"),
    Index("ix_checkout_sessions_payment_intent", "payment_intent"),
)

stripe_events = Table(
    "stripe_events",
    metadata,
    # The webhook endpoint's inbox: one row per Stripe event id. It grows with
    # purchases (Stripe's events), not with usage, and the account is only known
    # after processing, so it is keyed by the event id alone.
    Column("id", String(255), primary_key=True),
    Column("type", String(100), nullable=False),
    Column("account_id", String(64)),
    Column("status", String(20), nullable=False),  # received | processed | ignored | failed
    Column("outcome", Text),  # what processing did, for people
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("stripe_created_at", UTCDateTime),
    Column("received_at", UTCDateTime, nullable=False),
    Column("processed_at", UTCDateTime),
    Index("ix_stripe_events_status", "status"),
)


# ---------------------------------------------------------------- plans and subscriptions
# (issue 5; migration 0004_plans). A plan version (code, version) is immutable: a price
# change is a new version; subscribers keep the version they signed up for.

plans = Table(
    "plans",
    metadata,
    Column("code", String(32), nullable=False),  # lower case: payg is not a row
    Column("version", Integer, nullable=False),
    Column("name", String(100), nullable=False),
    Column("monthly_fee", NanoUSD),  # None = custom, set per account ("talk to us")
    Column("included_messages", BigInteger),  # None = unlimited
    Column("overage_rate", NanoUSD, nullable=False),  # per message beyond the allowance
    Column("monthly_cap", NanoUSD),  # None = no cap
    Column("position", Integer, nullable=False),  # display order
    Column("active", Boolean, nullable=False),  # offered to new subscribers
    Column("effective_from", UTCDateTime, nullable=False),
    Column("created_by", String(320)),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("code", "version"),
)

plan_account_fees = Table(
    "plan_account_fees",
    metadata,
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("plan_code", String(32), nullable=False),
    Column("monthly_fee", NanoUSD, nullable=False),
    Column("updated_by", String(320)),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("account_id", "plan_code"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("plan_code", String(32), nullable=False),
    Column("plan_version", Integer, nullable=False),
    Column("source", String(20), nullable=False),  # demo | stripe | admin
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),  # None = current
    Column("stripe_subscription_id", String(255)),
    Column("stripe_customer_id", String(255)),
    Column("stripe_event_created", BigInteger),  # Unix time of the last applied event
    Column("actor", String(320)),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("account_id", "id"),
    Index("ix_subscriptions_account_started", "account_id", "started_at"),
    Index("ix_subscriptions_stripe_subscription_id", "stripe_subscription_id"),
)

plan_usage = Table(
    "plan_usage",
    metadata,
    # Per account and calendar month (configured zone), the messages recorded while on a
    # plan: the allowance counter, the overage charged for them and their
    # pay-as-you-go value (so history can be replayed at pay-as-you-go prices).
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("month", String(7), nullable=False),  # YYYY-MM
    Column("plan_messages", BigInteger, nullable=False),
    Column("overage", NanoUSD, nullable=False),
    Column("payg_value", NanoUSD, nullable=False),
    PrimaryKeyConstraint("account_id", "month"),
)


# ------------------------------------------------------- authorize / holds / limits (issue 7)
# Columns added to existing tables by migration 0004_api_holds_limits.

for _column in (
    Column("operation", String(64)),
    Column("provider", String(64)),
    Column("model", String(128)),
    Column("chat_id", String(128)),
    Column("input_tokens", BigInteger),  # estimated input tokens
    Column("max_output_tokens", BigInteger),
    Column("estimate_method", String(64)),  # e.g. "heuristic:chars/4", "given"
):
    holds.append_column(_column)
holds.append_constraint(UniqueConstraint("account_id", "request_id"))
Index("ix_holds_status_expires", holds.c.status, holds.c.expires_at)

usage_events.append_column(Column("hold_id", String(64)))  # the hold this event settled
usage_events.append_column(Column("exceeded_hold", Boolean))  # charged more than was held

spending_limits = Table(
    "spending_limits",
    metadata,
    Column("account_id", String(64), nullable=False),  # "" = operator default
    Column("user_id", String(64), nullable=False),  # "" = the whole account
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


# ---------------------------------------------------------------- engine


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """Create an engine for `url` (default: settings' database URL).

    SQLite: the parent folder is created, WAL journal, a busy timeout, foreign keys,
    and write transactions opened with `BEGIN IMMEDIATE` (see `write_transaction`).
    """
    url = url or get_settings().database_url
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself, so we can choose IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("pricing_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


_RETRYABLE_PG = {"40001", "40P01"}  # serialization failure, deadlock


def _is_retryable(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code in _RETRYABLE_PG:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One write transaction: commits on success, rolls back on any error.

    SQLite takes the write lock up front (`BEGIN IMMEDIATE`) so two writers never
    deadlock upgrading a read lock.
    """
    with engine.connect() as conn:
        conn.execution_options(pricing_write=True)
        with conn.begin():
            yield conn


def run_write(engine: Engine, work: Callable[[Connection], T], *, attempts: int = 5) -> T:
    """Run `work(conn)` in a write transaction, retrying serialization failures and
    deadlocks (PostgreSQL) or a locked database (SQLite) with backoff.
    """
    for attempt in range(attempts):
        try:
            with write_transaction(engine) as conn:
                return work(conn)
        except DBAPIError as exc:
            if attempt + 1 < attempts and _is_retryable(exc):
                time.sleep(0.01 * 2**attempt)
                continue
            raise
    raise AssertionError("unreachable")


def dialect_insert(conn: Connection, table: Table) -> Any:
    """`INSERT` with `ON CONFLICT` support for the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return pg_insert(table)
    return sqlite_insert(table)


# ---------------------------------------------------------------- migrations

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


def alembic_config(engine_or_url: Engine | str) -> Any:
    """An Alembic Config pointing at `migrations/` and the given database."""

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    url = (
        engine_or_url
        if isinstance(engine_or_url, str)
        else engine_or_url.url.render_as_string(hide_password=False)
    )
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if not isinstance(engine_or_url, str):
        cfg.attributes["engine"] = engine_or_url
    return cfg


def upgrade(engine: Engine) -> None:
    """Apply every migration (all heads) to the engine's database."""

    command.upgrade(alembic_config(engine), "heads")


def ensure_schema(engine: Engine) -> bool:
    """Apply migrations if the database is empty or behind. Returns True if it ran them."""

    script = ScriptDirectory.from_config(alembic_config(engine))
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    if current == set(script.get_heads()):
        return False
    upgrade(engine)
    return True


def table_names(engine: Engine) -> list[str]:
    return inspect(engine).get_table_names()


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def open_database(url: str | None = None) -> Engine:
    """The shared engine for `url` (default: settings), migrated to the latest schema.

    The app and the CLI call this, so an empty database is set up automatically.
    """
    url = url or get_settings().database_url
    engine = _engines.get(url)
    if engine is None:
        with _engines_lock:  # concurrent first requests (webhooks) share one engine
            engine = _engines.get(url)
            if engine is None:
                engine = make_engine(url)
                ensure_schema(engine)
                _engines[url] = engine
    return engine


# ------------------------------------------------ admin (issue 6; migration 0005_admin)

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

# Only the unpriced-usage queue is in this index, so listing the queue stays cheap.
Index(
    "ix_usage_events_unpriced",
    usage_events.c.account_id,
    usage_events.c.created_at,
    postgresql_where=usage_events.c.status == "unpriced",
    sqlite_where=usage_events.c.status == "unpriced",
)
