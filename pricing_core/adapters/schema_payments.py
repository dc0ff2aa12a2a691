"""The payment tables (on `schema.metadata`, migration 0016): Stripe customers, auto
top-up settings, top-ups and their attempts, Stripe invoices, and the monthly billing
records."""

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
    text,
)

from pricing_core.adapters.schema import BigId, ShortId, metadata
from pricing_core.adapters.types import NanoUSD, UTCDateTime

# The account's Stripe customer: where saved cards live and invoices are addressed.
stripe_customers = Table(
    "stripe_customers",
    metadata,
    Column("account_id", ShortId, ForeignKey("accounts.id"), primary_key=True),
    Column("customer_id", String(255), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# One row per account that set auto top-up up. `failures` counts declines in a row;
# the third turns `enabled` off with `disabled_reason` (the page's banner).
auto_topups = Table(
    "auto_topups",
    metadata,
    Column("account_id", ShortId, ForeignKey("accounts.id"), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("threshold", NanoUSD, nullable=False),  # balance line that starts a top-up
    Column("package_id", String(64)),  # a credit pack to buy, or
    Column("amount_cents", BigInteger),  # an amount (USD cents, credited 1:1)
    Column("monthly_max_cents", BigInteger, nullable=False),  # charged per month at most
    Column("failures", Integer, nullable=False),
    Column("disabled_reason", Text),
    Column("updated_by", String(320)),
    Column("updated_at", UTCDateTime, nullable=False),
)

TOPUP_IN_FLIGHT = "status IN ('pending', 'processing')"

# The top-up outbox: written in the charge's transaction, worked by `billing.topups`.
# status: pending (due at next_attempt_at) | processing (a PaymentIntent is out) |
# succeeded (credited once) | failed (given up) | canceled (top-up was turned off).
topups = Table(
    "topups",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ShortId, ForeignKey("accounts.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("package_id", String(64)),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("credits", NanoUSD, nullable=False),  # credited on success
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("payment_intent", String(255)),  # the current attempt's
    Column("last_error", Text),
    Column("balance_at_request", NanoUSD, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("credited_at", UTCDateTime),
    # at most one top-up in flight per account, whatever races
    Index(
        "uq_topups_in_flight",
        "account_id",
        unique=True,
        postgresql_where=text(TOPUP_IN_FLIGHT),
        sqlite_where=text(TOPUP_IN_FLIGHT),
    ),
    Index("ix_topups_due", "status", "next_attempt_at"),
    Index("ix_topups_payment_intent", "payment_intent"),
)

# Every off-session payment attempt and its outcome (the admins' payment metrics).
topup_attempts = Table(
    "topup_attempts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ShortId, nullable=False),
    Column("topup_id", BigInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("payment_intent", String(255)),
    # succeeded | declined | requires_action | error
    Column("outcome", String(20), nullable=False),
    Column("error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_topup_attempts_created", "created_at"),
    Index("ix_topup_attempts_account", "account_id", "created_at"),
)

# Stripe's own invoices (credit packs bought with `invoice_creation`, plan
# subscriptions), as Stripe last told us; the hosted page and PDF are Stripe's.
stripe_invoices = Table(
    "stripe_invoices",
    metadata,
    Column("account_id", ShortId, ForeignKey("accounts.id"), nullable=False),
    Column("id", String(255), nullable=False),  # in_...
    Column("number", String(100)),
    Column("status", String(20), nullable=False),  # draft | open | paid | void | uncollectible
    Column("amount_due_cents", BigInteger, nullable=False),
    Column("amount_paid_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("description", Text),
    Column("hosted_invoice_url", Text),
    Column("invoice_pdf", Text),
    Column("stripe_created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("account_id", "id"),
    Index("ix_stripe_invoices_id", "id"),
)

# One row per account and calendar month (configured zone), written once by the
# billing-records job from the ledger and the rollups. Money: nano-USD.
billing_records = Table(
    "billing_records",
    metadata,
    Column("account_id", ShortId, ForeignKey("accounts.id"), nullable=False),
    Column("period", String(7), nullable=False),  # YYYY-MM
    Column("plan_code", String(32), nullable=False),  # "payg" without a plan
    Column("plan_version", Integer),
    Column("messages", BigInteger, nullable=False),  # usage events in the period
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("provider_cost", NanoUSD, nullable=False),
    Column("plan_fee", NanoUSD, nullable=False),
    Column("overage", NanoUSD, nullable=False),
    Column("monthly_cap", NanoUSD),
    Column("cap_applied", Boolean, nullable=False),
    Column("payg_usage", NanoUSD, nullable=False),  # usage charged at pay-as-you-go
    Column("credits_bought", NanoUSD, nullable=False),
    Column("credits_granted", NanoUSD, nullable=False),  # grants and bonuses
    Column("refunds", NanoUSD, nullable=False),  # negative: credit taken back
    Column("adjustments", NanoUSD, nullable=False),  # adjustments, reversals, expiry
    Column("opening_balance", NanoUSD, nullable=False),
    Column("closing_balance", NanoUSD, nullable=False),
    Column("total", NanoUSD, nullable=False),  # plan fee + overage + payg usage
    Column("paid", Boolean, nullable=False),
    Column("generated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("account_id", "period"),
    Index("ix_billing_records_period", "period"),
)
