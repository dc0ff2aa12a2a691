"""charge function: the account's own balance lines are read inside the call, and
the usage entry is added to usage_entries_daily

`pricing_record_usage` got every balance line of the account from Python: the
defaults (settings), the lines its users chose (`notification_preferences`) and the
auto top-up threshold (`auto_topups`), the last two from per-account caches. With
thousands of active accounts those caches mostly missed, and each miss was a
transaction of its own: at 10M events a charge took eight round trips, not one.
Now Python passes the default lines only and the function checks the account's own
lines in its own statement. A usage entry it posts is added to `usage_entries_daily`
(migration 0019), as every other recording path adds it. Otherwise the function is
0013's.

Revision ID: 0020_charge_reads_lines
Revises: 0019_usage_entries_daily
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0020_charge_reads_lines"
down_revision: str | Sequence[str] | None = "0019_usage_entries_daily"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CROSSING = """        IF p_price > 0 AND EXISTS (
            SELECT 1 FROM unnest(p_lines) AS line
            WHERE balance_after + p_price >= line AND line > balance_after
        ) THEN"""
# the same test over the default lines, the users' low-balance lines and the
# enabled auto top-up threshold (`ledger.crossings`, `billing.autotopup`)
CROSSING_OWN_LINES = """        IF p_price > 0 AND EXISTS (
            SELECT 1 FROM (
                SELECT line FROM unnest(p_lines) AS line
                UNION ALL
                SELECT np.threshold FROM notification_preferences np
                  JOIN users u ON u.id = np.user_id
                 WHERE u.account_id = p_account AND np.kind = 'low_balance'
                   AND np.threshold IS NOT NULL
                UNION ALL
                SELECT threshold FROM auto_topups
                 WHERE account_id = p_account AND enabled
            ) AS lines (line)
            WHERE balance_after + p_price >= line AND line > balance_after
        ) THEN"""


ENTRY = """        RETURNING id INTO entry_id;"""
ENTRY_ADDED = """        RETURNING id INTO entry_id;
        INSERT INTO usage_entries_daily AS ued
            (account_id, day, entries, amount, last_entry_id, last_at)
        VALUES (p_account, p_day, 1, -p_price, entry_id, p_created_at)
        ON CONFLICT (account_id, day) DO UPDATE SET
            entries = ued.entries + 1,
            amount = ued.amount + excluded.amount,
            last_entry_id = greatest(ued.last_entry_id, excluded.last_entry_id),
            last_at = greatest(ued.last_at, excluded.last_at);"""


def _previous() -> ModuleType:
    path = Path(__file__).with_name("0013_charge_lines.py")
    spec = importlib.util.spec_from_file_location("charge_lines_0013", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record_usage() -> str:
    """This revision's `pricing_record_usage` (0013's with the changes above)."""
    previous = _previous().RECORD_USAGE
    assert CROSSING in previous and previous.count(ENTRY) == 1
    return previous.replace(CROSSING, CROSSING_OWN_LINES).replace(ENTRY, ENTRY_ADDED)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(record_usage())


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_previous().RECORD_USAGE)
