"""Transactions: the ledger with kind and date filters, usage grouped per day
(expandable), the running balance, CSV download."""

from collections.abc import Callable
from datetime import date

import pandas as pd
import streamlit as st

from pages import _format, _session
from pricing_core import analytics
from pricing_core.ledger.wallets import EntryKind


def day_label(days: pd.DataFrame) -> Callable[[date], str]:
    """A usage day's label in the picker: its day, description and amount."""
    labels = {
        day: f"{day}: {description} ({_format.amount(amount)})"
        for day, description, amount in zip(
            days["day"], days["description"], days["amount"], strict=True
        )
    }
    return lambda day: labels.get(day, str(day))


viewer = _session.principal()
st.title("Transactions")
st.caption(
    "Every change to your balance, by value date: when the usage happened (imported "
    f"usage keeps its own time; *Posted* is when it reached the ledger). Usage is grouped "
    f"per day; times in {_format.zone()}."
)

left, right = st.columns([2, 1])
kinds = left.multiselect("Types", list(EntryKind), placeholder="All types", key="tx_kinds")
span = _session.cached(analytics.ledger_span, viewer)
if span is None:
    st.info("No transactions yet.", icon=":material/receipt_long:")
    st.stop()
with right:
    start, end = _session.date_range(
        "tx_dates", first=span[0], last=span[1], days=3650, label="Dates"
    )
view = _session.cached(analytics.ledger_view, viewer, kinds=kinds, start=start, end=end)
if view.rows.empty:
    st.info("No transactions match these filters.")
    st.stop()

st.dataframe(
    _format.ledger_rows_frame(view.rows),
    hide_index=True,
    width="stretch",
    column_config=_format.ENTRY_COLUMNS,
)
st.download_button(
    "Download these transactions (CSV)",
    data=lambda: analytics.ledger_csv(_session.engine(), viewer, kinds=kinds, start=start, end=end),
    file_name=f"transactions_{start}_{end}.csv",
    mime="text/csv",
    icon=":material/download:",
)

usage_days = view.rows[view.rows["kind"] == EntryKind.USAGE]
if not usage_days.empty:
    st.subheader("Usage of one day")
    day = st.selectbox(
        "Expand a usage row",
        usage_days["day"].tolist(),
        index=None,
        format_func=day_label(usage_days),
        placeholder="Choose a day",
    )
    if day is not None:
        count = int(usage_days.loc[usage_days["day"] == day, "entries"].iloc[0])
        if count > analytics.ENTRIES_SHOWN:
            st.caption(f"The newest {analytics.ENTRIES_SHOWN} of this day's {count:,} entries.")
        st.download_button(
            "Download this day's usage entries (CSV)",
            data=lambda: analytics.ledger_csv(
                _session.engine(), viewer, kinds=[EntryKind.USAGE], start=day, end=day
            ),
            file_name=f"usage_{day}.csv",
            mime="text/csv",
            icon=":material/download:",
        )
        st.dataframe(
            _format.ledger_rows_frame(
                _session.cached(analytics.usage_entries_of_day, viewer, day=day),
                description=lambda rows: [f"request {r}" if r else "" for r in rows["reference"]],
            ),
            hide_index=True,
            width="stretch",
            column_config=_format.ENTRY_COLUMNS,
        )
