"""`pricing-core stripe reconcile` against the fake Stripe API, and `packages list`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from pricing_core.billing.reconcile import Finding, reconcile
from pricing_core.cli.main import app
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account, get_wallet
from tests.integration.stripe_helpers import open_session, paid_session

OPENING = Decimal("1")


@pytest.fixture
def acct(engine):
    create_account(engine, "acct", name="Ada", opening_credit=OPENING)
    return "acct"


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_reconcile_finds_a_paid_session_whose_webhook_was_dropped_and_fixes_it(
    engine, fake_stripe, acct
):
    sid = paid_session(engine, fake_stripe)  # paid; no webhook, buyer never came back
    open_session(engine, key="abandoned")  # open and unpaid: not a problem

    found = run("stripe", "reconcile")
    assert found.exit_code == 1, found.output
    assert f"PAID_NOT_CREDITED: {sid} (account acct)" in found.output
    assert get_wallet(engine, "acct").balance == OPENING

    fixed = run("stripe", "reconcile", "--fix")
    assert fixed.exit_code == 0, fixed.output
    assert f"FIXED: {sid}" in fixed.output
    assert get_wallet(engine, "acct").balance == OPENING + Decimal("20")

    again = run("stripe", "reconcile", "--fix", "--json")
    assert again.exit_code == 0
    report = json.loads(again.output)
    assert (report["checked"], report["credited"], report["discrepancies"]) == (2, 1, [])
    assert get_wallet(engine, "acct").balance == OPENING + Decimal("20")
    assert verify_ledger(engine).ok


def test_reconcile_reports_an_amount_mismatch_and_does_not_credit_it(engine, fake_stripe, acct):
    sid = paid_session(engine, fake_stripe)
    fake_stripe.tamper(sid, amount_total=999)
    report = reconcile(engine, fix=True)
    assert [(d.finding, d.session_id, d.fixed) for d in report.discrepancies] == [
        (Finding.AMOUNT_MISMATCH, sid, False)
    ]
    assert "999" in report.discrepancies[0].detail
    assert get_wallet(engine, "acct").balance == OPENING


def test_reconcile_since_a_date_skips_older_sessions(engine, fake_stripe, acct):
    paid_session(engine, fake_stripe)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    result = run("stripe", "reconcile", "--since", tomorrow)
    assert result.exit_code == 0 and "checked 0" in result.output
    assert run("stripe", "reconcile", "--since", "yesterday").exit_code == 2


def test_packages_list_prints_the_seeded_packs_with_their_bonus(engine):
    result = run("packages", "list", "--json")
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert list(rows) == ["Starter", "Popular", "Pro", "Enterprise"]
    assert [rows[n]["price"] for n in rows] == ["4.99", "17.99", "39.99", "139.99"]
    assert [n for n in rows if rows[n]["popular"]] == ["Popular"]
    # larger packs carry a volume bonus, so credit gets cheaper as packs grow
    per_dollar = [
        Decimal(rows[n]["price"])
        / (Decimal(rows[n]["credits_usd"]) + Decimal(rows[n]["bonus_usd"]))
        for n in rows
    ]
    assert per_dollar == sorted(per_dollar, reverse=True) and per_dollar[0] > per_dollar[-1]
    assert rows["Popular"]["price_per_credit_dollar"] == "0.8995"
    text = run("packages", "list")
    assert "most popular" in text.output and "$17.99" in text.output
