"""lean ingest: no per-row foreign-key checks and no redundant unique index on the
tables every charge writes

`usage_events`, `ledger_entries`, `chats` and `usage_daily` lose their foreign key to
`accounts`: every writer first updates or locks the account's wallet row (which has
the foreign key), so the account is known to exist, and `ledger verify` reports rows
of an account without a wallet. The `(account_id, id)` unique constraints of
`usage_events` and `ledger_entries` duplicate the primary key's uniqueness and cost an
index insert per row; Citus will make `(account_id, id)` the primary key itself
(docs/scaling.md).

Revision ID: 0009_lean_ingest
Revises: 0008_charge_function
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_lean_ingest"
down_revision: str | Sequence[str] | None = "0008_charge_function"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEYS = ("usage_events", "ledger_entries", "chats", "usage_daily")
ACCOUNT_ID_UNIQUE = ("usage_events", "ledger_entries")


def upgrade() -> None:
    for table in FOREIGN_KEYS:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_account_id_accounts", type_="foreignkey")
            if table in ACCOUNT_ID_UNIQUE:
                batch.drop_constraint(f"uq_{table}_account_id_id", type_="unique")


def downgrade() -> None:
    for table in FOREIGN_KEYS:
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(
                f"fk_{table}_account_id_accounts", "accounts", ["account_id"], ["id"]
            )
            if table in ACCOUNT_ID_UNIQUE:
                batch.create_unique_constraint(f"uq_{table}_account_id_id", ["account_id", "id"])
