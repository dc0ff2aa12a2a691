"""A plan month's billing record: fee, included messages, overage up to the cap, and
the statement PDF and CSV of it. Expected figures follow from the plan's terms
written here ($5 fee, 2 messages included, $1 per extra message, $7 cap)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pypdf import PdfReader

from pricing_core.admin.plans import publish_plan
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.wallets import create_account
from pricing_core.metering.record import record_usage
from pricing_core.plans.records import generate_billing_records, get_billing_record
from pricing_core.plans.statements import statement_pdf, statements_csv
from pricing_core.plans.subscriptions import SubscriptionSource
from pricing_core.plans.switching import switch_plan
from tests.admin_support import ADMIN

OWNER = Principal("u1", "acct")
DECEMBER = datetime(2026, 12, 1, 9, tzinfo=UTC)


def test_a_plan_month_has_its_fee_overage_and_cap(engine):
    publish_plan(
        engine, ADMIN, "starter", name="Starter", monthly_fee="5", included_messages=2,
        overage_rate="1", monthly_cap="7", reason="a small plan for the test",
    )  # fmt: skip
    create_account(engine, "acct", name="Acct", user_id="u1", opening_credit=Decimal(20),
                   now=DECEMBER)  # fmt: skip
    switch_plan(engine, "acct", "starter", source=SubscriptionSource.ADMIN, now=DECEMBER)
    for n in range(6):
        at = DECEMBER + timedelta(days=2, minutes=n)
        record_usage(
            engine,
            UsageEvent(f"r{n}", "acct", "u1", "chat_message", "openai", "gpt-4o-mini", 10, 10,
                       created_at=at),
            now=at,
        )  # fmt: skip
    assert generate_billing_records(engine, now=datetime(2027, 1, 2, tzinfo=UTC)) == 1
    record = get_billing_record(engine, OWNER, "2026-12")
    assert (record.plan_code, record.messages) == ("starter", 6)
    # 2 included, then $1 each until fee + overage reaches the $7 cap: 2 messages
    assert record.plan_fee == 5 and record.overage == 2 and record.cap_applied
    assert record.payg_usage == 0 and record.total == 7
    assert record.opening_balance == 0 and record.credits_granted == 20
    assert record.closing_balance == 18 and record.paid
    assert (record.input_tokens, record.output_tokens) == (60, 60)
    assert generate_billing_records(engine, now=datetime(2027, 2, 2, tzinfo=UTC)) == 0  # idle
    text = " ".join(PdfReader(io.BytesIO(statement_pdf(record))).pages[0].extract_text().split())
    assert "Statement for December 2026" in text and "Account: Acct (acct)" in text
    assert "Plan fee $5.00" in text and "Overage $2.00" in text
    assert "Monthly cap applied $7.00" in text and "Total for the period $7.00" in text
    [row] = list(csv.DictReader(io.StringIO(statements_csv([record]))))
    assert (row["overage"], row["total"], row["cap_applied"]) == ("2", "7", "True")


def test_each_month_opens_with_the_last_ones_closing_balance(engine):
    from pricing_core.ledger.wallets import EntryKind, credit

    october = datetime(2026, 10, 20, tzinfo=UTC)
    create_account(engine, "acct", name="Acct", user_id="u1", opening_credit=Decimal(5),
                   now=october)  # fmt: skip
    credit(engine, "acct", Decimal(20), kind=EntryKind.PURCHASE, idempotency_key="p1",
           now=datetime(2026, 11, 3, tzinfo=UTC))  # fmt: skip
    credit(engine, "acct", Decimal(2), kind=EntryKind.BONUS, idempotency_key="b1",
           now=datetime(2026, 11, 30, 23, 59, tzinfo=UTC))  # fmt: skip
    assert generate_billing_records(engine, now=datetime(2026, 12, 1, tzinfo=UTC)) == 2
    oct_, nov = (get_billing_record(engine, OWNER, p) for p in ("2026-10", "2026-11"))
    assert (oct_.opening_balance, oct_.credits_granted, oct_.closing_balance) == (0, 5, 5)
    assert (nov.opening_balance, nov.credits_bought, nov.credits_granted) == (5, 20, 2)
    assert nov.closing_balance == 27 and nov.total == 0 and nov.messages == 0
