import streamlit as st

from pages import _charts, _session
from pricing_core.analytics import plan_views
from pricing_core.domain.errors import PricingError
from pricing_core.domain.plan_advice import Outcome
from pricing_core.domain.plans import PAYG
from pricing_core.plans.advice import advise_plan
from pricing_core.plans.billing import (
    ChangeKind,
    SwitchMode,
    confirm_plan_checkout,
    request_plan_change,
    switch_mode,
)

viewer = _session.principal()
st.title("Plans")
if st.query_params.get("checkout") == "success" and st.query_params.get("session_id"):
    try:  # the webhook applies it too; whichever comes second changes nothing
        confirm_plan_checkout(_session.engine(), viewer, st.query_params["session_id"])
    except PricingError as exc:
        st.error(str(exc))
    else:
        st.success("Thank you: your subscription is confirmed by Stripe.")
        del st.query_params["session_id"]
try:
    advice = advise_plan(_session.engine(), viewer)
except PricingError as exc:
    st.error(str(exc))
    st.stop()

status = plan_views.allowance_status(advice)
left, middle, right = st.columns(3)
left.metric("Current plan", status.plan_name)
middle.metric("Billed so far this month", status.bill_so_far)
right.metric(
    "Estimated bill this month",
    status.estimated_bill,
    help="This month projected to its end at your pace so far: the plan's fee (charged by "
    "Stripe) plus usage charged to your balance.",
)
if status.estimate_note:
    right.caption(status.estimate_note)
if status.percent is None:
    st.caption(status.label)
else:
    st.progress(status.percent, text=status.label)

rec = advice.recommendation
(st.success if rec.outcome is Outcome.SWITCH else st.info)(rec.sentence, icon=":material/savings:")
if advice.talk_to_us:
    names = ", ".join(p.name for p in advice.talk_to_us)
    st.caption(f"{names}: custom pricing, talk to us. Not included in the comparison.")

st.subheader("What each plan would have cost you")
st.dataframe(plan_views.cost_table(advice), hide_index=True)
st.plotly_chart(_charts.plan_cost_chart(advice))

st.subheader("Break-even")
st.caption(plan_views.break_even_caption(advice))
st.plotly_chart(_charts.break_even_chart(advice))

st.subheader("Change plan")
offers = [PAYG, *advice.plans]
st.dataframe([plan_views.describe_plan(p) for p in offers], hide_index=True)
mode = switch_mode()
if mode is SwitchMode.DEMO:
    st.caption(":orange-badge[DEMO MODE] switching is immediate and nothing is charged")
elif mode is SwitchMode.STRIPE:
    st.caption("Stripe bills the monthly fee; usage beyond the plan comes from your balance.")
choices = [p.code for p in offers if p.has_fee and p.code != advice.current.code]
names = {p.code: p.name for p in offers}
with st.form("switch_plan"):
    target = st.selectbox("Switch to", choices, format_func=names.get)
    submitted = st.form_submit_button("Switch plan")
if submitted and target:
    try:
        change = request_plan_change(_session.engine(), viewer, target)
    except PricingError as exc:
        st.error(str(exc))
    else:
        if change.kind is ChangeKind.CHECKOUT and change.url:
            st.link_button("Continue to Stripe Checkout", change.url, type="primary")
        else:
            st.session_state["plan_change_message"] = change.message
            st.rerun()
if message := st.session_state.pop("plan_change_message", None):
    st.success(message)
