"""Transactions: the ledger with kind and date filters, usage grouped per day
(expandable), the running balance, CSV download."""

import streamlit as st

from pages import _ui
from pricing_core import analytics
from pricing_core.ledger.wallets import EntryKind

viewer = _ui.principal()
st.title("Transactions")
st.caption(f"Every change to your balance. Usage is grouped per day; times in {_ui.zone()}.")

left, right = st.columns([2, 1])
kinds = left.multiselect("Types", list(EntryKind), placeholder="All types", key="tx_kinds")
span = _ui.cached(analytics.ledger_span, viewer)
if span is None:
    st.info("No transactions yet.", icon=":material/receipt_long:")
    st.stop()
with right:
    start, end = _ui.date_range("Dates", span, key="tx_dates", days=3650)
view = _ui.cached(analytics.ledger_view, viewer, kinds=kinds, start=start, end=end)
if view.rows.empty:
    st.info("No transactions match these filters.")
    st.stop()

st.dataframe(
    _ui.ledger_rows_frame(view.rows),
    hide_index=True,
    width="stretch",
    column_config=_ui.LEDGER_COLUMNS,
)
st.download_button(
    "Download these transactions (CSV)",
    data=lambda: analytics.ledger_csv(view),
    file_name=f"transactions_{start}_{end}.csv",
    mime="text/csv",
    icon=":material/download:",
)

usage_groups = view.rows[view.rows["kind"] == EntryKind.USAGE]
if not usage_groups.empty:
    st.subheader("Usage of one day")
    group = st.selectbox(
        "Expand a usage row",
        usage_groups["group"].tolist(),
        index=None,
        format_func=_ui.group_label(usage_groups),
        placeholder="Choose a day",
    )
    if group is not None:
        st.dataframe(
            _ui.group_entries_frame(view.entries_of(group)),
            hide_index=True,
            width="stretch",
            column_config=_ui.LEDGER_COLUMNS,
        )
