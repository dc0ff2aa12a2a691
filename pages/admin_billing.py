"""Admin billing: payment metrics (success rate, declines, top-ups, refunds per day),
every account's monthly billing records, and Stripe's invoices."""

import streamlit as st

from pages import _billing_rows, _format, _session
from pricing_core.analytics.payments import payment_metrics
from pricing_core.billing.invoices import all_invoices
from pricing_core.domain.errors import PricingError
from pricing_core.plans import records, statements

viewer = _session.admin_principal()
engine = _session.engine()
st.title("Billing & payments")

st.subheader("Payments")
st.caption(
    "Card payments: credit packs bought through Checkout and auto top-up attempts. "
    "A decline is a failed top-up attempt (declined, or the bank wanted the card owner)."
)
start, end = _session.date_range("payments_range")
metrics = _session.cached(payment_metrics, viewer, start, end)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Success rate", _format.pct(metrics.success_rate), border=True)
c2.metric("Declines", metrics.total("declines"), border=True)
c3.metric("Top-ups credited", metrics.total("topups"), border=True)
c4.metric(
    "Refunds", f"{metrics.total('refunds')} · {_format.amount(metrics.refunded)}", border=True
)
if metrics.total("succeeded") + metrics.total("failed"):
    st.plotly_chart(_billing_rows.payments_chart(metrics.days), key="payments_chart")
else:
    st.caption("No card payments in this range.")

st.subheader("Billing records")
st.caption(
    "One per account and month, written by the nightly `billing-records` job from the "
    "ledger and the rollups once the month has ended."
)
if st.button("Write the missing records now", icon=":material/receipt_long:"):
    try:
        written = records.generate_billing_records(engine)
    except PricingError as exc:
        st.error(str(exc))
    else:
        _session.clear_cached()
        st.success(f"{written} billing record(s) written.")
every = _session.cached(records.all_billing_records, viewer)
periods = sorted({r.period for r in every}, reverse=True)
period = st.selectbox(
    "Month", periods, format_func=statements.period_title, index=0 if periods else None
)
shown = [r for r in every if r.period == period]
_session.table(
    _billing_rows.statement_rows(shown, with_account=True),
    empty="No billing records yet: they are written after a month ends.",
)
if shown:
    st.download_button(
        "Download CSV",
        statements.statements_csv(shown),
        file_name=f"billing-records-{period}.csv",
        mime="text/csv",
        icon=":material/download:",
    )

st.subheader("Stripe invoices")
_session.table(
    _billing_rows.invoice_rows(_session.cached(all_invoices, viewer)),
    empty="No Stripe invoices yet.",
    column_config=_billing_rows.LINKS,
)
