"""usage_entries_daily: an account's usage ledger entries per value day, kept by
triggers on usage_events

The Transactions page grouped an account's usage entries per day by reading every
one of them joined to its event for the value day: 100,000 rows for the busiest
account's 90 days at 10M events, about a second. This table holds, per account and
value day (the event's local calendar day), the number of usage entries, their
signed sum, the last posted one (whose balance_after is the row's) and the latest
event time, so the page reads a row per day plus the account's other entries, which
`ix_ledger_entries_account_other` (partial: every kind but usage) lists without
walking the usage entries.

An event carries its usage entry (`ledger_entry_id`, amount -price) when it is
recorded with a price, or when the unpriced-usage queue prices it later; triggers on
`usage_events` add both cases. On PostgreSQL they are statement triggers over the
transition tables, so a COPY of a batch adds one grouped upsert, not one per row.
Existing events are summed here, under a lock that holds their writers off until the
triggers exist.

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
_GROUPED = (
    "SELECT account_id, day, COUNT(*), -SUM(price), MAX(ledger_entry_id), MAX(created_at) "
    "FROM {source} WHERE {where} GROUP BY account_id, day"
)


def _add(table: str, most: str) -> str:
    return (
        f"entries = {table}.entries + excluded.entries, "
        f"amount = {table}.amount + excluded.amount, "
        f"last_entry_id = {most}({table}.last_entry_id, excluded.last_entry_id), "
        f"last_at = {most}({table}.last_at, excluded.last_at)"
    )


# ORDER BY: concurrent batches upsert their rows in one order, so they cannot deadlock
_PG_UPSERT = (
    f"INSERT INTO usage_entries_daily AS u ({_COLUMNS}) {_GROUPED} ORDER BY account_id, day "
    f"ON CONFLICT (account_id, day) DO UPDATE SET {_add('u', 'greatest')}"
)
PG_FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION pricing_usage_entries_added() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    {_PG_UPSERT.format(source="added", where="ledger_entry_id IS NOT NULL")};
    RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION pricing_usage_entries_priced() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    {
    _PG_UPSERT.format(
        source="(SELECT added.* FROM added JOIN removed USING (id) "
        "WHERE removed.ledger_entry_id IS NULL) AS priced",
        where="ledger_entry_id IS NOT NULL",
    )
};
    RETURN NULL;
END
$$;
"""
PG_TRIGGERS = (
    "CREATE TRIGGER usage_entries_added AFTER INSERT ON usage_events "
    "REFERENCING NEW TABLE AS added "
    "FOR EACH STATEMENT EXECUTE FUNCTION pricing_usage_entries_added()",
    "CREATE TRIGGER usage_entries_priced AFTER UPDATE ON usage_events "
    "REFERENCING OLD TABLE AS removed NEW TABLE AS added "
    "FOR EACH STATEMENT EXECUTE FUNCTION pricing_usage_entries_priced()",
)


def _sqlite_trigger(name: str, event: str, when: str) -> str:
    # VALUES, not SELECT: after a SELECT, SQLite would need `WHERE true` to read the
    # ON CONFLICT clause as the upsert's; and a trigger's INSERT takes no alias
    return f"""
CREATE TRIGGER {name} AFTER {event} ON usage_events WHEN {when}
BEGIN
    INSERT INTO usage_entries_daily ({_COLUMNS})
    VALUES (NEW.account_id, NEW.day, 1, -NEW.price, NEW.ledger_entry_id, NEW.created_at)
    ON CONFLICT (account_id, day) DO UPDATE SET {_add("usage_entries_daily", "max")};
END
"""


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
        + _GROUPED.format(source="usage_events", where="ledger_entry_id IS NOT NULL")
    )
    if pg:
        op.execute(PG_FUNCTIONS)
        for trigger in PG_TRIGGERS:
            op.execute(trigger)
    else:
        op.execute(
            _sqlite_trigger("usage_entries_added", "INSERT", "NEW.ledger_entry_id IS NOT NULL")
        )
        op.execute(
            _sqlite_trigger(
                "usage_entries_priced",
                "UPDATE OF ledger_entry_id",
                "OLD.ledger_entry_id IS NULL AND NEW.ledger_entry_id IS NOT NULL",
            )
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS usage_entries_added ON usage_events")
        op.execute("DROP TRIGGER IF EXISTS usage_entries_priced ON usage_events")
        op.execute("DROP FUNCTION IF EXISTS pricing_usage_entries_added()")
        op.execute("DROP FUNCTION IF EXISTS pricing_usage_entries_priced()")
    else:
        op.execute("DROP TRIGGER IF EXISTS usage_entries_added")
        op.execute("DROP TRIGGER IF EXISTS usage_entries_priced")
    op.drop_index("ix_ledger_entries_account_other", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_account_created", table_name="ledger_entries")
    op.create_index(
        "ix_ledger_entries_account_created", "ledger_entries", ["account_id", "created_at"]
    )
    op.drop_table("usage_entries_daily")
