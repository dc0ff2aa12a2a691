"""Notifications: which emails you get, each kind on or off."""

import streamlit as st

from pages import _format, _session
from pricing_core.adapters.outbox import Kind
from pricing_core.config import get_settings
from pricing_core.domain.errors import PricingError
from pricing_core.notify import preferences as prefs

viewer = _session.principal()
engine = _session.engine()
st.title("Notifications")
st.caption(
    "Emails go to the address you signed in with. Each one also has a link that turns "
    "its kind off in one click."
)
if not viewer.email:
    st.info("Your sign-in has no email address, so no email can reach you yet.")


def _save(kind: Kind) -> None:
    try:
        prefs.set_preference(engine, viewer, kind, st.session_state[f"notify_{kind}"])
    except PricingError as exc:
        st.session_state["notify_error"] = str(exc)
    else:
        st.session_state["notify_saved"] = kind.label


choices = prefs.preferences(engine, viewer)
for kind, enabled in choices.items():
    st.toggle(kind.label, value=enabled, key=f"notify_{kind}", on_change=_save, args=(kind,))

with st.form("low_balance_line"):
    current = prefs.low_balance_line(engine, viewer)
    line = st.text_input(
        "Email me when the balance falls below (USD; empty for the default "
        f"{_format.amount(get_settings().low_balance_usd)})",
        value="" if current is None else str(current),
        key="low_balance_line_input",
    )
    if st.form_submit_button("Save the line", key="low_balance_line_save"):
        try:
            prefs.set_low_balance_line(engine, viewer, line.strip() or None)
        except PricingError as exc:
            st.session_state["notify_error"] = str(exc)
        else:
            st.session_state["notify_saved"] = "the low-balance line"
if error := st.session_state.pop("notify_error", None):
    st.error(error)
elif saved := st.session_state.pop("notify_saved", None):
    st.success(f"Saved: {saved}.", icon=":material/check:")
