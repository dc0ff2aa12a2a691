import uuid

import streamlit as st

from pages import _ui
from pricing_core.billing import checkout
from pricing_core.billing.stripe_api import payments_configured
from pricing_core.domain.errors import PricingError
from pricing_core.domain.money import format_usd
from pricing_core.ledger.wallets import wallet_for
from pricing_core.safety import demo_enabled

viewer = _ui.principal()
engine = _ui.engine()
st.title("Buy credits")

if session_id := st.query_params.get("session_id"):  # back from Stripe Checkout
    try:
        _ui.show_fulfilment(checkout.fulfil_checkout(engine, session_id, viewer=viewer))
    except PricingError as exc:
        st.error(str(exc))
elif st.query_params.get("canceled"):
    st.info("Checkout was canceled. Nothing was charged.")
if message := st.session_state.pop("buy_credits_result", None):
    _ui.show_fulfilment(message)

wallet = wallet_for(engine, viewer)
st.metric("Balance", format_usd(wallet.balance, total=True))
_ui.owed_notice(wallet)

configured = payments_configured()
simulate = not configured and demo_enabled()
if not configured:
    st.warning(
        "Payments are not configured on this server (no Stripe secret key), so credit packs "
        "cannot be bought right now.",
        icon=":material/credit_card_off:",
    )
if simulate:
    st.caption(":orange-badge[DEMO MODE] “Simulate purchase” credits the pack without any payment.")

nonce = st.session_state.setdefault("checkout_nonce", uuid.uuid4().hex)
packages = checkout.list_packages(engine)
for column, package in zip(st.columns(max(len(packages), 1)), packages, strict=False):
    with column, st.container(border=True):
        _ui.package_card(package)
        if configured and st.button(
            "Buy",
            key=f"buy_{package.id}",
            type="primary" if package.popular else "secondary",
            width="stretch",
        ):
            try:
                start = checkout.create_checkout(
                    engine,
                    viewer,
                    package_id=package.id,
                    idempotency_key=f"{nonce}:{package.id}",
                )
            except PricingError as exc:
                st.error(str(exc))
            else:
                _ui.redirect(start.url, label="Continue to Stripe Checkout")
        if simulate and st.button(
            "Simulate purchase (demo)", key=f"sim_{package.id}", width="stretch"
        ):
            try:
                result = checkout.simulate_purchase(
                    engine,
                    viewer,
                    package_id=package.id,
                    idempotency_key=uuid.uuid4().hex,
                )
            except PricingError as exc:
                st.error(str(exc))
            else:
                st.session_state["buy_credits_result"] = result
                st.rerun()

st.subheader("Purchase history")
purchases = checkout.list_purchases(engine, viewer)
if purchases:
    st.dataframe(
        [_ui.purchase_row(p) for p in purchases],
        hide_index=True,
        column_config={"Receipt": st.column_config.LinkColumn("Receipt", display_text="receipt")},
    )
else:
    st.caption("No purchases yet.")
