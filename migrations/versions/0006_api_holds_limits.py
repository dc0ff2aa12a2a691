"""authorize / hold / settle: hold details, usage events linked to holds, spending limits

- `holds` gains what was authorized (operation, provider, model, chat, estimated
  tokens, how the estimate was made) and a unique (account_id, request_id), so a
  retried authorization finds its hold instead of holding twice.
- `usage_events` gains `hold_id` and `exceeded_hold` (the actual charge was above
  the hold).
- `spending_limits`: per-operation token limits and daily / monthly cost caps, per
  account and user, and operator defaults (account_id "" ).

Revision ID: 0006_api_holds_limits
Revises: 0005_auth
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_api_holds_limits"
down_revision: str | Sequence[str] | None = "0005_auth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("operation", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("provider", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("model", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("chat_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("input_tokens", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("max_output_tokens", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("estimate_method", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(
            "uq_holds_account_id_request_id", ["account_id", "request_id"]
        )
        batch_op.create_index("ix_holds_status_expires", ["status", "expires_at"], unique=False)

    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hold_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("exceeded_hold", sa.Boolean(), nullable=True))

    op.create_table(
        "spending_limits",
        sa.Column("account_id", sa.String(length=64), nullable=False),  # "" = operator default
        sa.Column("user_id", sa.String(length=64), nullable=False),  # "" = whole account
        sa.Column("operation", sa.String(length=64), nullable=False),  # "*" = every operation
        sa.Column("max_input_tokens", sa.BigInteger(), nullable=True),
        sa.Column("max_output_tokens", sa.BigInteger(), nullable=True),
        sa.Column("max_total_tokens", sa.BigInteger(), nullable=True),
        sa.Column("daily_cost_cap", sa.BigInteger(), nullable=True),  # nano-USD
        sa.Column("monthly_cost_cap", sa.BigInteger(), nullable=True),  # nano-USD
        sa.Column("updated_by", sa.String(length=320), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "account_id", "user_id", "operation", name=op.f("pk_spending_limits")
        ),
    )


def downgrade() -> None:
    op.drop_table("spending_limits")
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.drop_column("exceeded_hold")
        batch_op.drop_column("hold_id")
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_index("ix_holds_status_expires")
        batch_op.drop_constraint("uq_holds_account_id_request_id", type_="unique")
        for name in (
            "estimate_method",
            "max_output_tokens",
            "input_tokens",
            "chat_id",
            "model",
            "provider",
            "operation",
        ):
            batch_op.drop_column(name)
