"""The one entry point: `streamlit run app.py` serves the dashboard and, on the same
port, the HTTP routes (Stripe webhook, REST API) through `st.App`."""

import gc

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from pages import _session, _signin
from pricing_core.api.http import routes

if __name__ != "__main__":
    _signin.check_startup()  # server start: refuse an unsafe production configuration
    # Every page runs inside this script's st.navigation. Until a first session has
    # run it, Streamlit would serve a deep link straight from the pages/ folder (its
    # automatic page list, the helper modules included), skipping sign-in and roles.
    PagesManager.uses_pages_directory = False
    # What start-up loaded (modules, the price data) is never garbage: out of every
    # full collection, which scanned it for 80 ms a time (bench B3)
    gc.freeze()

app = st.App("app.py", routes=routes(), on_script_error=_signin.on_script_error)

if __name__ == "__main__":
    _session.setup()
    _signin.refuse_if_unsafe()
    if _signin.needs_sign_in():
        st.navigation([st.Page(_signin.sign_in_page, title="Sign in", url_path="signin")]).run()
        st.stop()
    _session.sidebar()
    sections = {
        "Your account": [
            st.Page(
                "pages/overview.py",
                title="Overview",
                icon=":material/account_balance_wallet:",
                default=True,
            ),
            st.Page("pages/chats.py", title="Chats", icon=":material/forum:"),
            st.Page("pages/usage.py", title="Usage", icon=":material/bar_chart:"),
            st.Page("pages/explore.py", title="Explore", icon=":material/explore:"),
            st.Page("pages/transactions.py", title="Transactions", icon=":material/receipt_long:"),
            st.Page("pages/budget.py", title="Budget & alerts", icon=":material/savings:"),
            st.Page("pages/plans.py", title="Plans", icon=":material/workspace_premium:"),
            st.Page("pages/pricing.py", title="Pricing", icon=":material/sell:"),
            st.Page("pages/billing.py", title="Billing", icon=":material/receipt:"),
            st.Page(
                "pages/notifications.py", title="Notifications", icon=":material/notifications:"
            ),
        ],
    }
    if _session.billing_enabled():  # PRICING_ENABLE_BILLING and its rollout
        sections["Your account"].append(
            st.Page(
                "pages/buy_credits.py",
                title="Buy credits",
                icon=":material/add_card:",
                url_path="buy_credits",
            )
        )
    if _session.viewer_is_admin():
        sections["Admin"] = _session.admin_pages()
    navigation = st.navigation(sections, expanded=True)  # every page, not "View 3 more"
    navigation.run()
