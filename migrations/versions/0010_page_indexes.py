"""page indexes: the latest chats of an account, the cash entries of a period, and
a collation that orders numbers inside names as numbers

`ix_chats_account_last` lets the Chats page read an account's latest chats without
sorting all of them. `ix_ledger_entries_cash` holds only the entries that move cash
(purchases, refunds, reversals), so the Revenue page's cash figures no longer walk
the usage entries, which are nearly all of the ledger. The `numeric_order` collation
(ICU, PostgreSQL; SQLite gets a function of the same name on every connection, see
`adapters.storage`) lists "trace-user-2" before "trace-user-10".

Revision ID: 0010_page_indexes
Revises: 0009_lean_ingest
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_page_indexes"
down_revision: str | Sequence[str] | None = "0009_lean_ingest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CASH = sa.text("kind IN ('purchase', 'refund', 'reversal')")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE COLLATION IF NOT EXISTS numeric_order "
            "(provider = icu, locale = 'und-u-kn-true')"
        )
    op.create_index("ix_chats_account_last", "chats", ["account_id", "last_at"])
    op.create_index(
        "ix_ledger_entries_cash",
        "ledger_entries",
        ["created_at"],
        postgresql_where=CASH,
        sqlite_where=CASH,
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_cash", table_name="ledger_entries")
    op.drop_index("ix_chats_account_last", table_name="chats")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP COLLATION IF EXISTS numeric_order")
