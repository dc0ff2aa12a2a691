"""Read-only queries behind the end-user pages.

Every function takes the viewer (`domain.principal.Principal`) and reads only the viewer's account
(or another account named explicitly, which `principal.require_account` allows only to
admins), so a page bug cannot show someone else's data. Charts and totals read the
rollups (`usage_daily`, `chats`); only a single chat's requests and the CSV export of
a date range read `usage_events`, through its (account_id, chat_id) and
(account_id, created_at) indexes.

Amounts are Decimal USD (DataFrame columns of Decimal objects); dates are calendar
days and times are aware datetimes in the configured time zone.
"""

from pricing_core.analytics.account import (
    RECENT_ENTRIES,
    BalanceState,
    Overview,
    balance_state,
    describe_entry,
    overview,
)
from pricing_core.analytics.chats import (
    CHAT_COLUMNS,
    CHAT_PAGE_SIZE,
    REQUEST_COLUMNS,
    ChatDetail,
    chat_detail,
    count_chats,
    list_chats,
)
from pricing_core.analytics.common import day_bounds, local_time, nanos_str
from pricing_core.analytics.transactions import (
    ENTRIES_SHOWN,
    ENTRY_COLUMNS,
    ROW_COLUMNS,
    LedgerView,
    ledger_csv,
    ledger_span,
    ledger_view,
    usage_entries_of_day,
)
from pricing_core.analytics.usage import (
    DAILY_COLUMNS,
    EXPORT_COLUMNS,
    MODEL_TABLE_COLUMNS,
    Dimension,
    Granularity,
    Measure,
    UsageReport,
    filter_report,
    model_table,
    period_start,
    report_totals,
    usage_events_csv,
    usage_range,
    usage_report,
    usage_series,
    usage_share,
    value_labels,
)

__all__ = [
    "CHAT_COLUMNS", "CHAT_PAGE_SIZE", "DAILY_COLUMNS", "ENTRIES_SHOWN", "ENTRY_COLUMNS",
    "EXPORT_COLUMNS", "MODEL_TABLE_COLUMNS", "RECENT_ENTRIES", "REQUEST_COLUMNS", "ROW_COLUMNS",
    "BalanceState", "ChatDetail", "Dimension", "Granularity", "LedgerView", "Measure",
    "Overview", "UsageReport", "balance_state", "chat_detail", "day_bounds",
    "count_chats", "describe_entry", "filter_report", "ledger_csv", "ledger_span",
    "ledger_view", "list_chats", "local_time", "model_table", "nanos_str", "overview",
    "period_start", "report_totals", "usage_entries_of_day", "usage_events_csv",
    "usage_range", "usage_report", "usage_series", "usage_share", "value_labels",
]  # fmt: skip
