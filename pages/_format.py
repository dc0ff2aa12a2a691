"""How pages show values: money, tokens, times, percents, table columns, and the rows
of the tables built from `pricing_core` views. Formatting only: no SQL, no money
arithmetic (amounts arrive computed; `pricing_core.domain.money` formats them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import streamlit as st

from pricing_core.analytics import BalanceState, describe_entry
from pricing_core.config import get_settings
from pricing_core.domain.money import (
    format_money,
    format_rate,
    format_tokens,
    printf_usd_format,
)


def amount(value: Decimal | None, *, missing: str = "-") -> str:
    """Decimal USD for people, in the display unit (`money.DisplayUnit.format`: USD
    by `format_money`, the one rule, or credits); `missing` when None."""
    return missing if value is None else get_settings().display_unit.format(value)


def paid(value: Decimal) -> str:
    """Real money a person pays or is refunded (a pack's price): always USD."""
    return format_money(value)


def unit_name() -> str:
    """ "credits" or "USD": the display unit, for labels."""
    return get_settings().display_unit.name


# A balance's state as a coloured badge, and the colour of the figure itself.
BALANCE_BADGES = {
    BalanceState.OK: ":green-badge[:material/check_circle: Healthy]",
    BalanceState.LOW: ":orange-badge[:material/warning: Low balance]",
    BalanceState.CRITICAL: ":red-badge[:material/error: Critical: almost empty]",
    BalanceState.NEGATIVE: ":red-badge[:material/error: Owes credit]",
}
BALANCE_COLOURS = {
    BalanceState.OK: "green",
    BalanceState.LOW: "orange",
    BalanceState.CRITICAL: "red",
    BalanceState.NEGATIVE: "red",
}


def rate(value: Decimal, unit: str) -> str:
    """A price per unit, exact (`money.format_rate`): "$0.8995/$1 of credit"."""
    return format_rate(value, unit)


def tokens(count: Any) -> str:
    return format_tokens(count)


def pct(value: Decimal | None) -> str:
    return "-" if value is None else f"{value}%"


def zone() -> str:
    """The configured time zone's name (calendar days and months are taken there)."""
    return get_settings().timezone


def when(value: datetime | None, *, seconds: bool = False) -> str:
    """A time in the configured zone, with the zone's abbreviation; "" for None."""
    if value is None:
        return ""
    local = value.astimezone(get_settings().tz)
    return local.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def money_column(label: str, **kwargs: Any) -> Any:
    return st.column_config.TextColumn(label, alignment="right", **kwargs)


def time_column(label: str, **kwargs: Any) -> Any:
    return st.column_config.DatetimeColumn(
        label, format="YYYY-MM-DD HH:mm", timezone=get_settings().timezone, **kwargs
    )


def count_column(label: str) -> Any:
    return st.column_config.NumberColumn(label, format="localized")


def number_columns(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Column settings for a table of raw values, so numbers sort as numbers and sit
    on the right: whole numbers as counts, Decimal amounts as USD with the decimals
    the column needs (`printf_usd_format`), and a Decimal column whose name has "%"
    as a percentage. Text columns are left as they are."""
    config: dict[str, Any] = {}
    for name in rows[0]:
        values = [r[name] for r in rows if r[name] is not None]
        if not values:
            continue
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            config[name] = count_column(name)
        elif all(isinstance(v, Decimal) for v in values):
            fmt = "%.2f%%" if "%" in name else printf_usd_format(values)
            config[name] = st.column_config.NumberColumn(name, format=fmt)
    return config


# ---------------------------------------------------------------- ledger entries


ENTRY_COLUMNS = {
    "Type": st.column_config.TextColumn("Type", width="small"),
    "Description": st.column_config.TextColumn("Description", width="large"),
    "Amount": money_column("Amount"),
    "Balance after": money_column("Balance after"),
}


def entries_frame(entries: Any, descriptions: Sequence[str] = ()) -> pd.DataFrame:
    """Ledger entries (newest first, `analytics.overview`) as a display table, with
    their descriptions (`Overview.entry_descriptions`; else `describe_entry`)."""
    return pd.DataFrame(
        {
            "When": [when(e.created_at) for e in entries],
            "Type": [str(e.kind) for e in entries],
            "Description": list(descriptions) or [describe_entry(e) for e in entries],
            "Amount": [amount(e.amount) for e in entries],
            "Balance after": [amount(e.balance_after) for e in entries],
        }
    )


def ledger_rows_frame(rows: Any, *, description: Callable[[Any], Any] | None = None) -> Any:
    """Ledger rows of `analytics.ledger_view` (a DataFrame) as a display table, with
    the value date (when the usage happened) beside when it was posted;
    `description(rows)` overrides the description column."""
    return pd.DataFrame(
        {
            "Value date": [when(t) for t in rows["value_at"]],
            "Posted": [when(t) for t in rows["created_at"]],
            "Type": rows["kind"],
            "Description": rows["description"] if description is None else description(rows),
            "Amount": [amount(v) for v in rows["amount"]],
            "Balance after": [amount(v) for v in rows["balance_after"]],
        }
    )


# ---------------------------------------------------------------- admin tables


def _rates(rates: Any) -> str:
    if rates is None:
        return "-"
    cached = (
        ""
        if rates.cache_read_mtok is None
        else f" · cached {format_rate(rates.cache_read_mtok, 'MTok')}"
    )
    return (
        f"{format_rate(rates.input_mtok, 'MTok')} in · "
        f"{format_rate(rates.output_mtok, 'MTok')} out{cached}"
    )


def price_row(view: Any) -> dict[str, Any]:
    """A price book row (`admin.prices.ModelPriceView`), rates per million tokens."""
    return {
        "model": f"{view.provider}/{view.model}",
        "requests (30 d)": view.requests_30d,
        "list price /MTok": _rates(view.listed) + (" (tiered)" if view.tiered else ""),
        "markup": f"{view.markup.normalize():f}",
        "override /MTok": _rates(view.override) if view.override else "",
        "effective /MTok": _rates(view.effective) if view.listed else "not in catalog",
        "since": when(view.effective_from, seconds=True)
        if view.effective_from
        else "default markup",
        "scheduled": "; ".join(
            f"{when(s.effective_from, seconds=True)}: x{s.markup.normalize():f}"
            for s in view.scheduled
        ),
    }


def preview_rows(preview: Any) -> list[dict[str, Any]]:
    """A reprice preview (`admin.prices.RepricePreview`) per model, then the total."""
    rows = [
        {
            "model": f"{r.provider}/{r.model}",
            "requests": r.requests,
            "charged": r.current,
            "under the new price": r.proposed,
            "difference": r.delta,
        }
        for r in preview.rows
    ]
    rows.append(
        {
            "model": "total",
            "requests": sum(r.requests for r in preview.rows),
            "charged": preview.current,
            "under the new price": preview.proposed,
            "difference": preview.delta,
        }
    )
    return rows


def usage_rows(rows: Sequence[Any], dimension: str) -> list[dict[str, Any]]:
    """Breakdown rows (`analytics.revenue.BreakdownRow`) for the usage tables."""
    return [
        {
            dimension: r.label,
            "requests": r.requests,
            "input tokens": r.input_tokens,
            "output tokens": r.output_tokens,
            "charged": r.usage_revenue,
            "provider cost": r.provider_cost,
            "margin %": r.margin_pct,
        }
        for r in rows
    ]


def _compact(values: dict[str, Any] | None) -> str:
    return "" if not values else ", ".join(f"{k}={v}" for k, v in values.items())


def audit_rows(entries: Sequence[Any]) -> list[dict[str, Any]]:
    """Audit log entries (`adapters.audit.AuditEntry`) for the audit table."""
    return [
        {
            "time": when(e.created_at, seconds=True),
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


def account_rows(accounts: Sequence[Any]) -> list[dict[str, Any]]:
    """Accounts found (`admin.accounts.AccountSummary`) for the search table."""
    return [
        {
            "account": a.account_id,
            "name": a.name,
            "emails": ", ".join(a.emails),
            "balance": a.balance,
            "available": a.available,
            "held": a.held,
            "spend this month": a.spend_this_month,
            "plan": a.plan,
        }
        for a in accounts
    ]


def ledger_rows(entries: Sequence[Any]) -> list[dict[str, Any]]:
    """One account's ledger entries for the admin's ledger table."""
    return [
        {
            "time": when(e.created_at, seconds=True),
            "kind": e.kind,
            "amount": e.amount,
            "balance after": e.balance_after,
            "reference": e.reference or "",
            "reason": e.reason or "",
            "actor": e.actor or "",
        }
        for e in entries
    ]


def account_usage_rows(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """One account's daily usage (`admin.accounts.UsageRow`)."""
    return [
        {
            "day": u.day.isoformat(),
            "model": u.model,
            "operation": u.operation,
            "requests": u.requests,
            "input tokens": u.input_tokens,
            "output tokens": u.output_tokens,
            "charged": u.price,
            "provider cost": u.provider_cost,
        }
        for u in rows
    ]


def hold_rows(holds: Sequence[Any]) -> list[dict[str, Any]]:
    """One account's active holds (`admin.accounts.HoldRow`)."""
    return [
        {
            "hold": h.id,
            "amount": h.amount,
            "request": h.request_id or "",
            "placed": when(h.created_at, seconds=True),
            "expires": when(h.expires_at, seconds=True),
        }
        for h in holds
    ]


def grant_rows(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """A bulk grant's report, one row per target (`admin.accounts.GrantRow`)."""
    return [
        {
            "row": r.row,
            "target": r.target,
            "account": r.account_id or "",
            "status": str(r.status),
            "detail": r.detail,
        }
        for r in rows
    ]


def top_account_rows(accounts: Sequence[Any]) -> list[dict[str, Any]]:
    """The top accounts by spend (`analytics.revenue.TopAccount`)."""
    return [
        {
            "account": f"{a.name} ({a.account_id})",
            "spend": a.spend,
            "provider cost": a.provider_cost,
            "requests": a.requests,
            "balance": a.balance,
        }
        for a in accounts
    ]


# ---------------------------------------------------------------- chats


def chats_frame(table: pd.DataFrame) -> pd.DataFrame:
    """`analytics.list_chats` for display: numeric cost and tokens, so the columns
    sort as numbers (`chat_columns` formats them)."""
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


def chat_columns(table: pd.DataFrame) -> dict[str, Any]:
    return {
        "Chat": st.column_config.TextColumn("Chat", width="large"),
        "Requests": count_column("Requests"),
        "Tokens": count_column("Tokens"),
        "Cost": st.column_config.NumberColumn("Cost", format=printf_usd_format(table["cost"])),
        "First activity": time_column("First activity"),
        "Last activity": time_column("Last activity"),
    }


def cohort_rows(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """`limits.rollout.CohortRow`s for the Integrity page's rollout table."""
    return [
        {
            "account": r.account_id,
            "created": when(r.created_at),
            "enforcement": str(r.enforcement),
            "grace until": when(r.grace_ends_at) if r.grace_ends_at else "-",
            "billing": "on" if r.billing else "off",
        }
        for r in rows
    ]


def notification_rows(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """`notify.deliver.NotificationRow`s for the Integrity page's log."""
    return [
        {
            "id": r.id,
            "created": when(r.created_at),
            "kind": r.kind,
            "account": r.account_id or "admins",
            "status": r.status,
            "attempts": r.attempts,
            "sent": when(r.sent_at) if r.sent_at else "-",
            "to": r.recipients or "-",
            "last error": r.last_error or "",
        }
        for r in rows
    ]


def shape_rows(results: Sequence[Any]) -> list[dict[str, Any]]:
    """The provider-shape table (`ShapeResult`s) as rows: payload, expected and ours."""
    return [
        {
            "check": r.case.name,
            "model": r.model or "-",
            "tier": r.case.service_tier,
            "published": r.case.expected,
            "ours": r.cost,
            "result": "ok" if r.ok else "MISMATCH",
            "how": r.explanation,
        }  # fmt: skip
        for r in results
    ]
