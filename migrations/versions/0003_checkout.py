"""checkout: credit packages (seeded), Stripe Checkout Sessions, Stripe webhook events

Migrations use plain column types (BIGINT nano-USD, TIMESTAMP, VARCHAR), never
the application's TypeDecorators, so old migrations keep working as the code moves.

Revision ID: 0003_checkout
Revises: 0002_budgets_audit_keys
Create Date: 2026-11-21 14:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003_checkout"
down_revision: str | Sequence[str] | None = "0002_budgets_audit_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NANOS_PER_USD = 1_000_000_000

# code, name, price in cents, credit USD, bonus USD (volume bonus), popular.
# Effective price per $1 of credit: 0.998, 0.8995, 0.8693, 0.7999.
DEFAULT_PACKAGES = [
    ("starter", "Starter", 499, 5, 0, False),
    ("popular", "Popular", 1799, 18, 2, True),
    ("pro", "Pro", 3999, 40, 6, False),
    ("enterprise", "Enterprise", 13999, 140, 35, False),
]


def upgrade() -> None:
    packages = op.create_table(
        "credit_packages",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("bonus", sa.BigInteger(), nullable=False),
        sa.Column("popular", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("sort_order", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_packages")),
        sa.UniqueConstraint("code", "version", name=op.f("uq_credit_packages_code_version")),
    )
    op.create_table(
        "checkout_sessions",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("package_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("bonus", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("payment_intent", sa.String(length=255), nullable=True),
        sa.Column("receipt_url", sa.Text(), nullable=True),
        sa.Column("refunded_cents", sa.BigInteger(), nullable=False),
        sa.Column("dispute_status", sa.String(length=20), nullable=True),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fulfilled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_checkout_sessions_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "id", name=op.f("pk_checkout_sessions")),
    )
    with op.batch_alter_table("checkout_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_checkout_sessions_id", ["id"], unique=False)
        batch_op.create_index(
            "ix_checkout_sessions_payment_intent", ["payment_intent"], unique=False
        )
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("stripe_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
    )
    with op.batch_alter_table("stripe_events", schema=None) as batch_op:
        batch_op.create_index("ix_stripe_events_status", ["status"], unique=False)

    seeded_at = datetime(2025, 1, 1, tzinfo=UTC)
    if op.get_bind().dialect.name == "sqlite":
        seeded_at = seeded_at.replace(tzinfo=None)  # stored as naive UTC text
    op.bulk_insert(
        packages,
        [
            {
                "id": f"{code}-v1",
                "code": code,
                "version": 1,
                "name": name,
                "price_cents": cents,
                "currency": "usd",
                "credits": credits * NANOS_PER_USD,
                "bonus": bonus * NANOS_PER_USD,
                "popular": popular,
                "active": True,
                "sort_order": (i + 1) * 10,
                "created_at": seeded_at,
            }
            for i, (code, name, cents, credits, bonus, popular) in enumerate(DEFAULT_PACKAGES)
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table("stripe_events", schema=None) as batch_op:
        batch_op.drop_index("ix_stripe_events_status")
    op.drop_table("stripe_events")
    with op.batch_alter_table("checkout_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_checkout_sessions_payment_intent")
        batch_op.drop_index("ix_checkout_sessions_id")
    op.drop_table("checkout_sessions")
    op.drop_table("credit_packages")
