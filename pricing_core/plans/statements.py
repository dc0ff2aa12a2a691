"""Monthly statements: a billing record (`plans.records`) as a PDF (fpdf2) and a CSV.

Amounts are USD, exact to the cent on the PDF (the ledger's nano-USD are in the CSV,
as plain decimals). Text is Latin-1 (fpdf2's core fonts): other characters in an
account name print as "?".
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from pricing_core.domain.money import format_money, format_tokens, usd_str
from pricing_core.domain.plans import PAYG_CODE
from pricing_core.plans.records import BillingRecord

FOOTNOTE = (
    "Amounts in USD. Every figure is the sum of ledger entries posted in the period; "
    "the CSV statement has them to the nano-dollar."
)
CSV_FIELDS = (
    "account_id", "account_name", "period", "plan_code", "plan_version", "messages",
    "input_tokens", "output_tokens", "provider_cost", "plan_fee", "overage", "monthly_cap",
    "cap_applied", "payg_usage", "credits_bought", "credits_granted", "refunds", "adjustments",
    "opening_balance", "closing_balance", "total", "paid",
)  # fmt: skip


def statement_lines(record: BillingRecord) -> list[tuple[str, str]]:
    """(label, value) rows of a statement, in reading order (USD to the cent)."""
    plan = "Pay as you go" if record.plan_code == PAYG_CODE else record.plan_code.title()
    rows = [
        ("Plan", plan),
        ("Messages", f"{record.messages:,}"),
        ("Tokens (input / output)",
         f"{format_tokens(record.input_tokens)} / {format_tokens(record.output_tokens)}"),
        ("Opening balance", format_money(record.opening_balance)),
        ("Credits bought", format_money(record.credits_bought)),
        ("Credits granted", format_money(record.credits_granted)),
    ]  # fmt: skip
    if record.refunds:
        rows.append(("Refunds", format_money(record.refunds)))
    if record.adjustments:
        rows.append(("Adjustments", format_money(record.adjustments)))
    if record.plan_code != PAYG_CODE:
        rows.append(("Plan fee", format_money(record.plan_fee)))
        rows.append(("Overage", format_money(record.overage)))
        if record.cap_applied and record.monthly_cap is not None:
            rows.append(("Monthly cap applied", format_money(record.monthly_cap)))
    rows += [
        ("Pay-as-you-go usage", format_money(record.payg_usage)),
        ("Total for the period", format_money(record.total)),
        ("Closing balance", format_money(record.closing_balance)),
        ("Status", "Paid" if record.paid else f"Owed: {format_money(-record.closing_balance)}"),
    ]
    return rows


def period_title(period: str) -> str:
    """ "2023-11" -> "November 2023"."""
    return datetime.strptime(period, "%Y-%m").strftime("%B %Y")


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def statement_pdf(record: BillingRecord, *, issuer: str = "AI usage billing") -> bytes:
    """The statement as a one-page PDF: the account, the period, every figure of
    `statement_lines`. Returns the PDF's bytes."""
    pdf = FPDF(format="A4")
    pdf.set_title(f"Statement {record.period} {record.account_id}")
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=18)
    pdf.cell(0, 10, _latin1(f"Statement for {period_title(record.period)}"),
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)  # fmt: skip
    pdf.set_font("Helvetica", size=11)
    for line in (
        f"Account: {record.account_name} ({record.account_id})",
        f"Period: {record.period}",
        f"Issued by {issuer} on {record.generated_at:%Y-%m-%d}",
    ):
        pdf.cell(0, 7, _latin1(line), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    for label, value in statement_lines(record):
        bold = label.startswith(("Total", "Closing"))
        pdf.set_font("Helvetica", style="B" if bold else "", size=11)
        pdf.cell(110, 8, _latin1(label), border="B")
        pdf.cell(0, 8, _latin1(value), border="B", align="R",
                 new_x=XPos.LMARGIN, new_y=YPos.NEXT)  # fmt: skip
    pdf.ln(4)
    pdf.set_font("Helvetica", size=8)
    pdf.multi_cell(0, 4, FOOTNOTE)
    return bytes(pdf.output())


def statements_csv(records: list[BillingRecord]) -> str:
    """Billing records as CSV (`CSV_FIELDS`; money as exact USD decimals)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for record in records:
        row = []
        for name in CSV_FIELDS:
            value = getattr(record, name)
            row.append(usd_str(value) if isinstance(value, Decimal) else value)
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue()
