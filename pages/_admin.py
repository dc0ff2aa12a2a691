"""Plumbing shared by the admin pages: the admin gate, the pages list, date pickers,
money columns and charts. No SQL and no money arithmetic here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from pages import _ui
from pricing_core.access import auth
from pricing_core.adapters import audit
from pricing_core.config import get_settings
from pricing_core.domain.errors import PermissionDenied
from pricing_core.domain.money import format_usd
from pricing_core.domain.periods import Granularity
from pricing_core.safety import demo_enabled

ADMIN_PAGES = (
    ("pages/admin_revenue.py", "Revenue", ":material/monitoring:"),
    ("pages/admin_usage.py", "Usage explorer", ":material/query_stats:"),
    ("pages/admin_prices.py", "Price book", ":material/sell:"),
    ("pages/admin_accounts.py", "Accounts", ":material/manage_accounts:"),
    ("pages/admin_integrity.py", "Integrity", ":material/verified:"),
)


def admin_pages() -> list[Any]:
    """The Admin section of the navigation (only built for admins)."""
    return [st.Page(path, title=title, icon=icon) for path, title, icon in ADMIN_PAGES]


def admin_principal() -> auth.Principal:
    """The viewer, who must be an admin: otherwise the page says so and stops.

    The pricing_core functions check the role again; this gate only keeps a member
    who types an admin page's URL from seeing an empty shell.
    """
    viewer = _ui.principal()
    try:
        auth.require_admin(viewer)
    except PermissionDenied as exc:
        st.error(f"Admins only: {exc}")
        st.stop()
        raise
    return viewer


def date_range(key: str, *, last_day: date | None, days: int = 30) -> tuple[date, date]:
    """A date-range picker (inclusive), by default the `days` days ending `last_day`."""
    end = last_day or date.today()
    picked = st.date_input(
        "Date range", value=(end - timedelta(days=days - 1), end), key=key, format="YYYY-MM-DD"
    )
    if isinstance(picked, Sequence) and len(picked) == 2:
        return picked[0], picked[1]
    st.info("Pick the last day of the range.")
    st.stop()
    raise AssertionError("unreachable")


def granularity(key: str) -> Granularity:
    return Granularity(
        st.segmented_control("Granularity", [g.value for g in Granularity], default="day", key=key)
        or "day"
    )


def usd(amount: Decimal | None) -> str:
    return "-" if amount is None else format_usd(amount)


def usd_total(amount: Decimal | None) -> str:
    return "-" if amount is None else format_usd(amount, total=True)


def pct(value: Decimal | None) -> str:
    return "-" if value is None else f"{value}%"


def bar_chart(
    points: Iterable[Any], *, value: str, title: str, x: str = "period", key: str = "key"
) -> go.Figure:
    """Stacked bars of `value` per `x`, one trace per `key` (dataclass attributes)."""
    traces: dict[str, tuple[list[Any], list[Any]]] = {}
    for p in points:
        xs, ys = traces.setdefault(getattr(p, key), ([], []))
        xs.append(getattr(p, x))
        ys.append(getattr(p, value))
    fig = go.Figure([go.Bar(name=k, x=xs, y=ys) for k, (xs, ys) in traces.items()])
    fig.update_layout(
        barmode="stack",
        title=title,
        yaxis_tickformat="$,.2f",
        legend_orientation="h",
        margin={"t": 40, "b": 10},
        height=360,
    )
    return fig


def table(rows: list[dict[str, Any]], **kwargs: Any) -> None:
    """A read-only table of already formatted rows (or a friendly empty state)."""
    if not rows:
        st.caption("Nothing in this range.")
        return
    st.dataframe(rows, hide_index=True, width="stretch", **kwargs)


@st.cache_data(ttl=60, show_spinner=False)
def _cached_call(
    module: str,
    name: str,
    _engine: Any,
    engine_url: str,
    principal: auth.Principal,
    kwargs: dict[str, Any],
) -> Any:
    import importlib

    return getattr(importlib.import_module(f"pricing_core.{module}"), name)(
        _engine, principal, **kwargs
    )


def cached(module: str, name: str, principal: auth.Principal, **kwargs: Any) -> Any:
    """Call the read-only admin query `pricing_core.<module>.<name>(engine, principal,
    **kwargs)`, cached for 60 s (cleared by `clear_cache()` after every admin write).
    The role check runs inside the function, so a member never gets a cached answer
    computed for an admin: the principal is part of the cache key."""
    eng = _ui.engine()
    return _cached_call(module, name, eng, eng.url.render_as_string(), principal, kwargs)


def clear_cache() -> None:
    st.cache_data.clear()


def revenue_chart(periods: Sequence[Any]) -> go.Figure:
    """Usage revenue and provider cost (bars), margin and cash in (lines) per period."""
    xs = [p.period for p in periods]
    fig = go.Figure(
        [
            go.Bar(name="Usage revenue", x=xs, y=[p.usage_revenue for p in periods]),
            go.Bar(name="Provider cost", x=xs, y=[p.provider_cost for p in periods]),
            go.Scatter(name="Margin", x=xs, y=[p.margin for p in periods], mode="lines+markers"),
            go.Scatter(
                name="Cash in",
                x=xs,
                y=[p.cash_in for p in periods],
                mode="lines+markers",
                line={"dash": "dot"},
            ),
        ]
    )
    fig.update_layout(
        barmode="group",
        yaxis_tickformat="$,.2f",
        legend_orientation="h",
        height=380,
        margin={"t": 20, "b": 10},
    )
    return fig


def today() -> date:
    """Today in the configured time zone."""
    return datetime.now(get_settings().tz).date()


def when(moment: datetime | None) -> str:
    """A UTC timestamp shown in the configured time zone."""
    if moment is None:
        return ""
    return moment.astimezone(get_settings().tz).strftime("%Y-%m-%d %H:%M:%S")


def status_counts(rows: Iterable[Any]) -> dict[str, int]:
    return dict(Counter(str(r.status) for r in rows))


def list_audit(principal: auth.Principal, **filters: Any) -> list[audit.AuditEntry]:
    return audit.list_audit(_ui.engine(), principal, **filters)


def audit_table(entries: Sequence[audit.AuditEntry]) -> None:
    table(
        [
            {
                "time": when(e.created_at),
                "actor": e.actor,
                "action": e.action,
                "account": e.account_id or "",
                "target": e.target or "",
                "before": _compact(e.before),
                "after": _compact(e.after),
                "reason": e.reason or "",
            }
            for e in entries
        ]
    )


def _compact(values: dict[str, Any] | None) -> str:
    return "" if not values else ", ".join(f"{k}={v}" for k, v in values.items())


def _view_as(account_id: str) -> None:
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
        on_click=_view_as,
        args=(account_id,),
    ):
        st.switch_page("pages/balance.py")


def _rates(rates: Any) -> str:
    if rates is None:
        return "-"
    cached = (
        "" if rates.cache_read_mtok is None else f" · cached ${rates.cache_read_mtok.normalize():f}"
    )
    return f"${rates.input_mtok.normalize():f} in · ${rates.output_mtok.normalize():f} out{cached}"


def price_row(view: Any) -> dict[str, Any]:
    """A price book row for the table (rates per million tokens)."""
    return {
        "model": f"{view.provider}/{view.model}",
        "requests (30 d)": f"{view.requests_30d:,}",
        "list price /MTok": _rates(view.listed) + (" (tiered)" if view.tiered else ""),
        "markup": f"{view.markup.normalize():f}",
        "override /MTok": _rates(view.override) if view.override else "",
        "effective /MTok": _rates(view.effective) if view.listed else "not in catalog",
        "since": when(view.effective_from) if view.effective_from else "default markup",
        "scheduled": "; ".join(
            f"{when(s.effective_from)}: x{s.markup.normalize():f}" for s in view.scheduled
        ),
    }


def preview_rows(preview: Any) -> list[dict[str, Any]]:
    rows = [
        {
            "model": f"{r.provider}/{r.model}",
            "requests": f"{r.requests:,}",
            "charged": usd(r.current),
            "under the new price": usd(r.proposed),
            "difference": usd(r.delta),
        }
        for r in preview.rows
    ]
    rows.append(
        {
            "model": "total",
            "requests": f"{sum(r.requests for r in preview.rows):,}",
            "charged": usd(preview.current),
            "under the new price": usd(preview.proposed),
            "difference": usd(preview.delta),
        }
    )
    return rows


def usage_rows(rows: Sequence[Any], dimension: str) -> list[dict[str, Any]]:
    """Breakdown rows (`admin_revenue.BreakdownRow`) for the usage explorer's tables."""
    return [
        {
            dimension: r.label,
            "requests": f"{r.requests:,}",
            "input tokens": f"{r.input_tokens:,}",
            "output tokens": f"{r.output_tokens:,}",
            "charged": usd(r.usage_revenue),
            "provider cost": usd(r.provider_cost),
            "margin %": pct(r.margin_pct),
        }
        for r in rows
    ]
