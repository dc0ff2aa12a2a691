"""The billing tables: credit packages, Stripe checkout sessions and events, plans,
account fees, subscriptions and plan usage (on `schema.metadata`)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from pricing_core.adapters.schema import BigId, ShortId, metadata
from pricing_core.adapters.types import NanoUSD, UTCDateTime

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
    Column("account_id", ShortId, ForeignKey("accounts.id"), nullable=False),
    Column("id", String(255), nullable=False),  # Stripe's Checkout Session id (cs_...)
    Column("package_id", String(64), nullable=False),
    Column("user_id", ShortId),
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
    Column("account_id", ShortId),
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
    Column("account_id", ShortId, ForeignKey("accounts.id"), nullable=False),
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
    Column("account_id", ShortId, ForeignKey("accounts.id"), nullable=False),
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
    Column("account_id", ShortId, ForeignKey("accounts.id"), nullable=False),
    Column("month", String(7), nullable=False),  # YYYY-MM
    Column("plan_messages", BigInteger, nullable=False),
    Column("overage", NanoUSD, nullable=False),
    Column("payg_value", NanoUSD, nullable=False),
    PrimaryKeyConstraint("account_id", "month"),
)
