"""notifications: the outbox, preferences and scheduled job runs

Revision ID: 0012_notifications
Revises: 0011_hold_substitution
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ShortId = sa.String(length=64)
UTCDateTime = sa.DateTime(timezone=True)

revision: str = "0012_notifications"
down_revision: str | Sequence[str] | None = "0011_hold_substitution"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("account_id", ShortId),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("last_error", sa.String(500)),
        sa.Column("recipients", sa.Text),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("sent_at", UTCDateTime),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("key", name=op.f("uq_notifications_key")),
    )
    op.create_index("ix_notifications_due", "notifications", ["status", "next_attempt_at"])
    op.create_index("ix_notifications_created", "notifications", ["created_at"])
    op.create_table(
        "notification_preferences",
        sa.Column("user_id", ShortId, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("threshold", sa.BigInteger),  # nano-USD
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "kind", name=op.f("pk_notification_preferences")),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("job", sa.String(40), nullable=False),
        sa.Column("slot", sa.String(40), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime),
        sa.Column("outcome", sa.String(16)),
        sa.Column("detail", sa.String(1000)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_runs")),
    )
    op.create_index("uq_job_runs_job_slot", "job_runs", ["job", "slot"], unique=True)
    op.create_index("ix_job_runs_job_started", "job_runs", ["job", "started_at"])


def downgrade() -> None:
    op.drop_table("job_runs")
    op.drop_table("notification_preferences")
    op.drop_table("notifications")
