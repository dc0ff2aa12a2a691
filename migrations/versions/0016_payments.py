"""payments: Stripe customers, auto top-up, top-ups, Stripe invoices, billing records

Revision ID: 0016_payments
Revises: 0015_fixed_prices_per_model
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ShortId = sa.String(length=64)
UTCDateTime = sa.DateTime(timezone=True)
Nano = sa.BigInteger  # nano-USD

revision: str = "0016_payments"
down_revision: str | Sequence[str] | None = "0015_fixed_prices_per_model"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IN_FLIGHT = "status IN ('pending', 'processing')"


def _account_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["account_id"], ["accounts.id"], name=op.f(f"fk_{table}_account_id_accounts")
    )


def upgrade() -> None:
    op.create_table(
        "stripe_customers",
        sa.Column("account_id", ShortId, nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        _account_fk("stripe_customers"),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_stripe_customers")),
        sa.UniqueConstraint("customer_id", name=op.f("uq_stripe_customers_customer_id")),
    )
    op.create_table(
        "auto_topups",
        sa.Column("account_id", ShortId, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("threshold", Nano, nullable=False),
        sa.Column("package_id", sa.String(64)),
        sa.Column("amount_cents", sa.BigInteger),
        sa.Column("monthly_max_cents", sa.BigInteger, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("disabled_reason", sa.Text),
        sa.Column("updated_by", sa.String(320)),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        _account_fk("auto_topups"),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_auto_topups")),
    )
    op.create_table(
        "topups",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("account_id", ShortId, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("package_id", sa.String(64)),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("credits", Nano, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("payment_intent", sa.String(255)),
        sa.Column("last_error", sa.Text),
        sa.Column("balance_at_request", Nano, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("credited_at", UTCDateTime),
        _account_fk("topups"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topups")),
    )
    op.create_index(
        "uq_topups_in_flight",
        "topups",
        ["account_id"],
        unique=True,
        postgresql_where=sa.text(IN_FLIGHT),
        sqlite_where=sa.text(IN_FLIGHT),
    )
    op.create_index("ix_topups_due", "topups", ["status", "next_attempt_at"])
    op.create_index("ix_topups_payment_intent", "topups", ["payment_intent"])
    op.create_table(
        "topup_attempts",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("account_id", ShortId, nullable=False),
        sa.Column("topup_id", sa.BigInteger, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("payment_intent", sa.String(255)),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topup_attempts")),
    )
    op.create_index("ix_topup_attempts_created", "topup_attempts", ["created_at"])
    op.create_index("ix_topup_attempts_account", "topup_attempts", ["account_id", "created_at"])
    op.create_table(
        "stripe_invoices",
        sa.Column("account_id", ShortId, nullable=False),
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("number", sa.String(100)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("amount_due_cents", sa.BigInteger, nullable=False),
        sa.Column("amount_paid_cents", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("hosted_invoice_url", sa.Text),
        sa.Column("invoice_pdf", sa.Text),
        sa.Column("stripe_created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        _account_fk("stripe_invoices"),
        sa.PrimaryKeyConstraint("account_id", "id", name=op.f("pk_stripe_invoices")),
    )
    op.create_index("ix_stripe_invoices_id", "stripe_invoices", ["id"])
    op.create_table(
        "billing_records",
        sa.Column("account_id", ShortId, nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("plan_code", sa.String(32), nullable=False),
        sa.Column("plan_version", sa.Integer),
        sa.Column("messages", sa.BigInteger, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("provider_cost", Nano, nullable=False),
        sa.Column("plan_fee", Nano, nullable=False),
        sa.Column("overage", Nano, nullable=False),
        sa.Column("monthly_cap", Nano),
        sa.Column("cap_applied", sa.Boolean, nullable=False),
        sa.Column("payg_usage", Nano, nullable=False),
        sa.Column("credits_bought", Nano, nullable=False),
        sa.Column("credits_granted", Nano, nullable=False),
        sa.Column("refunds", Nano, nullable=False),
        sa.Column("adjustments", Nano, nullable=False),
        sa.Column("opening_balance", Nano, nullable=False),
        sa.Column("closing_balance", Nano, nullable=False),
        sa.Column("total", Nano, nullable=False),
        sa.Column("paid", sa.Boolean, nullable=False),
        sa.Column("generated_at", UTCDateTime, nullable=False),
        _account_fk("billing_records"),
        sa.PrimaryKeyConstraint("account_id", "period", name=op.f("pk_billing_records")),
    )
    op.create_index("ix_billing_records_period", "billing_records", ["period"])


def downgrade() -> None:
    for table in (
        "billing_records",
        "stripe_invoices",
        "topup_attempts",
        "topups",
        "auto_topups",
        "stripe_customers",
    ):
        op.drop_table(table)
