"""Admin balance adjustments and bulk grants: ledger + audit in one transaction,
idempotent, confirmed when large, exactly once after a crash."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricing_core.adapters.audit import list_audit
from pricing_core.admin import accounts as aa
from pricing_core.admin import grants
from pricing_core.analytics import accounts as account_views
from pricing_core.domain.errors import InsufficientBalance, InvalidUsage
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import get_wallet
from tests.admin_support import ADMIN, seed_accounts, seed_small

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def entries(engine, key: str) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.text(
                    "SELECT account_id, amount FROM ledger_entries WHERE idempotency_key = :k "
                    "ORDER BY account_id"
                ),
                {"k": key},
            )
        ]


def audit_rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT COUNT(*) FROM audit_log")).scalar_one()


def test_an_adjustment_is_written_to_the_ledger_and_the_audit_log(engine):
    seed_accounts(engine)
    posting = aa.adjust_balance(
        engine, ADMIN, "bob", "-2.50", reason="  goodwill reversal ", idempotency_key="f1", now=NOW
    )
    assert get_wallet(engine, "bob").balance == Decimal("2.5")
    entry = posting.entry
    assert (entry.kind, entry.amount, entry.actor, entry.reason) == (
        "adjustment",
        Decimal("-2.5"),
        "ops@example.com",
        "goodwill reversal",
    )
    [audit] = list_audit(engine, ADMIN, account_id="bob")
    assert audit.actor == "ops@example.com" and audit.action == "balance.adjust"
    assert audit.created_at == NOW and audit.reason == "goodwill reversal"
    assert audit.before == {"balance": "5", "available": "5"}
    assert audit.after["balance"] == "2.5" and audit.after["amount"] == "-2.5"
    assert audit.target == f"ledger_entry:{entry.id}"
    assert verify_ledger(engine).ok


def test_a_double_submitted_adjustment_applies_once(engine):
    seed_accounts(engine)
    first = aa.adjust_balance(engine, ADMIN, "bob", "3", reason="r", idempotency_key="f2")
    again = aa.adjust_balance(engine, ADMIN, "bob", "3", reason="r", idempotency_key="f2")
    assert again.replayed and again.entry.id == first.entry.id
    assert get_wallet(engine, "bob").balance == Decimal(8)
    assert audit_rows(engine) == 1


def test_a_large_adjustment_needs_the_confirmation_step(engine, monkeypatch):
    from pricing_core.config import get_settings

    monkeypatch.setenv("PRICING_ADMIN_CONFIRM_USD", "50")
    get_settings.cache_clear()
    seed_accounts(engine)
    with pytest.raises(aa.ConfirmationRequired, match=r"\$50.00"):
        aa.adjust_balance(engine, ADMIN, "bob", "50", reason="r", idempotency_key="f3")
    with pytest.raises(aa.ConfirmationRequired):
        aa.adjust_balance(engine, ADMIN, "alice", "-50", reason="r", idempotency_key="f3b")
    assert get_wallet(engine, "bob").balance == Decimal(5) and audit_rows(engine) == 0
    aa.adjust_balance(engine, ADMIN, "bob", "50", reason="r", idempotency_key="f3", confirmed=True)
    assert get_wallet(engine, "bob").balance == Decimal(55)


@pytest.mark.parametrize(
    ("amount", "reason", "error", "match"),
    [
        ("1", "", InvalidUsage, "reason is required"),
        ("1", "   ", InvalidUsage, "reason is required"),
        ("0", "r", InvalidUsage, "non-zero"),
        ("0.0000000001", "r", InvalidUsage, "finer than a nano-USD"),
        ("NaN", "r", InvalidUsage, "finite"),
        ("1e7", "r", InvalidUsage, "above"),
        ("abc", "r", InvalidUsage, "not a decimal"),
        ("-6", "r", InsufficientBalance, "bob"),
    ],
)
def test_a_bad_adjustment_is_refused_and_writes_nothing(engine, amount, reason, error, match):
    seed_accounts(engine)
    with pytest.raises(error, match=match):
        aa.adjust_balance(
            engine, ADMIN, "bob", amount, reason=reason, idempotency_key="f4", confirmed=True
        )
    assert get_wallet(engine, "bob").balance == Decimal(5)
    assert audit_rows(engine) == 0 and entries(engine, "adjust:f4") == []


def test_a_float_amount_is_refused(engine):
    seed_accounts(engine)
    with pytest.raises(InvalidUsage, match="float"):
        aa.adjust_balance(engine, ADMIN, "bob", 1.5, reason="r", idempotency_key="f5")


def test_a_bulk_grant_reports_each_row(engine):
    seed_accounts(engine)
    report = grants.bulk_grant(
        engine,
        ADMIN,
        ["alice", "BOB@example.com", "nobody", "bob", "", "x\x07y", "carol@example.com"],
        amount="2",
        reason="spring promo",
        batch_key="spring-2025",
        now=NOW,
    )
    assert [(r.row, r.account_id, r.status) for r in report] == [
        (1, "alice", grants.GrantStatus.DONE),
        (2, "bob", grants.GrantStatus.DONE),
        (3, None, grants.GrantStatus.UNKNOWN_ACCOUNT),
        (4, "bob", grants.GrantStatus.DUPLICATE),
        (5, None, grants.GrantStatus.INVALID),
        (6, None, grants.GrantStatus.INVALID),
        (7, "carol", grants.GrantStatus.DONE),
    ]
    assert entries(engine, "grant:spring-2025") == [
        ("alice", 2_000_000_000),
        ("bob", 2_000_000_000),
        ("carol", 2_000_000_000),
    ]
    audits = list_audit(engine, ADMIN, action_prefix="balance.grant")
    assert sorted(a.account_id for a in audits) == ["alice", "bob", "carol"]
    assert all(a.reason == "spring promo" and a.actor == "ops@example.com" for a in audits)
    assert verify_ledger(engine).ok


def test_a_bulk_grant_resubmitted_after_a_crash_halfway_grants_each_account_once(
    engine, monkeypatch
):
    seed_accounts(engine)
    targets = ["alice", "bob", "carol", "ops"]
    real = aa.write_audit
    calls = {"n": 0}

    def crash_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise SystemExit("process killed")  # not a PricingError: nothing catches it
        return real(*args, **kwargs)

    monkeypatch.setattr(aa, "write_audit", crash_on_third)
    with pytest.raises(SystemExit):
        grants.bulk_grant(engine, ADMIN, targets, amount="1", reason="r", batch_key="b1", now=NOW)
    # the two first accounts were granted; the third's transaction was rolled back whole
    assert [a for a, _ in entries(engine, "grant:b1")] == ["alice", "bob"]
    assert audit_rows(engine) == 2

    monkeypatch.setattr(aa, "write_audit", real)
    report = grants.bulk_grant(
        engine, ADMIN, targets, amount="1", reason="r", batch_key="b1", now=NOW
    )
    assert [r.status for r in report] == [
        grants.GrantStatus.ALREADY_APPLIED,
        grants.GrantStatus.ALREADY_APPLIED,
        grants.GrantStatus.DONE,
        grants.GrantStatus.DONE,
    ]
    again = grants.bulk_grant(
        engine, ADMIN, targets, amount="1", reason="r", batch_key="b1", now=NOW
    )
    assert {r.status for r in again} == {grants.GrantStatus.ALREADY_APPLIED}
    assert entries(engine, "grant:b1") == [(a, 1_000_000_000) for a in sorted(targets)]
    assert audit_rows(engine) == 4
    assert get_wallet(engine, "carol").balance == Decimal(1)
    assert verify_ledger(engine).ok


def test_a_batch_key_reused_with_another_amount_is_reported_not_applied(engine):
    seed_accounts(engine)
    grants.bulk_grant(engine, ADMIN, ["alice"], amount="1", reason="r", batch_key="b2")
    [row] = grants.bulk_grant(engine, ADMIN, ["alice"], amount="5", reason="r", batch_key="b2")
    assert row.status is grants.GrantStatus.INVALID and "already used" in row.detail
    assert entries(engine, "grant:b2") == [("alice", 1_000_000_000)]


def test_search_finds_accounts_by_email_name_or_id_with_this_months_spend(engine):
    seed_small(engine)
    [bob] = account_views.search_accounts(engine, ADMIN, "BOB@EXAMPLE", now=NOW)
    assert bob.account_id == "bob" and bob.emails == ("bob@example.com",)
    with engine.connect() as conn:
        spend = conn.execute(
            sa.text("SELECT SUM(price) FROM usage_events WHERE account_id = 'bob'")
        ).scalar_one()
        balance = conn.execute(
            sa.text("SELECT SUM(amount) FROM ledger_entries WHERE account_id = 'bob'")
        ).scalar_one()
    assert bob.spend_this_month == Decimal(spend) / 10**9
    assert bob.balance == bob.available == Decimal(balance) / 10**9
    assert bob.plan == "Pay as you go"
    assert [a.account_id for a in account_views.search_accounts(engine, ADMIN, "car")] == ["carol"]
    assert len(account_views.search_accounts(engine, ADMIN, "")) == 4
    assert account_views.search_accounts(engine, ADMIN, "%") == []  # LIKE wildcards are literal
    april = datetime(2025, 4, 2, tzinfo=UTC)
    assert account_views.account_summary(engine, ADMIN, "bob", now=april).spend_this_month == 0


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("alice\nbob@example.com\n\n# comment\ncarol", ["alice", "bob@example.com", "carol"]),
        ("alice, bob; carol dave", ["alice", "bob", "carol", "dave"]),
        (b"\xef\xbb\xbfemail,name\nbob@example.com,Bob\n,empty\n", ["bob@example.com"]),
        ('name,account_id\nAlice,alice\n"Bob, Jr",bob\n', ["alice", "bob"]),
        ("", []),
    ],
)
def test_pasted_and_uploaded_lists_are_parsed(data, expected):
    assert grants.parse_targets(data) == expected


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x00\x01\x02", "binary"),
        (b"\xff\xfe\xfa", "not UTF-8"),
        ("x" * 1_000_001, "limit"),
        ("\n".join(f"a{i}" for i in range(10_001)), "limit is 10,000"),
    ],
)
def test_hostile_uploads_are_refused_with_a_clear_error(data, match):
    with pytest.raises(InvalidUsage, match=match):
        grants.parse_targets(data)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=2000), st.text(max_size=2000)))
def test_any_upload_parses_to_strings_or_a_clear_error(data):
    try:
        out = grants.parse_targets(data)
    except InvalidUsage:
        return
    assert all(isinstance(t, str) and t == t.strip() and t for t in out)


# ---------------------------------------------------------------- set balance


def test_set_balance_posts_the_difference_and_audits_it(engine):
    seed_accounts(engine)  # bob holds $5
    posting = aa.set_balance(
        engine, ADMIN, "bob", "50.00", reason="compensation for the outage", idempotency_key="s1"
    )
    assert (posting.entry.kind, posting.entry.amount) == ("adjustment", Decimal("45"))
    assert get_wallet(engine, "bob").balance == Decimal("50")
    [audit] = list_audit(engine, ADMIN, account_id="bob")
    assert audit.action == "balance.set" and audit.reason == "compensation for the outage"
    assert (audit.before["balance"], audit.after["balance"]) == ("5", "50")
    lower = aa.set_balance(engine, ADMIN, "bob", "0.5", reason="r", idempotency_key="s2")
    assert lower.entry.amount == Decimal("-49.5")
    assert get_wallet(engine, "bob").balance == Decimal("0.5")
    assert verify_ledger(engine).ok


def test_a_resubmitted_set_balance_changes_nothing_even_after_charges(engine):
    seed_accounts(engine)
    first = aa.set_balance(engine, ADMIN, "bob", "20", reason="r", idempotency_key="s3")
    aa.adjust_balance(engine, ADMIN, "bob", "-1", reason="a charge meanwhile", idempotency_key="x")
    again = aa.set_balance(engine, ADMIN, "bob", "20", reason="r", idempotency_key="s3")
    assert again.replayed and again.entry.id == first.entry.id
    assert get_wallet(engine, "bob").balance == Decimal("19")


@pytest.mark.parametrize(
    ("target", "match"),
    [
        ("5", r"already \$5\.00"),
        ("-1", "0 to 1000000"),
        ("1e7", "0 to 1000000"),
        ("0.0000000001", "nano-USD"),
        ("ten", "target balance"),
    ],
)
def test_a_bad_target_is_refused_and_writes_nothing(engine, target, match):
    seed_accounts(engine)
    with pytest.raises(InvalidUsage, match=match):
        aa.set_balance(engine, ADMIN, "bob", target, reason="r", idempotency_key="s4")
    assert get_wallet(engine, "bob").balance == Decimal("5") and audit_rows(engine) == 0


def test_a_large_set_balance_needs_the_confirmation_step(engine):
    seed_accounts(engine)
    with pytest.raises(aa.ConfirmationRequired):
        aa.set_balance(engine, ADMIN, "bob", "500", reason="r", idempotency_key="s5")
    aa.set_balance(engine, ADMIN, "bob", "500", reason="r", idempotency_key="s5", confirmed=True)
    assert get_wallet(engine, "bob").balance == Decimal("500")
