"""Overview: balance and its state, spend, projection and runway, budget, recent entries."""

import streamlit as st

from pages import _charts, _format, _session
from pricing_core import analytics
from pricing_core.limits import budgets

viewer = _session.principal()
data = _session.cached(analytics.overview, viewer)
budget = _session.cached(budgets.budget_status, viewer)

st.title("Overview")
st.caption(f"{data.account_name} · times in {_format.zone()}")
if data.owes_credit:
    st.error(
        f"Your account owes {_format.amount(data.owed)} of credit (a purchase was refunded or "
        "disputed after it was used). New requests are refused until you buy credits.",
        icon=":material/account_balance:",
    )

balance, available, today, month = st.columns(4)
with balance:
    st.metric("Balance", _format.amount(data.balance), border=True)
    st.markdown(_format.BALANCE_BADGES[data.state])
available.metric(
    "Available",
    _format.amount(data.available),
    border=True,
    help="Balance minus the amounts reserved for requests still running.",
)
today.metric("Spent today", _format.amount(data.spend_today), border=True)
month.metric("Spent this month", _format.amount(data.spend_this_month), border=True)

last, projected, runway = st.columns([1, 1, 2])
last.metric("Spent last month", _format.amount(data.spend_last_month), border=True)
projected.metric(
    "Projected this month",
    _format.amount(data.forecast.projected_month_end, missing="n/a"),
    border=True,
    help="Month to date plus your pace of the last 14 days for the days left.",
)
with runway:
    st.info(data.forecast.message, icon=":material/speed:")
    _session.buy_credits_link()

if data.has_usage:
    trend, models = st.columns([3, 1])
    trend.plotly_chart(_charts.spend_trend_chart(data.last_30_days), key="spend_trend")
    with models:
        st.markdown("**Top models this month**")
        for model, spend in data.top_models:
            st.markdown(f"{model} · {_format.amount(spend)}")
        if not data.top_models:
            st.caption("No spend this month yet.")

if budget.budget.is_set:
    st.subheader("Monthly budget")
    st.progress(
        budget.meter_percent,
        text=f"{_format.amount(budget.spend)} of {_format.amount(budget.budget.monthly_limit)} "
        f"({budget.percent_used}%) used in {budget.period}",
    )
    st.page_link("pages/budget.py", label="Budget & alerts", icon=":material/savings:")

st.subheader("Recent activity")
if not data.has_usage:
    st.info(
        "No usage yet. When your app makes its first model call, its cost shows up here "
        "within seconds.",
        icon=":material/hourglass_empty:",
    )
st.dataframe(
    _format.entries_frame(data.recent_entries, data.entry_descriptions),
    hide_index=True,
    width="stretch",
    column_config=_format.ENTRY_COLUMNS,
)
