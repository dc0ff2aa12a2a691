from datetime import time

import streamlit as st

from pages import _format, _session
from pricing_core.admin import prices as ap
from pricing_core.admin import reprice
from pricing_core.analytics import prices as price_views
from pricing_core.config import get_settings
from pricing_core.domain.errors import PricingError
from pricing_core.domain.periods import local_moment

viewer = _session.admin_principal()
engine = _session.engine()
tz = get_settings().tz
st.title("Price book")
stale = price_views.catalog_staleness(engine, viewer)
st.caption(
    f"Provider prices: {stale.catalog_version} (prices as of {stale.snapshot_prices_as_of}). "
    f"Effective price = (override or list price) x markup, per million tokens. "
    f"Times in {get_settings().timezone}."
)

book = price_views.price_book(engine, viewer)
_session.table([_format.price_row(v) for v in book])

st.subheader("Change a model's price")
if not book:
    st.info("No model has been used yet.")
else:
    labels = {f"{v.provider}/{v.model}": v for v in book}
    with st.form("price_form"):
        chosen = labels[st.selectbox("Model", list(labels), key="price_model")]
        markup = st.text_input("Markup (x)", value=str(chosen.markup), key="price_markup")
        c1, c2, c3 = st.columns(3)
        input_mtok = c1.text_input("Override: input $/MTok (optional)", key="price_in")
        output_mtok = c2.text_input("Override: output $/MTok", key="price_out")
        cached_mtok = c3.text_input("Override: cached input $/MTok", key="price_cached")
        when = st.radio(
            "Effective from", ["Now", "A later date"], horizontal=True, key="price_when"
        )
        d1, d2 = st.columns(2)
        day = d1.date_input("Date", value=_session.today(), key="price_day", format="YYYY-MM-DD")
        at = d2.time_input("Time", value=time(0, 0), key="price_time")
        reason = st.text_input("Reason (required)", key="price_reason")
        previewed = st.form_submit_button("Preview the last 30 days", key="price_preview")
    if previewed:
        try:
            change = ap.propose_price(
                chosen.provider,
                chosen.model,
                markup=markup,
                input_mtok=input_mtok,
                output_mtok=output_mtok,
                cache_read_mtok=cached_mtok,
            )
            starts = None if when == "Now" else local_moment(day, at, tz)
            preview = reprice.reprice_preview(engine, viewer, [change], days=30)
        except PricingError as exc:
            st.error(str(exc))
        else:
            st.session_state["price_pending"] = (change, starts, reason, preview)
    pending = st.session_state.get("price_pending")
    if pending:
        change, starts, reason, preview = pending
        st.markdown(
            f"**Reprice preview** for `{change.provider}/{change.model}` at markup "
            f"{change.markup}: pay-as-you-go usage of the last 30 days."
        )
        _session.table(_format.preview_rows(preview))
        st.caption(
            "Past charges never change: the new price applies to usage from "
            f"{'the moment you save' if starts is None else _format.when(starts, seconds=True)} on."
        )
        if st.button("Save this price", type="primary", key="price_save"):
            try:
                ap.set_model_price(engine, viewer, change, effective_from=starts, reason=reason)
            except PricingError as exc:
                st.error(str(exc))
            else:
                del st.session_state["price_pending"]
                _session.clear_cached()
                st.success(f"Saved the new price of {change.provider}/{change.model}.")
                st.rerun()

st.subheader("Fixed operation prices")
st.caption(
    "Operations with a fixed price per unit (an image, a video) are not priced by tokens; "
    "a model's own price comes before the operation's price for any model."
)
_session.table(
    [
        {
            "operation": o.operation,
            "model": o.model or "any",
            "price per unit": o.price,
            "provider cost per unit": o.provider_cost,
            "effective from": _format.when(o.effective_from, seconds=True),
            "status": "scheduled" if o.scheduled else "in effect",
            "set by": o.actor or "",
        }
        for o in price_views.operation_price_list(engine, viewer)
    ]
)
with st.form("operation_form"):
    c1, c2, c3, c4 = st.columns(4)
    operation = c1.text_input("Operation", placeholder="image_generation", key="op_name")
    op_model = c2.text_input("Model (empty: any)", placeholder="dall-e-3", key="op_model")
    price = c3.text_input("Price per unit, USD", key="op_price")
    cost = c4.text_input("Provider cost per unit, USD", key="op_cost")
    op_day = st.date_input(
        "Effective from (date; today = now)", value=_session.today(), key="op_day"
    )
    op_reason = st.text_input("Reason (required)", key="op_reason")
    saved = st.form_submit_button("Save fixed price", key="op_save")
if saved:
    try:
        starts = None if op_day <= _session.today() else local_moment(op_day, time(0), tz)
        ap.set_operation_price(
            engine,
            viewer,
            operation.strip(),
            price=price,
            provider_cost=cost,
            effective_from=starts,
            reason=op_reason,
            model=op_model.strip(),
        )
    except PricingError as exc:
        st.error(str(exc))
    else:
        _session.clear_cached()
        st.success(f"Saved the fixed price of {operation.strip()}.")

st.subheader("History of price changes")
_session.table(
    [
        {
            "changed": _format.when(h.created_at, seconds=True),
            "effective from": _format.when(h.effective_from, seconds=True),
            "what": h.subject,
            "change": h.change,
            "by": h.actor or "",
            "reason": h.reason or "",
        }
        for h in price_views.price_history(engine, viewer)
    ]
)
