import streamlit as st

from pages import _format, _session
from pricing_core.admin.packages import PackTerms, retire_package, save_package
from pricing_core.admin.plans import publish_plan, set_enterprise_fee
from pricing_core.billing.packages import list_packages, package_offers
from pricing_core.config import get_settings
from pricing_core.domain.errors import PricingError
from pricing_core.plans.subscriptions import account_plans

viewer = _session.admin_principal()
engine = _session.engine()
unit = get_settings().display_unit
st.title("Packs & plans")
st.caption(
    f"Credit in {unit.name}; prices people pay in USD. Every change is a new version "
    "with an audit row: purchases and subscribers keep the terms they have."
)

st.subheader("Credit packs on sale")
offers = package_offers(list_packages(engine), unit)
_session.table(
    [
        {
            "Code": o.package.code,
            "Version": o.package.version,
            "Name": o.package.name + (" (most popular)" if o.package.popular else ""),
            "Price": _format.paid(o.package.price),
            "Credit": _format.amount(o.package.total_credit),
            "Saving": f"{o.saving_pct}%" if o.saving_pct else "",
        }
        for o in offers
    ],
    empty="No packs are on sale.",
)
with st.form("pack_form"):
    c1, c2, c3 = st.columns(3)
    code = c1.text_input("Code (a new one adds a pack)", placeholder="popular", key="pk_code")
    name = c2.text_input("Name", placeholder="Popular", key="pk_name")
    price = c3.text_input("Price, USD", placeholder="17.99", key="pk_price")
    c4, c5, c6 = st.columns(3)
    credit = c4.text_input(f"Credit, {unit.name}", key="pk_credit")
    bonus = c5.text_input(f"Bonus, {unit.name}", value="0", key="pk_bonus")
    popular = c6.checkbox("Most popular", key="pk_popular")
    pack_reason = st.text_input("Reason (required)", key="pk_reason")
    save = st.form_submit_button("Save pack", key="pk_save")
    retire = st.form_submit_button("Retire pack", key="pk_retire")
if save or retire:
    try:
        if save:
            terms = PackTerms(name, price, credit, bonus, popular)
            saved = save_package(engine, viewer, code.strip(), terms, reason=pack_reason)
            message = f"{saved.name} is on sale as {saved.id}."
        else:
            retire_package(engine, viewer, code.strip(), reason=pack_reason)
            message = f"{code.strip()} is no longer sold."
    except PricingError as exc:
        st.error(str(exc))
    else:
        _session.clear_cached()
        st.success(message)

st.subheader("Plans on offer")
plans = account_plans(engine, "")
_session.table(
    [
        {
            "Code": p.code,
            "Version": p.version,
            "Name": p.name,
            "Monthly fee": "per account"
            if p.monthly_fee is None
            else _format.amount(p.monthly_fee),
            "Included messages": "unlimited"
            if p.included_messages is None
            else f"{p.included_messages:,}",
            "Overage": unit.rate(p.overage_rate, "message"),
            "Cap": "-" if p.monthly_cap is None else _format.amount(p.monthly_cap),
        }
        for p in plans
    ],
    empty="No plans are on offer.",
)
with st.form("plan_form"):
    c1, c2, c3 = st.columns(3)
    plan_code = c1.text_input("Code", placeholder="starter", key="pl_code")
    plan_name = c2.text_input("Name", placeholder="Starter", key="pl_name")
    fee = c3.text_input("Monthly fee, USD (empty: per account)", key="pl_fee")
    c4, c5, c6 = st.columns(3)
    included = c4.number_input("Included messages", 0, 10**9, 1000, key="pl_included")
    overage = c5.text_input("Overage, USD per message", value="0", key="pl_overage")
    cap = c6.text_input("Monthly cap, USD (empty: none)", key="pl_cap")
    plan_reason = st.text_input("Reason (required)", key="pl_reason")
    publish = st.form_submit_button("Publish a new version", key="pl_publish")
if publish:
    try:
        plan = publish_plan(
            engine, viewer, plan_code.strip(), name=plan_name, monthly_fee=fee,
            included_messages=int(included), overage_rate=overage, monthly_cap=cap,
            reason=plan_reason,
        )  # fmt: skip
    except PricingError as exc:
        st.error(str(exc))
    else:
        _session.clear_cached()
        st.success(f"{plan.name} v{plan.version} is on offer.")

st.subheader("An account's own fee (Enterprise)")
with st.form("fee_form"):
    c1, c2, c3 = st.columns(3)
    fee_account = c1.text_input("Account id", key="fee_account")
    fee_plan = c2.text_input("Plan code", value="enterprise", key="fee_plan")
    fee_amount = c3.text_input("Monthly fee, USD", key="fee_amount")
    fee_reason = st.text_input("Reason (required)", key="fee_reason")
    set_fee = st.form_submit_button("Set the fee", key="fee_save")
if set_fee:
    try:
        amount = set_enterprise_fee(
            engine, viewer, fee_account.strip(), fee_plan.strip(), fee_amount, reason=fee_reason
        )
    except PricingError as exc:
        st.error(str(exc))
    else:
        st.success(f"{fee_account.strip()} pays {_format.paid(amount)} a month for {fee_plan}.")
