"""Rows and charts of the Billing pages (member and admin): statements, Stripe
invoices, saved cards, top-ups and payment metrics, as display values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from pages import _format
from pricing_core.domain.plans import PAYG_CODE
from pricing_core.plans.statements import period_title


def statement_rows(records: Sequence[Any], *, with_account: bool = False) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        row = {"Account": f"{r.account_name} ({r.account_id})"} if with_account else {}
        rows.append(
            row
            | {
                "Period": period_title(r.period),
                "Plan": "Pay as you go" if r.plan_code == PAYG_CODE else r.plan_code.title(),
                "Messages": r.messages,
                "Opening": _format.amount(r.opening_balance),
                "Bought": _format.amount(r.credits_bought),
                "Usage": _format.amount(r.usage),
                "Plan fee": _format.paid(r.plan_fee),
                "Total": _format.amount(r.total),
                "Closing": _format.amount(r.closing_balance),
                "Status": "Paid" if r.paid else "Owed",
            }
        )
    return rows


def invoice_rows(invoices: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "Date": _format.when(i.created_at),
            "Number": i.number or i.id,
            "For": i.description or "",
            "Amount": f"{_format.paid(i.amount_paid or i.amount_due)} {i.currency.upper()}",
            "Status": i.status.title(),
            "Invoice": i.hosted_invoice_url or "",
            "PDF": i.invoice_pdf or "",
        }
        for i in invoices
    ]


LINKS = {
    "Invoice": st.column_config.LinkColumn("Invoice", display_text="Open"),
    "PDF": st.column_config.LinkColumn("PDF", display_text="Download"),
}


def topup_rows(topups: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "Requested": _format.when(t.created_at),
            "Charged": _format.paid(t.amount),
            "Credit": _format.amount(t.credits),
            "Status": t.status,
            "Attempts": t.attempts,
            "Last error": t.last_error or "",
            "Credited": _format.when(t.credited_at) if t.credited_at else "",
        }
        for t in topups
    ]


def payments_chart(days: Sequence[Any]) -> go.Figure:
    """Succeeded and failed payments per day (bars) and the success rate (line)."""
    x = [d.day for d in days]
    figure = go.Figure(
        [
            go.Bar(name="Succeeded", x=x, y=[d.succeeded for d in days], marker_color="#2e7d32"),
            go.Bar(name="Failed", x=x, y=[d.failed for d in days], marker_color="#c62828"),
            go.Scatter(
                name="Success rate",
                x=x,
                y=[d.success_rate for d in days],
                yaxis="y2",
                mode="lines+markers",
            ),
        ]
    )
    figure.update_layout(
        barmode="stack",
        title="Payments per day",
        yaxis={"title": "payments"},
        yaxis2={"overlaying": "y", "side": "right", "ticksuffix": "%", "range": [0, 100]},
        legend_orientation="h",
        margin={"t": 40, "b": 10},
        height=340,
    )
    return figure
