"""hold substitution: the model a hold replaced under budget pressure

`PRICING_OPTIMIZATION=enforce` may hold a cheaper model than the one asked for; the
hold keeps the model asked for, so the later charge's explanation can name the
substitution.

Revision ID: 0011_hold_substitution
Revises: 0010_page_indexes
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_hold_substitution"
down_revision: str | Sequence[str] | None = "0010_page_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("holds", sa.Column("substituted_for", sa.String(128)))


def downgrade() -> None:
    with op.batch_alter_table("holds") as batch:
        batch.drop_column("substituted_for")
