"""Session plumbing shared by every page: the engine, the viewer (and the admin
gate), the demo sidebar, cached reads, and the widgets every page uses.

A page calls `principal()` (or `admin_principal()`), then one or two `pricing_core`
functions through `cached(...)`, then renders. No SQL and no money arithmetic here.
"""

from __future__ import annotations

import contextlib
import html
import threading
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

import streamlit as st
from sqlalchemy import Engine

from pages import _charts, _format, _signin
from pricing_core.access import auth
from pricing_core.adapters.storage import open_database
from pricing_core.analytics import balance_state, revenue
from pricing_core.billing import autotopup
from pricing_core.config import get_settings
from pricing_core.demo.accounts import DatabaseNotEmpty
from pricing_core.demo.seed import seed_demo
from pricing_core.domain.errors import PermissionDenied, PricingError
from pricing_core.domain.periods import Granularity
from pricing_core.domain.principal import Principal, require_admin
from pricing_core.ledger.wallets import wallet_for
from pricing_core.limits import budgets
from pricing_core.limits.rollout import billing_enabled as billing_enabled_for
from pricing_core.metering.grace import grace_status
from pricing_core.safety import demo_enabled

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)
CACHE_TTL_SECONDS = 60
ADMIN_PAGES = (
    ("pages/admin_revenue.py", "Revenue", ":material/monitoring:"),
    ("pages/admin_usage.py", "Usage explorer", ":material/query_stats:"),
    ("pages/admin_prices.py", "Price book", ":material/sell:"),
    ("pages/admin_offers.py", "Packs & plans", ":material/inventory_2:"),
    ("pages/admin_truth.py", "Pricing truth", ":material/fact_check:"),
    ("pages/admin_accounts.py", "Accounts", ":material/manage_accounts:"),
    ("pages/admin_billing.py", "Billing & payments", ":material/payments:"),
    ("pages/admin_integrity.py", "Integrity", ":material/verified:"),
)
_seed_lock = threading.Lock()


@st.cache_resource(show_spinner=False)
def _engine_for(url: str) -> Engine:
    return open_database(url)


def engine() -> Engine:
    """The shared engine for the configured database (migrated on first use)."""
    return _engine_for(get_settings().database_url)


def setup() -> None:
    st.set_page_config(
        page_title="AI usage & billing", page_icon=":material/payments:", layout="wide"
    )
    _seed_demo_if_empty()


def _seed_demo_if_empty() -> None:
    """Demo mode on an empty database: seed the demo data once, so a new user sees a
    working product at once (`pricing-core demo seed` does the same)."""
    if not demo_enabled():
        return
    eng = engine()
    if auth.list_accounts(eng):
        return
    with _seed_lock, st.spinner("First start: creating demo accounts and 90 days of usage..."):
        if auth.list_accounts(eng):
            return
        with contextlib.suppress(DatabaseNotEmpty):  # another session seeded it meanwhile
            seed_demo(eng)
    st.cache_data.clear()


# ---------------------------------------------------------------- the viewer


def sidebar() -> None:
    """Who is signed in (sign-out button); in demo mode an account picker, clearly
    labelled. `?account=ID` preselects one."""
    _signin.signed_in_sidebar()
    if not demo_enabled():
        return
    with st.sidebar:
        st.caption(":orange-badge[DEMO MODE] no sign-in configured; pick any account to view")
        choices = auth.list_accounts(engine())
        if not choices:
            st.info("No accounts yet.")
            return
        ids = [c[0] for c in choices]
        names = dict(choices)
        wanted = st.query_params.get("account")
        if wanted in names and st.session_state.get("demo_account") not in names:
            st.session_state["demo_account"] = wanted
        st.selectbox(
            "View as account",
            ids,
            format_func=lambda i: f"{names[i]} ({i})",
            key="demo_account",
            on_change=_forget_chat,
        )
        st.toggle(
            "View as admin (demo)",
            value=bool(st.session_state.get("demo_admin")),
            key="demo_admin_toggle",
            on_change=_sync_demo_admin,
            help="Shows the Admin section.",
        )


def _sync_demo_admin() -> None:
    # Kept under a plain key: widget state is dropped when the set of pages changes
    # (the Admin section appearing), plain keys survive.
    st.session_state["demo_admin"] = st.session_state["demo_admin_toggle"]


def _forget_chat() -> None:
    st.session_state["chat_page"] = 1
    st.query_params.pop("chat", None)
    st.query_params.pop("account", None)


def view_as(account_id: str) -> None:
    """Demo mode: look at the user pages as `account_id` sees them."""
    st.session_state["demo_account"] = account_id
    st.session_state["demo_admin"] = False
    st.session_state["demo_admin_toggle"] = False


def view_as_link(account_id: str) -> None:
    """Demo mode: open the user-side pages as this account sees them."""
    if not demo_enabled():
        st.caption("The user-side pages show the signed-in user's own account.")
        return
    if st.button(
        "Open the user pages as this account (demo)",
        icon=":material/visibility:",
        on_click=view_as,
        args=(account_id,),
    ):
        st.switch_page("pages/overview.py")


def _current() -> Principal:
    """The signed-in user (OIDC claims), else demo mode's choice."""
    demo = demo_enabled()
    return auth.current_principal(
        engine(),
        demo_account=st.session_state.get("demo_account"),
        demo_role="admin" if demo and st.session_state.get("demo_admin") else "member",
        claims=_signin.claims(),
        demo=demo,
    )


def principal(*, show_banner: bool = True) -> Principal:
    """The viewer, and the budget banner above the page. Stops the page with a
    message if there is no viewer."""
    try:
        viewer = _current()
    except PricingError as exc:
        st.error(str(exc))
        st.stop()
        raise
    if show_banner:
        sidebar_balance(viewer)
        banner(viewer)
    return viewer


def admin_principal() -> Principal:
    """The viewer, who must be an admin: otherwise the page says so and stops.

    The pricing_core functions check the role again; this gate only keeps a member
    who types an admin page's URL from seeing an empty shell.
    """
    viewer = principal()
    try:
        require_admin(viewer)
    except PermissionDenied as exc:
        st.error(f"Admins only: {exc}")
        st.stop()
        raise
    return viewer


def viewer_is_admin() -> bool:
    """True when the current viewer is an admin (decides whether the Admin section
    is shown; every admin page and function checks the role again itself)."""
    try:
        return _current().is_admin
    except PricingError:
        return False


def admin_pages() -> list[Any]:
    """The Admin section of the navigation (only built for admins)."""
    return [st.Page(path, title=title, icon=icon) for path, title, icon in ADMIN_PAGES]


# ---------------------------------------------------------------- cached reads


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _run_cached(
    _engine: Engine,
    url: str,
    _function: Callable[..., Any],
    qualified_name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    return _function(_engine, *args, **kwargs)


def cached(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`function(engine, *args, **kwargs)`, a read-only `pricing_core` query, through
    `st.cache_data` (TTL CACHE_TTL_SECONDS), keyed by the database URL, the function
    and its arguments (the viewer among them, so nobody gets an answer computed for
    someone else). PricingError is shown with `st.error` and stops the page."""
    try:
        return _read(function, args, kwargs)
    except PricingError as exc:
        st.error(str(exc))
        st.stop()
        raise


def _read(function: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    return _run_cached(  # type: ignore[no-any-return]
        engine(),
        get_settings().database_url,
        function,
        f"{function.__module__}.{function.__qualname__}",
        args,
        kwargs,
    )


def clear_cached() -> None:
    """Forget cached query results (call after every write)."""
    _run_cached.clear()


# ---------------------------------------------------------------- shared widgets


def grace_banner(viewer: Principal) -> None:
    """While the account is in its enforcement grace period: when refusals start, and
    what would be refused now (`metering.grace`)."""
    try:
        grace = _read(grace_status, (viewer.account_id,), {})
    except PricingError:
        return
    if grace is None:
        return
    starts = f"Spending limits are enforced from {_format.when(grace.ends_at)}."
    if grace.would_refuse:
        st.warning(
            f"{starts} Until then nothing is refused, but requests would be refused now: "
            + " ".join(f"{reason}." for reason in grace.would_refuse),
            icon=":material/hourglass_top:",
        )
    else:
        st.info(f"{starts} Nothing would be refused now.", icon=":material/hourglass_top:")


def topup_banner(viewer: Principal) -> None:
    """When payments failing turned the account's auto top-up off: why, and where to
    fix it."""
    try:
        topup = cached(autotopup.get_auto_topup, viewer)
    except PricingError:
        return
    if topup is not None and topup.disabled_reason:
        st.error(
            f"Auto top-up is off: {topup.disabled_reason}. Update your card on the "
            "Billing page, then turn it on again.",
            icon=":material/credit_card_off:",
        )


def banner(viewer: Principal) -> None:
    """The banners on every page (via `principal()`): the grace period, auto top-up
    turned off, and the budget while a threshold is crossed this month. A newly
    crossed threshold is recorded (a write, so never behind the cache)."""
    grace_banner(viewer)
    topup_banner(viewer)
    try:
        status = cached(budgets.budget_status, viewer)
        if status.crossed:
            status = budgets.record_budget_alerts(engine(), viewer)
    except PricingError:
        return
    if not status.crossed or status.budget.monthly_limit is None:
        return
    top = status.crossed[-1]
    text = (
        f"You have used {status.percent_used}% of your monthly budget "
        f"({_format.amount(status.spend)} of {_format.amount(status.budget.monthly_limit)}, "
        f"{status.period}); alert threshold {top}% reached."
    )
    if status.blocked:
        st.error(text + " New requests are blocked until next month or a higher budget.",
                 icon=":material/block:")  # fmt: skip
    elif top >= 100:
        st.error(text, icon=":material/warning:")
    else:
        st.warning(text, icon=":material/notifications:")


def sidebar_balance(viewer: Principal) -> None:
    """The viewer's balance in the sidebar of every page, coloured by its state (the
    low and critical thresholds), with the Buy credits link."""
    try:
        wallet = _read(wallet_for, (viewer,), {})
    except PricingError:  # no wallet yet: the page itself says so
        return
    state = balance_state(wallet.balance)
    with st.sidebar:
        st.markdown(
            f"Balance :{_format.BALANCE_COLOURS[state]}[**{_format.amount(wallet.balance)}**]"
            f"  \n{_format.BALANCE_BADGES[state]}"
        )
        buy_credits_link(placeholder=False)


def billing_enabled() -> bool:
    """Whether purchases are offered to the viewer's account (PRICING_ENABLE_BILLING and
    PRICING_BILLING_ROLLOUT)."""
    try:
        return _read(billing_enabled_for, (_current().account_id,), {})
    except PricingError:
        return False


def buy_credits_link(*, placeholder: bool = True) -> None:
    """A link to the Buy credits page; nothing when purchases are not offered to the
    viewer (`billing_enabled`). Outside the navigation (a page run on its own) a
    disabled button stands in, unless `placeholder` is False."""
    if not billing_enabled():
        return
    try:
        st.page_link("pages/buy_credits.py", label="Buy credits", icon=":material/add_card:")
    except st.errors.StreamlitAPIException:
        if placeholder:
            st.button("Buy credits", icon=":material/add_card:", disabled=True)


def today() -> date:
    """Today in the configured time zone."""
    return datetime.now(get_settings().tz).date()


def date_range(
    key: str,
    *,
    first: date | None = None,
    last: date | None = None,
    days: int = 30,
    label: str = "Date range",
) -> tuple[date, date]:
    """A calendar range (both days included), by default the last `days` days up to
    `last` (default today), not before `first` (the first day with data, if known).
    Stops the page until the second day is picked."""
    end = last or today()
    start = end - timedelta(days=days - 1)
    if first is not None:
        start = max(first, start)
    picked = st.date_input(
        label,
        value=(start, end),
        min_value=first,
        max_value=end if first is not None else None,
        key=key,
        format="YYYY-MM-DD",
    )
    if isinstance(picked, Sequence) and len(picked) == 2:
        return picked[0], picked[1]
    st.info("Pick the last day of the range.")
    st.stop()
    raise AssertionError("unreachable")


def choice(container: Any, label: str, options: type[E], *, key: str) -> E:
    """A segmented control over a StrEnum; the first member when nothing is selected."""
    members = list(options)
    picked = container.segmented_control(
        label, members, default=members[0], format_func=lambda m: str(m).title(), key=key
    )
    return members[0] if picked is None else options(picked)


def granularity(key: str) -> Granularity:
    return choice(st, "Granularity", Granularity, key=key)


def revenue_series_chart(
    viewer: Principal, *, by: str, title: str, key: str, **window: Any
) -> None:
    """Usage revenue per period, stacked by `by` (model, provider or operation), for the
    admin's `window` (start, end, granularity)."""
    series = cached(revenue.revenue_series, viewer, by=by, **window)
    st.plotly_chart(_charts.bar_chart(series, value="usage_revenue", title=title), key=key)


def table(
    rows: list[dict[str, Any]], *, empty: str = "Nothing in this range.", **kwargs: Any
) -> None:
    """A read-only table (or the `empty` caption). Give numbers raw (int counts,
    Decimal USD, Decimal percents in a column named with "%"): they are formatted by
    `_format.number_columns` and sort as numbers; text columns stay as given."""
    if not rows:
        st.caption(empty)
        return
    config = _format.number_columns(rows) | kwargs.pop("column_config", {})
    st.dataframe(rows, hide_index=True, width="stretch", column_config=config, **kwargs)


def redirect(url: str, *, label: str) -> None:
    """Send the browser to `url` (an external page such as Stripe Checkout), with a
    link to click if the browser does not follow."""
    st.link_button(label, url, type="primary")
    st.markdown(
        f'<meta http-equiv="refresh" content="0; url={html.escape(url, quote=True)}">',
        unsafe_allow_html=True,
    )
