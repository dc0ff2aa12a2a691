"""plans (versioned, seeded), per-account plan fees, subscriptions, plan usage counters

Money columns are BIGINT nano-USD. Seeds: Starter ($5, 1,000 included messages,
$0.00015 overage, $50 cap), Professional ($15, 10,000, $0.00010, $200 cap),
Enterprise (fee set per account, unlimited messages, $0.00005, no cap).

Revision ID: 0004_plans
Revises: 0003_checkout
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004_plans"
down_revision: str | Sequence[str] | None = "0003_checkout"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

USD = 1_000_000_000  # nano-USD per USD
SEEDED_AT = datetime(2000, 1, 1, tzinfo=UTC)


def upgrade() -> None:
    plans = op.create_table(
        "plans",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("monthly_fee", sa.BigInteger(), nullable=True),
        sa.Column("included_messages", sa.BigInteger(), nullable=True),
        sa.Column("overage_rate", sa.BigInteger(), nullable=False),
        sa.Column("monthly_cap", sa.BigInteger(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", "version", name=op.f("pk_plans")),
    )
    op.create_table(
        "plan_account_fees",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("plan_code", sa.String(length=32), nullable=False),
        sa.Column("monthly_fee", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(length=320), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_plan_account_fees_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "plan_code", name=op.f("pk_plan_account_fees")),
    )
    op.create_table(
        "subscriptions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("plan_code", sa.String(length=32), nullable=False),
        sa.Column("plan_version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stripe_subscription_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_event_created", sa.BigInteger(), nullable=True),
        sa.Column("actor", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_subscriptions_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("account_id", "id", name=op.f("uq_subscriptions_account_id_id")),
    )
    op.create_index(
        "ix_subscriptions_account_started", "subscriptions", ["account_id", "started_at"]
    )
    op.create_index(
        "ix_subscriptions_stripe_subscription_id", "subscriptions", ["stripe_subscription_id"]
    )
    op.create_table(
        "plan_usage",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("plan_messages", sa.BigInteger(), nullable=False),
        sa.Column("overage", sa.BigInteger(), nullable=False),
        sa.Column("payg_value", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_plan_usage_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "month", name=op.f("pk_plan_usage")),
    )
    # SQLite keeps UTC timestamps naive (as the application's UTCDateTime does).
    at = SEEDED_AT.replace(tzinfo=None) if op.get_bind().dialect.name == "sqlite" else SEEDED_AT
    seed = dict(
        active=True, effective_from=at, created_by="migration 0004_plans", created_at=at, version=1
    )
    op.bulk_insert(
        plans,
        [
            seed
            | dict(
                code="starter",
                name="Starter",
                position=1,
                monthly_fee=5 * USD,
                included_messages=1_000,
                overage_rate=150_000,
                monthly_cap=50 * USD,
            ),
            seed
            | dict(
                code="professional",
                name="Professional",
                position=2,
                monthly_fee=15 * USD,
                included_messages=10_000,
                overage_rate=100_000,
                monthly_cap=200 * USD,
            ),
            seed
            | dict(
                code="enterprise",
                name="Enterprise",
                position=3,
                monthly_fee=None,
                included_messages=None,
                overage_rate=50_000,
                monthly_cap=None,
            ),
        ],
    )


def downgrade() -> None:
    op.drop_table("plan_usage")
    op.drop_index("ix_subscriptions_stripe_subscription_id", table_name="subscriptions")
    op.drop_index("ix_subscriptions_account_started", table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_table("plan_account_fees")
    op.drop_table("plans")
