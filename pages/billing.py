"""Billing: monthly statements (PDF and CSV), Stripe's invoices, saved cards and
auto top-up."""

import streamlit as st

from pages import _billing_rows, _format, _session
from pricing_core.billing import autotopup, customers, invoices
from pricing_core.billing.packages import list_packages
from pricing_core.billing.stripe_api import payments_configured
from pricing_core.domain.errors import PricingError
from pricing_core.plans import records, statements

viewer = _session.principal()
engine = _session.engine()
st.title("Billing")
if st.query_params.get("card") == "added":  # back from Stripe's setup page
    st.success("Your card is saved: auto top-up can use it.")
settings = autotopup.get_auto_topup(engine, viewer)  # off after failures: the banner says why

st.subheader("Monthly statements")
mine = records.list_billing_records(engine, viewer)
_session.table(
    _billing_rows.statement_rows(mine),
    empty="No statements yet: the first is written after your first month ends.",
)
if mine:
    c1, c2 = st.columns(2)
    chosen = c1.selectbox(
        "Statement", mine, format_func=lambda r: statements.period_title(r.period)
    )
    c1.download_button(
        "Download PDF",
        statements.statement_pdf(chosen),
        file_name=f"statement-{chosen.account_id}-{chosen.period}.pdf",
        mime="application/pdf",
        icon=":material/picture_as_pdf:",
    )
    c2.download_button(
        "Download all as CSV",
        statements.statements_csv(mine),
        file_name=f"statements-{viewer.account_id}.csv",
        mime="text/csv",
        icon=":material/download:",
    )

st.subheader("Invoices")
st.caption("Stripe issues an invoice for each credit pack bought and each plan month.")
_session.table(
    _billing_rows.invoice_rows(invoices.list_invoices(engine, viewer)),
    empty="No invoices yet.",
    column_config=_billing_rows.LINKS,
)

st.subheader("Payment methods")
if not payments_configured():
    st.info("Card payments are not set up on this server (PRICING_STRIPE_SECRET_KEY).")
else:
    try:
        cards = customers.list_payment_methods(engine, viewer)
    except PricingError as exc:
        cards = []
        st.warning(f"Stripe could not be reached: {exc}")
    for card in cards:
        st.markdown(f":material/credit_card: {card.label}")
    if not cards:
        st.caption("No saved card yet: the card you buy a credit pack with is saved here.")
    add, manage = st.columns(2)
    try:
        if add.button("Add a card", icon=":material/add_card:"):
            _session.redirect(customers.add_card_url(engine, viewer), label="Open Stripe")
        if manage.button("Manage payment methods", icon=":material/open_in_new:"):
            _session.redirect(customers.manage_methods_url(engine, viewer), label="Open Stripe")
    except PricingError as exc:
        st.error(str(exc))

st.subheader("Auto top-up")
st.caption(
    "When a charge takes your balance below the threshold, your saved card is charged "
    "once, at most the monthly maximum. Three failed payments in a row turn it off."
)
packs = {p.id: f"{p.name}: {_format.paid(p.price)}" for p in list_packages(engine)}
with st.form("auto_topup"):
    enabled = st.toggle("Auto top-up on", value=bool(settings and settings.enabled))
    c1, c2 = st.columns(2)
    threshold = c1.text_input(
        "When the balance falls below (USD)", value=str(settings.threshold) if settings else "5"
    )
    monthly_max = c2.text_input(
        "At most per month (USD)", value=str(settings.monthly_max) if settings else "100"
    )
    by_pack = st.radio("Top up with", ["A credit pack", "An amount"], horizontal=True)
    c3, c4 = st.columns(2)
    pack = c3.selectbox("Credit pack", list(packs), format_func=packs.get)
    amount = c4.text_input(
        "Amount (USD)", value=str(settings.amount) if settings and settings.amount else "10"
    )
    save = st.form_submit_button("Save auto top-up", type="primary")
if save:
    try:
        autotopup.configure_auto_topup(
            engine,
            viewer,
            enabled=enabled,
            threshold=threshold,
            monthly_max=monthly_max,
            package_id=pack if by_pack == "A credit pack" else None,
            amount=None if by_pack == "A credit pack" else amount,
        )
    except PricingError as exc:
        st.error(str(exc))
    else:
        st.success("Auto top-up saved." if enabled else "Auto top-up is off.")
_session.table(
    _billing_rows.topup_rows(autotopup.recent_topups(engine, viewer)),
    empty="No top-ups yet.",
)
