"""Budget & alerts: a monthly budget, alert thresholds, block at 100 %."""

import streamlit as st

from pages import _format, _session
from pricing_core.domain.errors import PricingError
from pricing_core.limits import budgets

viewer = _session.principal()
status = _session.cached(budgets.budget_status, viewer)
current = status.budget

st.title("Budget & alerts")
st.caption(f"Months follow the {_format.zone()} calendar.")
if st.session_state.pop("budget_saved", False):
    st.success("Budget saved.", icon=":material/check:")

spend, limit, left = st.columns(3)
spend.metric(f"Spent in {status.period}", _format.amount(status.spend), border=True)
limit.metric(
    "Monthly budget",
    "none" if not current.is_set else _format.amount(current.monthly_limit),
    border=True,
)
left.metric(
    "Left this month",
    "n/a" if status.remaining is None else _format.amount(status.remaining),
    border=True,
)
if current.is_default:
    st.caption("This is the default budget of the service. Set your own below.")
if current.is_set:
    st.progress(status.meter_percent, text=f"{status.percent_used}% of the budget used")
    if status.crossed:
        st.caption("Alerts reached this month: " + ", ".join(f"{t}%" for t in status.crossed))
else:
    st.info("No budget set. Set one below to get alerts before you overspend.")

with st.form("budget_form"):
    st.subheader("Settings")
    amount = st.text_input(
        "Monthly budget (USD)",
        value="" if current.monthly_limit is None else f"{current.monthly_limit:.2f}",
        placeholder="e.g. 25.00 (leave empty for no budget)",
    )
    thresholds = st.text_input(
        "Alert thresholds (% of the budget)",
        value=", ".join(str(t) for t in current.thresholds),
        help="Whole percents between 1 and 100, separated by commas.",
    )
    block = st.checkbox(
        "Block new requests when the budget is used up (100 %)", value=current.block_at_limit
    )
    submitted = st.form_submit_button("Save", type="primary")

if submitted:
    try:
        budgets.save_budget(
            _session.engine(),
            viewer,
            monthly_limit=amount,
            thresholds=thresholds,
            block_at_limit=block,
        )
    except PricingError as exc:
        st.error(f"Not saved: {exc}", icon=":material/error:")
    else:
        _session.clear_cached()
        st.session_state["budget_saved"] = True
        st.rerun()
