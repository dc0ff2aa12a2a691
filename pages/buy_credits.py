import uuid

import streamlit as st

from pages import _format, _session
from pricing_core.billing import checkout, fulfilment, packages, sessions
from pricing_core.billing.stripe_api import payments_configured
from pricing_core.config import get_settings
from pricing_core.domain.errors import PricingError
from pricing_core.ledger.wallets import wallet_for
from pricing_core.safety import demo_enabled


def package_card(offer: packages.PackageOffer) -> None:
    """One credit pack: name (and the popular badge), price, credit, bonus, price per
    unit and the saving against the first pack."""
    package = offer.package
    st.markdown(f"#### {package.name}")
    # every card has the badge line, so the cards' prices and buttons line up
    st.markdown(":blue-badge[Most popular]" if package.popular else "&nbsp;")
    st.markdown(f"## {_format.paid(package.price)}")
    of_credit = "" if _format.unit_name() == "credits" else " of credit"
    st.markdown(f"**{_format.amount(package.total_credit)}**{of_credit}")
    bonus = _format.amount(package.bonus)
    st.caption(f"includes a {bonus} volume bonus" if package.bonus else "no bonus")
    per = "credit" if of_credit == "" else "$1 of credit"
    saving = f" · save {offer.saving_pct}%" if offer.saving_pct else ""
    st.caption(_format.rate(offer.per_unit, per) + saving)


def show_fulfilment(result: sessions.Fulfilment) -> None:
    """The outcome of a checkout, for the buyer."""
    if result.is_credited:
        st.success(
            f"Payment received: {_format.amount(result.credited)} of credit added. "
            f"New balance: {_format.amount(result.balance)}."
        )
    elif result.outcome == sessions.Outcome.PROCESSING:
        st.info("Payment processing: your credit arrives as soon as the payment clears.")
    elif result.outcome == sessions.Outcome.NOT_PAID:
        st.info("This checkout has not been paid yet.")
    else:
        st.error(f"Not credited ({result.outcome}): {result.message}")


def purchase_row(purchase: checkout.Purchase) -> dict[str, object]:
    """A purchase as display strings for the history table."""
    status = purchase.status + (" (simulated)" if purchase.simulated else "")
    if purchase.dispute_status:
        status += f", dispute {purchase.dispute_status}"
    return {
        "Date": purchase.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        "Package": purchase.package_name,
        "Paid": f"{_format.paid(purchase.price)} {purchase.currency.upper()}",
        "Credit": _format.amount(purchase.credit),
        "Status": status,
        "Refunded": _format.paid(purchase.refunded) if purchase.refunded else "",
        "Receipt": purchase.receipt_url or "",
    }


viewer = _session.principal()
engine = _session.engine()
st.title("Buy credits")

if session_id := st.query_params.get("session_id"):  # back from Stripe Checkout
    try:
        show_fulfilment(fulfilment.fulfil_checkout(engine, session_id, viewer=viewer))
    except PricingError as exc:
        st.error(str(exc))
elif st.query_params.get("canceled"):
    st.info("Checkout was canceled. Nothing was charged.")
if message := st.session_state.pop("buy_credits_result", None):
    show_fulfilment(message)

wallet = wallet_for(engine, viewer)
st.metric("Balance", _format.amount(wallet.balance))
if wallet.owed:
    st.warning(
        f"Your account owes {_format.amount(wallet.owed)} of credit: a refund or dispute "
        "took back credits that had already been used. Buy credits to continue using the "
        "service.",
        icon=":material/money_off:",
    )


configured = payments_configured()
simulate = not configured and demo_enabled()
if simulate:
    st.info(
        ":orange-badge[DEMO MODE] No payment provider is connected: “Simulate purchase” "
        "credits a pack without any payment.",
        icon=":material/science:",
    )
elif not configured:
    st.warning(
        "Payments are not configured on this server (no Stripe secret key), so credit packs "
        "cannot be bought right now.",
        icon=":material/credit_card_off:",
    )

nonce = st.session_state.setdefault("checkout_nonce", uuid.uuid4().hex)
offers = packages.package_offers(packages.list_packages(engine), get_settings().display_unit)
for column, offer in zip(st.columns(max(len(offers), 1)), offers, strict=False):
    package = offer.package
    with column, st.container(border=True):
        package_card(offer)
        if configured and st.button(
            "Buy",
            key=f"buy_{package.id}",
            type="primary" if package.popular else "secondary",
            width="stretch",
        ):
            try:
                key = f"{nonce}:{package.id}"
                start = checkout.create_checkout(
                    engine, viewer, package_id=package.id, idempotency_key=key
                )
            except PricingError as exc:
                st.error(str(exc))
            else:
                _session.redirect(start.url, label="Continue to Stripe Checkout")
        if simulate and st.button(
            "Simulate purchase (demo)", key=f"sim_{package.id}", width="stretch"
        ):
            try:
                key = uuid.uuid4().hex
                result = checkout.simulate_purchase(
                    engine, viewer, package_id=package.id, idempotency_key=key
                )
            except PricingError as exc:
                st.error(str(exc))
            else:
                st.session_state["buy_credits_result"] = result
                st.rerun()

st.subheader("Purchase history")
purchases = checkout.list_purchases(engine, viewer)
if purchases:
    rows = [purchase_row(p) for p in purchases]
    if not any(r["Receipt"] for r in rows):  # simulated or hand-recorded: no receipts
        for r in rows:
            del r["Receipt"]
    st.dataframe(
        rows,
        hide_index=True,
        column_config={"Receipt": st.column_config.LinkColumn("Receipt", display_text="receipt")},
    )
else:
    st.caption("No purchases yet.")
