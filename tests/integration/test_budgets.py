"""budgets on both back ends: validation saves nothing, spend this month, alerts kept
until the month rolls over."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from pricing_core.adapters.schema import audit_log, budget_alerts, usage_events
from pricing_core.adapters.schema import budgets as budgets_table
from pricing_core.domain.errors import InvalidUsage, PermissionDenied
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.wallets import create_account
from pricing_core.limits import budgets
from pricing_core.metering.record import record_usage

NOW = datetime(2025, 3, 20, 12, 0, tzinfo=UTC)
ALICE = Principal("alice", "alice", email="alice@example.com")


@pytest.fixture
def account(engine):
    create_account(
        engine, "alice", name="Alice", opening_credit=Decimal("100"), now=NOW - timedelta(days=90)
    )
    create_account(engine, "bob", name="Bob", now=NOW - timedelta(days=90))
    return engine


def use(engine, rid: str, at: datetime, *, output_tokens: int = 100_000) -> Decimal:
    event = UsageEvent(
        rid, "alice", "alice", "chat_message", "openai", "gpt-4o", 0, output_tokens, created_at=at
    )
    return record_usage(engine, event, now=at).price


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("25", Decimal("25.00")),
        ("$1,250.50", Decimal("1250.50")),
        (" 0.01 ", Decimal("0.01")),
        ("", None),
    ],
)
def test_budget_amounts_are_parsed_exactly(text, expected):
    assert budgets.parse_monthly_limit(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-5", "must be positive"),
        ("0", "must be positive"),
        ("1000000.01", "above the maximum"),
        ("1e12", "above the maximum"),
        ("12.345", "whole cents"),
        ("NaN", "finite"),
        ("ten dollars", "not a decimal"),
        (1.5, "float"),
    ],
)
def test_absurd_or_malformed_budgets_are_refused(value, message):
    with pytest.raises(InvalidUsage, match=message):
        budgets.parse_monthly_limit(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("50, 80, 100", (50, 80, 100)), ("100 80 80 50%", (50, 80, 100)), ([1, 100], (1, 100))],
)
def test_thresholds_are_sorted_and_deduplicated(text, expected):
    assert budgets.parse_thresholds(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0, 50", "between 1 and 100"),
        ("101", "between 1 and 100"),
        ("-10", "between 1 and 100"),
        ("50.5", "whole percent"),
        ("fifty", "whole percent"),
        ("", "at least one"),
        ([True], "whole percent"),
        (",".join(str(i) for i in range(1, 12)), "at most 10"),
    ],
)
def test_thresholds_outside_one_to_a_hundred_are_refused(value, message):
    with pytest.raises(InvalidUsage, match=message):
        budgets.parse_thresholds(value)


def test_crossed_thresholds_are_exact_at_the_boundary():
    assert budgets.crossed_thresholds(Decimal("10"), (50, 80, 100), Decimal("7.999999999")) == (50,)
    assert budgets.crossed_thresholds(Decimal("10"), (50, 80, 100), Decimal("8")) == (50, 80)
    assert budgets.crossed_thresholds(None, (50,), Decimal("1000")) == ()


def test_an_account_without_a_budget_reads_the_defaults(account):
    status = budgets.budget_status(account, ALICE, now=NOW)
    assert not status.budget.is_set
    assert status.budget.thresholds == (50, 80, 100)
    assert (status.spend, status.percent_used, status.crossed, status.blocked) == (
        0,
        None,
        (),
        False,
    )


def test_saving_a_budget_stores_it_with_an_audit_row(account):
    saved = budgets.save_budget(
        account, ALICE, monthly_limit="12.50", thresholds="80, 50", block_at_limit=True, now=NOW
    )
    assert saved.monthly_limit == Decimal("12.50") and saved.thresholds == (50, 80)
    status = budgets.budget_status(account, ALICE, now=NOW)
    assert status.budget.monthly_limit == Decimal("12.50")
    assert status.budget.block_at_limit
    with account.connect() as conn:
        row = conn.execute(select(audit_log)).one()
    assert (row.action, row.actor, row.after["monthly_limit_usd"]) == (
        "budget.update",
        "alice@example.com",
        "12.5",
    )


def test_spend_this_month_counts_only_this_months_usage(account):
    use(account, "feb", NOW - timedelta(days=25))
    march = use(account, "mar-1", NOW - timedelta(days=5)) + use(account, "mar-2", NOW)
    budgets.save_budget(account, ALICE, monthly_limit="10", now=NOW)
    status = budgets.budget_status(account, ALICE, now=NOW)
    assert status.spend == march
    assert status.remaining == Decimal("10") - march
    assert status.percent_used == (march * 10).quantize(Decimal("0.1"))


def test_crossing_thresholds_records_alerts_that_last_until_the_month_rolls_over(account):
    price = use(account, "r1", NOW - timedelta(hours=1))  # 100k output tokens of gpt-4o: 1.25 USD
    assert price == Decimal("1.25")
    budgets.save_budget(account, ALICE, monthly_limit="2", block_at_limit=True, now=NOW)
    status = budgets.record_budget_alerts(account, ALICE, now=NOW)
    assert status.crossed == (50,) and not status.blocked
    use(account, "r2", NOW)
    status = budgets.record_budget_alerts(account, ALICE, now=NOW)
    assert status.crossed == (50, 80, 100) and status.blocked
    budgets.record_budget_alerts(account, ALICE, now=NOW)  # again: nothing new
    assert count(account, budget_alerts) == 3
    # Raising the budget keeps this month's banner; next month starts clean.
    budgets.save_budget(account, ALICE, monthly_limit="100", now=NOW)
    assert budgets.budget_status(account, ALICE, now=NOW).crossed == (50, 80, 100)
    assert budgets.budget_status(account, ALICE, now=NOW + timedelta(days=12)).crossed == ()


def test_a_member_cannot_read_or_change_another_accounts_budget(account):
    with pytest.raises(PermissionDenied, match="bob"):
        budgets.save_budget(account, ALICE, monthly_limit="5", account_id="bob")
    with pytest.raises(PermissionDenied, match="bob"):
        budgets.budget_status(account, ALICE, account_id="bob")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    limit=st.one_of(
        st.text(max_size=30),
        st.decimals(allow_nan=True, allow_infinity=True),
        st.integers(),
        st.floats(),
    ),
    thresholds=st.one_of(
        st.text(max_size=40), st.lists(st.integers(min_value=-1000, max_value=1000), max_size=12)
    ),
)
def test_hostile_budget_input_is_either_valid_or_refused_with_nothing_saved(
    account, limit, thresholds
):
    before = (count(account, budgets_table), count(account, audit_log))
    try:
        saved = budgets.save_budget(
            account, ALICE, monthly_limit=limit, thresholds=thresholds, now=NOW
        )
    except InvalidUsage:
        assert (count(account, budgets_table), count(account, audit_log)) == before
    else:
        assert saved.monthly_limit is None or Decimal("0.01") <= saved.monthly_limit <= Decimal(
            "1000000"
        )
        assert all(1 <= t <= 100 for t in saved.thresholds)
    assert count(account, usage_events) == 0


def test_without_its_own_budget_an_account_sees_the_operators_default(account, monkeypatch):
    from pricing_core.config import get_settings

    monkeypatch.setenv("PRICING_DEFAULT_MONTHLY_BUDGET", "3")
    get_settings.cache_clear()
    use(account, "r1", NOW)  # 1.25 USD
    status = budgets.record_budget_alerts(account, ALICE, now=NOW)
    assert status.budget.is_default and status.budget.monthly_limit == Decimal("3")
    assert status.budget.block_at_limit
    assert budgets.budget_status(account, ALICE, now=NOW).crossed == ()  # 41.7 % < 50 %
    budgets.save_budget(account, ALICE, monthly_limit="", now=NOW)  # "no budget" is a choice too
    assert not budgets.budget_status(account, ALICE, now=NOW).budget.is_set
