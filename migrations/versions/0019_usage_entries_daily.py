"""usage_entries_daily: an account's usage ledger entries per value day

The Transactions page grouped an account's usage entries per day by reading every
one of them joined to its event for the value day: 100,000 rows for the busiest
account's 90 days at 10M events, about a second. This table holds, per account and
value day (the event's local calendar day), the number of usage entries, their
signed sum, the last posted one (whose balance_after is the row's) and the latest
event time, so the page reads a row per day plus the account's other entries, which
`ix_ledger_entries_account_other` (partial: every kind but usage) lists without
walking the usage entries.

An event carries its usage entry (`ledger_entry_id`, amount -price) when it is
recorded with a price, or when the unpriced-usage queue prices it later. Every
recording path adds the entry to this table in its own transaction, as it adds the
event to the other rollups (`metering.rollups.add_usage_entries`; the charge
function from migration 0020 on); row triggers on `usage_events` cost SQLite's batch
ingest a quarter of its speed. Existing events are summed here, under a lock that
holds their writers off meanwhile.

The account index of `ledger_entries` ends with `id`, so an account's latest entries
(Overview, `ORDER BY created_at DESC, id DESC LIMIT 20`) are its last index entries;
PostgreSQL sorted every entry posted at the same instant (a batch import stamps one)
to find them. SQLite's indexes end with the rowid already.

Revision ID: 0019_usage_entries_daily
Revises: 0018_models_in_use
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_usage_entries_daily"
down_revision: str | Sequence[str] | None = "0018_models_in_use"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OTHER = sa.text("kind <> 'usage'")
_COLUMNS = "account_id, day, entries, amount, last_entry_id, last_at"


def upgrade() -> None:
    op.create_table(
        "usage_entries_daily",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("last_entry_id", sa.BigInteger(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "day", name=op.f("pk_usage_entries_daily")),
    )
    op.create_index(
        "ix_ledger_entries_account_other",
        "ledger_entries",
        ["account_id", "created_at"],
        postgresql_where=OTHER,
        sqlite_where=OTHER,
    )
    op.drop_index("ix_ledger_entries_account_created", table_name="ledger_entries")
    op.create_index(
        "ix_ledger_entries_account_created", "ledger_entries", ["account_id", "created_at", "id"]
    )
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        op.execute("LOCK TABLE usage_events IN SHARE ROW EXCLUSIVE MODE")
    op.execute(
        f"INSERT INTO usage_entries_daily ({_COLUMNS}) "
        "SELECT account_id, day, COUNT(*), -SUM(price), MAX(ledger_entry_id), MAX(created_at) "
        "FROM usage_events WHERE ledger_entry_id IS NOT NULL GROUP BY account_id, day"
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_account_other", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_account_created", table_name="ledger_entries")
    op.create_index(
        "ix_ledger_entries_account_created", "ledger_entries", ["account_id", "created_at"]
    )
    op.drop_table("usage_entries_daily")
