"""pricing truth: custom models, loaded catalogs, reprice corrections, provider bills;
usage events get their cache writes and service tier

Revision ID: 0014_pricing_truth
Revises: 0013_charge_lines
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ShortId = sa.String(length=64)
UTCDateTime = sa.DateTime(timezone=True)
DecimalText = sa.String(length=40)

revision: str = "0014_pricing_truth"
down_revision: str | Sequence[str] | None = "0013_charge_lines"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # server defaults: the charge function (0013) and batch COPY leave them out
    with op.batch_alter_table("usage_events") as batch:
        batch.add_column(
            sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("service_tier", sa.String(16), nullable=False, server_default="standard")
        )
    op.create_table(
        "custom_models",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("service_tier", sa.String(16), nullable=False),
        sa.Column("effective_from", UTCDateTime, nullable=False),
        sa.Column("input_mtok", DecimalText, nullable=False),
        sa.Column("output_mtok", DecimalText, nullable=False),
        sa.Column("cache_read_mtok", DecimalText),
        sa.Column("cache_write_mtok", DecimalText),
        sa.Column("tiers", sa.JSON),
        sa.Column("actor", sa.String(320)),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_models")),
    )
    op.create_index(
        "ix_custom_models_lookup", "custom_models", ["provider", "model", "effective_from"]
    )
    op.create_table(
        "catalog_snapshots",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("models", sa.Integer, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("actor", sa.String(320)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_snapshots")),
    )
    op.create_table(
        "reprices",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("changes", sa.JSON, nullable=False),
        sa.Column("since", UTCDateTime, nullable=False),
        sa.Column("until", UTCDateTime, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(320)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reprices")),
    )
    op.create_table(
        "price_corrections",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("event_id", BigId, nullable=False),
        sa.Column("account_id", ShortId, nullable=False),
        sa.Column("reprice_id", BigId, nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("ledger_entry_id", BigId, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_corrections")),
        sa.UniqueConstraint(
            "account_id",
            "ledger_entry_id",
            name=op.f("uq_price_corrections_account_id_ledger_entry_id"),
        ),
    )
    op.create_index("ix_price_corrections_event", "price_corrections", ["event_id"])
    op.create_table(
        "provider_bills",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_bills")),
        sa.UniqueConstraint(
            "provider", "day", "model", name=op.f("uq_provider_bills_provider_day_model")
        ),
    )


def downgrade() -> None:
    op.drop_table("provider_bills")
    op.drop_index("ix_price_corrections_event", table_name="price_corrections")
    op.drop_table("price_corrections")
    op.drop_table("reprices")
    op.drop_table("catalog_snapshots")
    op.drop_index("ix_custom_models_lookup", table_name="custom_models")
    op.drop_table("custom_models")
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_column("service_tier")
        batch.drop_column("cache_write_tokens")
