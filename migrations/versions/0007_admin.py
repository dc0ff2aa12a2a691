"""admin: operational counters (rejected API requests, webhook failures) and a
partial index holding only the unpriced-usage queue

Revision ID: 0007_admin
Revises: 0006_api_holds_limits
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_admin"
down_revision: str | Sequence[str] | None = "0006_api_holds_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNPRICED = sa.text("status = 'unpriced'")


def upgrade() -> None:
    op.create_table(
        "ops_counters",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_detail", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("name", "day", name=op.f("pk_ops_counters")),
    )
    op.create_index(
        "ix_usage_events_unpriced",
        "usage_events",
        ["account_id", "created_at"],
        postgresql_where=UNPRICED,
        sqlite_where=UNPRICED,
    )


def downgrade() -> None:
    op.drop_index("ix_usage_events_unpriced", table_name="usage_events")
    op.drop_table("ops_counters")
