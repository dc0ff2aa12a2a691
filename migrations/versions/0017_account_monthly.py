"""account_monthly: account x calendar month, kept from account_daily by triggers

The admin rankings over a date range (top accounts, revenue by plan) summed every
account-day of the range: 300,000 rows for 30 days of 10,000 accounts. With month
totals a range is read as whole months plus or minus its edge days
(`domain.periods.month_pieces`), a few rows per account.

The rollup is kept by row triggers on `account_daily`, on both back ends, so every
path that writes `account_daily` (the PL/pgSQL charge function, the batch ingest,
the general path) keeps it in the same transaction without knowing of it; a row
inserted adds its sums, an update adds the difference. Existing rows are summed here,
under a lock that holds writers of `account_daily` off until the triggers exist.

Revision ID: 0017_account_monthly
Revises: 0016_payments
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_account_monthly"
down_revision: str | Sequence[str] | None = "0016_payments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUMS = ("requests", "input_tokens", "output_tokens", "cached_tokens", "provider_cost", "price")
_COLUMNS = ", ".join(SUMS)


def _add(table: str) -> str:
    return ", ".join(f"{s} = {table}.{s} + excluded.{s}" for s in SUMS)


PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION pricing_account_monthly() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO account_monthly AS m (account_id, month, {_COLUMNS})
    VALUES (
        NEW.account_id, date_trunc('month', NEW.day)::date,
        {", ".join(f"NEW.{s} - CASE WHEN TG_OP = 'UPDATE' THEN OLD.{s} ELSE 0 END" for s in SUMS)}
    )
    ON CONFLICT (account_id, month) DO UPDATE SET {_add("m")};
    RETURN NULL;
END
$$;
"""
PG_TRIGGER = (
    "CREATE TRIGGER account_daily_to_monthly AFTER INSERT OR UPDATE ON account_daily "
    "FOR EACH ROW EXECUTE FUNCTION pricing_account_monthly()"
)


def _sqlite_trigger(event: str, delta: str) -> str:
    values = ", ".join(f"NEW.{s}{delta.format(s=s)}" for s in SUMS)
    # VALUES, not SELECT: after a SELECT, SQLite would need `WHERE true` to read the
    # ON CONFLICT clause as the upsert's; and a trigger's INSERT takes no alias
    return f"""
CREATE TRIGGER account_daily_to_monthly_{event.lower()} AFTER {event} ON account_daily
BEGIN
    INSERT INTO account_monthly (account_id, month, {_COLUMNS})
    VALUES (NEW.account_id, date(NEW.day, 'start of month'), {values})
    ON CONFLICT (account_id, month) DO UPDATE SET {_add("account_monthly")};
END
"""


def upgrade() -> None:
    op.create_table(
        "account_monthly",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        *(sa.Column(s, sa.BigInteger(), nullable=False) for s in SUMS),
        sa.PrimaryKeyConstraint("account_id", "month", name=op.f("pk_account_monthly")),
    )
    op.create_index("ix_account_monthly_month", "account_monthly", ["month"])
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        op.execute("LOCK TABLE account_daily IN SHARE ROW EXCLUSIVE MODE")
    month = "date_trunc('month', day)::date" if pg else "date(day, 'start of month')"
    op.execute(
        f"INSERT INTO account_monthly (account_id, month, {_COLUMNS}) "
        f"SELECT account_id, {month}, {', '.join(f'SUM({s})' for s in SUMS)} "
        f"FROM account_daily GROUP BY account_id, {month}"
    )
    if pg:
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        op.execute(_sqlite_trigger("INSERT", ""))
        op.execute(_sqlite_trigger("UPDATE", " - OLD.{s}"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS account_daily_to_monthly ON account_daily")
        op.execute("DROP FUNCTION IF EXISTS pricing_account_monthly()")
    else:
        op.execute("DROP TRIGGER IF EXISTS account_daily_to_monthly_insert")
        op.execute("DROP TRIGGER IF EXISTS account_daily_to_monthly_update")
    op.drop_index("ix_account_monthly_month", table_name="account_monthly")
    op.drop_table("account_monthly")
