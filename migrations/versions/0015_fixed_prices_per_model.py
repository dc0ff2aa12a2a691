"""fixed prices per (operation, model) and a quantity per usage event

Revision ID: 0015_fixed_prices_per_model
Revises: 0014_pricing_truth
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_fixed_prices_per_model"
down_revision: str | Sequence[str] | None = "0014_pricing_truth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # server defaults: the charge function (0013) and batch COPY leave quantity out,
    # and existing fixed prices stay operation-wide ("" = every model)
    with op.batch_alter_table("usage_events") as batch:
        batch.add_column(sa.Column("quantity", sa.Integer(), nullable=False, server_default="1"))
    with op.batch_alter_table("operation_prices") as batch:
        batch.add_column(sa.Column("model", sa.String(128), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("operation_prices") as batch:
        batch.drop_column("model")
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_column("quantity")
