"""Shared page plumbing: the engine, the viewer, the demo sidebar, caching, formatting.

Pages call `setup()` (via app.py), then `principal()`, then one or two
`pricing_core` functions (through `cached(...)`), then render. No SQL and no money
arithmetic here.
"""

from __future__ import annotations

import contextlib
import html
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st
from sqlalchemy import Engine

from pages import _signin
from pricing_core import analytics
from pricing_core.access import auth
from pricing_core.adapters.storage import open_database
from pricing_core.billing import checkout
from pricing_core.config import get_settings
from pricing_core.domain.errors import PricingError
from pricing_core.domain.money import format_tokens, format_usd, format_usd_total
from pricing_core.ledger import wallets as ledger
from pricing_core.safety import demo_enabled

T = TypeVar("T")
CACHE_TTL_SECONDS = 60
PAGES_DIR = Path(__file__).resolve().parent
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
    from pricing_core.demo.seed import DatabaseNotEmpty, seed_demo

    eng = engine()
    if auth.list_accounts(eng):
        return
    with _seed_lock, st.spinner("First start: creating demo accounts and 90 days of usage..."):
        if auth.list_accounts(eng):
            return
        with contextlib.suppress(DatabaseNotEmpty):  # another session seeded it meanwhile
            seed_demo(eng)
    st.cache_data.clear()


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


def principal(*, show_banner: bool = True) -> auth.Principal:
    """The viewer, and the budget banner above the page. Stops the page with a
    message if there is no viewer."""
    try:
        viewer = _current()
    except PricingError as exc:
        st.error(str(exc))
        st.stop()
        raise
    if show_banner:
        banner(viewer)
    return viewer


# ---------------------------------------------------------------- cached queries


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _run_cached(
    _engine: Engine, url: str, module: str, name: str, args: tuple, kwargs: dict[str, Any]
) -> Any:
    import importlib

    function = getattr(importlib.import_module(module), name)
    return function(_engine, *args, **kwargs)


def cached(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`function(engine, *args, **kwargs)` through `st.cache_data` (TTL
    CACHE_TTL_SECONDS), keyed by the database URL, the function and its arguments.
    PricingError is shown with `st.error` and stops the page."""
    try:
        return _run_cached(
            engine(),
            get_settings().database_url,
            function.__module__,
            function.__name__,
            args,
            kwargs,
        )
    except PricingError as exc:
        st.error(str(exc))
        st.stop()
        raise


def clear_cached() -> None:
    """Forget cached query results (call after every write)."""
    _run_cached.clear()


# ---------------------------------------------------------------- shared widgets


def banner(viewer: auth.Principal) -> None:
    """The budget banner, on every page (via `principal()`) while a threshold is
    crossed this month."""
    from pricing_core.limits import budgets

    try:
        status = cached(budgets.record_budget_alerts, viewer)
    except PricingError:
        return
    if not status.crossed or status.budget.monthly_limit is None:
        return
    top = status.crossed[-1]
    text = (
        f"You have used {status.percent_used}% of your monthly budget "
        f"({usd(status.spend)} of {usd(status.budget.monthly_limit)}, {status.period}); "
        f"alert threshold {top}% reached."
    )
    if status.blocked:
        st.error(text + " New requests are blocked until next month or a higher budget.",
                 icon=":material/block:")  # fmt: skip
    elif top >= 100:
        st.error(text, icon=":material/warning:")
    else:
        st.warning(text, icon=":material/notifications:")


BUY_CREDITS_PAGES = ("buy_credits.py", "credits.py", "buy.py")


def buy_credits_link() -> None:
    """A link to the Buy credits page if it exists, else a disabled note; nothing at
    all when purchases are switched off (PRICING_ENABLE_BILLING)."""
    if not get_settings().enable_billing:
        return
    for name in BUY_CREDITS_PAGES:
        if (PAGES_DIR / name).exists():
            try:
                st.page_link(f"pages/{name}", label="Buy credits", icon=":material/add_card:")
                return
            except st.errors.StreamlitAPIException:
                break  # the page exists but is not in the navigation
    st.button("Buy credits", icon=":material/add_card:", disabled=True, help="Coming soon")


# ---------------------------------------------------------------- formatting


def usd(amount: Any) -> str:
    """A total: 2 decimals with thousands separators ($1,234.50)."""
    return format_usd(amount, total=True)


def usd_spend(amount: Any) -> str:
    """A total that must not read $0.00 when something was spent: 2 decimals, except
    sub-cent totals, which keep their significant digits ($0.0026)."""
    return format_usd_total(amount)


def usd_small(amount: Any) -> str:
    """A single charge: sub-cent amounts keep 2 significant digits ($0.00042)."""
    return format_usd(amount)


def usd_or_na(amount: Any) -> str:
    return "n/a" if amount is None else usd_spend(amount)


def tokens(count: Any) -> str:
    return format_tokens(count)


def when(value: datetime) -> str:
    """A time in the configured zone (analytics returns them converted)."""
    return f"{value:%Y-%m-%d %H:%M} {value.tzname()}"


def money_column(label: str, **kwargs: Any) -> Any:
    return st.column_config.TextColumn(label, alignment="right", **kwargs)


def time_column(label: str, **kwargs: Any) -> Any:
    return st.column_config.DatetimeColumn(
        label, format="YYYY-MM-DD HH:mm", timezone=get_settings().timezone, **kwargs
    )


def zone() -> str:
    return get_settings().timezone


def date_range(label: str, span: tuple[Any, Any], *, key: str, days: int = 90) -> tuple[Any, Any]:
    """A calendar range input within `span` (first, last day with data), by default
    the last `days` days of it. Returns (start, end), both included."""
    from datetime import timedelta

    first, last = span
    default_start = max(first, last - timedelta(days=days - 1))
    picked = st.date_input(
        label, value=(default_start, last), min_value=first, max_value=last, key=key
    )
    if isinstance(picked, tuple) and len(picked) == 2:
        return picked[0], picked[1]
    if isinstance(picked, tuple) and len(picked) == 1:
        return picked[0], picked[0]  # the second click is still to come
    return picked, picked


# ---------------------------------------------------------------- tables


ENTRY_COLUMNS = {
    "Type": st.column_config.TextColumn("Type", width="small"),
    "Description": st.column_config.TextColumn("Description", width="large"),
    "Amount": money_column("Amount"),
    "Balance after": money_column("Balance after"),
}


def entries_frame(entries: Any) -> Any:
    """Ledger entries (newest first) as a display table with formatted amounts."""
    import pandas as pd

    from pricing_core.analytics import describe_entry

    return pd.DataFrame(
        {
            "When": [when(e.created_at) for e in entries],
            "Type": [str(e.kind) for e in entries],
            "Description": [describe_entry(e) for e in entries],
            "Amount": [usd_small(e.amount) for e in entries],
            "Balance after": [usd(e.balance_after) for e in entries],
        }
    )


MODEL_COLUMNS = {
    "Requests": st.column_config.NumberColumn("Requests", format="localized"),
    "Input tokens": st.column_config.NumberColumn("Input tokens", format="localized"),
    "Output tokens": st.column_config.NumberColumn("Output tokens", format="localized"),
    "Cost": money_column("Cost"),
    "Avg cost / request": money_column("Avg cost / request"),
}


def models_frame(table: Any) -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "Model": table["model"],
            "Provider": table["provider"],
            "Requests": table["requests"],
            "Input tokens": table["input_tokens"],
            "Output tokens": table["output_tokens"],
            "Cost": [usd(v) if v >= 1 else usd_small(v) for v in table["cost"]],
            "Avg cost / request": [usd_small(v) for v in table["avg_cost"]],
        }
    )


# ---------------------------------------------------------------- charts


PALETTE = (
    "#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2",
    "#B279A2", "#EECA3B", "#9D755D", "#FF9DA6", "#BAB0AC",
)  # fmt: skip


def colors(keys: Any) -> dict[str, str]:
    """The same colour for the same model/operation in every chart of a page."""
    return {key: PALETTE[i % len(PALETTE)] for i, key in enumerate(sorted(set(keys)))}


def stacked_chart(
    series: Any, *, measure: str, title: str, palette: dict[str, str] | None = None
) -> Any:
    """A stacked bar chart of `analytics.usage_series` output (period, key, value)."""
    import plotly.express as px

    frame = series.assign(label=analytics.value_labels(series["value"], measure))
    figure = px.bar(
        frame,
        x="period",
        y="value",
        color="key",
        color_discrete_map=palette or colors(frame["key"]),
        category_orders={"key": sorted(palette or colors(frame["key"]))},
        custom_data=["label", "key"],
        title=title,
        labels={"period": "", "value": "USD" if str(measure) == "cost" else "tokens", "key": ""},
    )
    figure.update_traces(
        hovertemplate="%{x|%Y-%m-%d}<br>%{customdata[1]}: %{customdata[0]}<extra></extra>"
    )
    figure.update_layout(
        barmode="stack",
        legend={"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        height=380,
    )
    if str(measure) == "cost":
        figure.update_yaxes(tickprefix="$")
    return figure


def share_chart(
    share: Any, *, measure: str, title: str, palette: dict[str, str] | None = None
) -> Any:
    """A donut of `analytics.usage_share` output (key, value, percent)."""
    import plotly.express as px

    frame = share.assign(label=analytics.value_labels(share["value"], measure))
    figure = px.pie(
        frame, names="key", values="value", hole=0.5, title=title, custom_data=["label"]
    )
    mapping = palette or colors(frame["key"])
    figure.update_traces(
        hovertemplate="%{label}: %{customdata[0]} (%{percent})<extra></extra>",
        textinfo="percent",
        sort=False,
        marker={"colors": [mapping[k] for k in frame["key"]]},
    )
    figure.update_layout(margin={"l": 10, "r": 10, "t": 50, "b": 10}, height=320)
    return figure


# ---------------------------------------------------------------- chats


def chats_frame(table: Any) -> Any:
    """`analytics.list_chats` output for display: numeric cost and tokens (so the
    columns sort as numbers), formatted by `chat_columns`."""
    import pandas as pd

    return pd.DataFrame(
        {
            "Chat": table["title"],
            "Requests": table["requests"],
            "Tokens": table["tokens"],
            "Cost": table["cost"],
            "First activity": table["first_at"],
            "Last activity": table["last_at"],
        }
    )


def chat_columns(table: Any) -> dict[str, Any]:
    from pricing_core.domain.money import printf_usd_format

    return {
        "Chat": st.column_config.TextColumn("Chat", width="large"),
        "Requests": st.column_config.NumberColumn("Requests", format="localized"),
        "Tokens": st.column_config.NumberColumn("Tokens", format="localized"),
        "Cost": st.column_config.NumberColumn("Cost", format=printf_usd_format(table["cost"])),
        "First activity": time_column("First activity"),
        "Last activity": time_column("Last activity"),
    }


def requests_frame(requests: Any) -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "Time": [when(t) for t in requests["created_at"]],
            "Model": requests["model"],
            "Operation": requests["operation"],
            "Input tokens": requests["input_tokens"],
            "Output tokens": requests["output_tokens"],
            "Cost": [usd_small(v) for v in requests["cost"]],
            "How it was charged": requests["explanation"],
        }
    )


# ---------------------------------------------------------------- transactions


LEDGER_COLUMNS = {
    "Type": st.column_config.TextColumn("Type", width="small"),
    "Description": st.column_config.TextColumn("Description", width="large"),
    "Amount": money_column("Amount"),
    "Balance after": money_column("Balance after"),
}


def ledger_rows_frame(rows: Any) -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "When": [when(t) for t in rows["created_at"]],
            "Type": rows["kind"],
            "Description": rows["description"],
            "Amount": [usd_small(v) for v in rows["amount"]],
            "Balance after": [usd(v) for v in rows["balance_after"]],
        }
    )


def group_label(groups: Any) -> Callable[[int], str]:
    labels = {
        g: f"{day}: {description} ({usd_small(amount)})"
        for g, day, description, amount in zip(
            groups["group"], groups["day"], groups["description"], groups["amount"], strict=True
        )
    }
    return lambda g: labels.get(g, str(g))


def group_entries_frame(chosen: Any) -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "When": [when(t) for t in chosen["created_at"]],
            "Type": chosen["kind"],
            "Description": [f"request {r}" if r else "" for r in chosen["reference"]],
            "Amount": [usd_small(v) for v in chosen["amount"]],
            "Balance after": [usd(v) for v in chosen["balance_after"]],
        }
    )


def choice(container: Any, label: str, options: Any, *, key: str) -> Any:
    """A segmented control over an enum; the first member when nothing is selected."""
    members = list(options)
    picked = container.segmented_control(
        label, members, default=members[0], format_func=lambda m: str(m).title(), key=key
    )
    return members[0] if picked is None else options(picked)


def _current() -> auth.Principal:
    """The signed-in user (OIDC claims), else demo mode's choice."""
    return auth.current_principal(
        engine(),
        demo_account=st.session_state.get("demo_account"),
        demo_role=_demo_role(),
        claims=_signin.claims(),
        demo=demo_enabled(),
    )


def _demo_role() -> str:
    return "admin" if demo_enabled() and st.session_state.get("demo_admin") else "member"


def viewer_is_admin() -> bool:
    """True when the current viewer is an admin (decides whether the Admin section
    is shown; every admin page and function checks the role again itself)."""
    try:
        return _current().is_admin
    except PricingError:
        return False


def requests_table(requests: Any) -> None:
    """A chat's requests as a static table, so the explanation of each charge wraps
    instead of being cut off."""
    frame = requests_frame(requests)
    right = ["Input tokens", "Output tokens", "Cost"]
    styled = (
        frame.style.hide(axis="index")
        .format({"Input tokens": tokens, "Output tokens": tokens})
        .set_properties(subset=right, **{"text-align": "right", "white-space": "nowrap"})
        .set_properties(subset=["Time", "Model", "Operation"], **{"white-space": "nowrap"})
    )
    st.table(styled)


# ---------------------------------------------------------------- buy credits


def package_card(package: checkout.CreditPackage) -> None:
    """One credit pack: name (and the popular badge), price, credit, bonus, price per $1."""
    badge = " :blue-badge[Most popular]" if package.popular else ""
    st.markdown(f"#### {package.name}{badge}")
    st.markdown(f"## {format_usd(package.price, total=True)}")
    st.markdown(f"**{format_usd(package.total_credit, total=True)}** of credit")
    if package.bonus:
        st.caption(f"includes a {format_usd(package.bonus, total=True)} volume bonus")
    else:
        st.caption("no bonus")
    st.caption(f"${package.price_per_credit_dollar} per $1 of credit")


def show_fulfilment(result: checkout.Fulfilment) -> None:
    """The outcome of a checkout, for the buyer."""
    balance = format_usd(result.balance, total=True)
    credited = format_usd(result.credited, total=True)
    if result.is_credited:
        st.success(f"Payment received: {credited} of credit added. New balance: {balance}.")
    elif result.outcome == checkout.Outcome.PROCESSING:
        st.info("Payment processing: your credit arrives as soon as the payment clears.")
    elif result.outcome == checkout.Outcome.NOT_PAID:
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
        "Paid": f"{format_usd(purchase.price, total=True)} {purchase.currency.upper()}",
        "Credit": format_usd(purchase.credit, total=True),
        "Status": status,
        "Refunded": format_usd(purchase.refunded, total=True) if purchase.refunded else "",
        "Receipt": purchase.receipt_url,
    }


def owed_notice(wallet: ledger.Wallet) -> None:
    """When a refund or dispute took the balance below zero: say the account owes credit."""
    if wallet.balance < 0:
        owed = format_usd(wallet.balance, total=True).removeprefix("-")
        st.warning(
            f"Your account owes {owed} of credit: a refund or dispute took back credits "
            "that had already been used. Buy credits to continue using the service.",
            icon=":material/money_off:",
        )


def redirect(url: str, *, label: str) -> None:
    """Send the browser to `url` (an external page such as Stripe Checkout), with a
    link to click if the browser does not follow."""
    st.link_button(label, url, type="primary")
    st.markdown(
        f'<meta http-equiv="refresh" content="0; url={html.escape(url, quote=True)}">',
        unsafe_allow_html=True,
    )
