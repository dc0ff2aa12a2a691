"""models_in_use: every (provider, model) with usage, kept by a trigger on platform_daily

The price book lists every model ever used with its requests of the last 30 days; it
grouped all of `platform_daily` (180 days x models x operations x stripes) to find
them. This table has one row per model, added by an insert trigger on
`platform_daily` (a new row there is a new day, model, operation or stripe: rare),
so the page reads the last 30 days' rows plus this list.

Revision ID: 0018_models_in_use
Revises: 0017_account_monthly
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_models_in_use"
down_revision: str | Sequence[str] | None = "0017_account_monthly"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ADD = (
    "INSERT INTO models_in_use (provider, model) VALUES (NEW.provider, NEW.model) "
    "ON CONFLICT (provider, model) DO NOTHING"
)
PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION pricing_models_in_use() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    {_ADD};
    RETURN NULL;
END
$$;
"""


def upgrade() -> None:
    op.create_table(
        "models_in_use",
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("provider", "model", name=op.f("pk_models_in_use")),
    )
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:  # writers of platform_daily wait until the trigger exists: none is missed
        op.execute("LOCK TABLE platform_daily IN SHARE ROW EXCLUSIVE MODE")
    op.execute(
        "INSERT INTO models_in_use (provider, model) "
        "SELECT DISTINCT provider, model FROM platform_daily"
    )
    if pg:
        op.execute(PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER platform_daily_to_models AFTER INSERT ON platform_daily "
            "FOR EACH ROW EXECUTE FUNCTION pricing_models_in_use()"
        )
    else:
        op.execute(
            "CREATE TRIGGER platform_daily_to_models AFTER INSERT ON platform_daily "
            f"BEGIN {_ADD}; END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS platform_daily_to_models ON platform_daily")
        op.execute("DROP FUNCTION IF EXISTS pricing_models_in_use()")
    else:
        op.execute("DROP TRIGGER IF EXISTS platform_daily_to_models")
    op.drop_table("models_in_use")
