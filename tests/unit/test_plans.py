"""Pure plan arithmetic and the recommendation: exact Decimal, expected values by hand."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing_core.domain.periods import month_bounds, previous_months
from pricing_core.domain.plan_advice import Outcome, cost_curves, recommend_plan
from pricing_core.domain.plans import (
    PAYG,
    MonthUsage,
    Plan,
    PlanError,
    monthly_charge,
    project_month,
    with_fee,
)

STARTER = Plan("starter", "Starter", 1, D("5"), 1000, D("0.00015"), D("50"))
PRO = Plan("professional", "Professional", 1, D("15"), 10_000, D("0.00010"), D("200"))
ENTERPRISE = Plan("enterprise", "Enterprise", 1, None, None, D("0.00005"), None)
PLANS = [STARTER, PRO, ENTERPRISE]


@pytest.mark.parametrize(
    ("plan", "messages", "payg_cost", "base", "overage", "total", "capped"),
    [
        # Starter: below, at, above the 1,000 included messages; reaching and passing the cap
        (STARTER, 999, D("9"), D("5"), D("0"), D("5"), False),
        (STARTER, 1000, D("9"), D("5"), D("0"), D("5"), False),
        (STARTER, 1001, D("9"), D("5"), D("0.00015"), D("5.00015"), False),
        (STARTER, 301_000, D("9"), D("5"), D("45"), D("50"), False),  # 300,000 x 0.00015 = 45
        (STARTER, 301_001, D("9"), D("5"), D("45"), D("50"), True),  # 50.00015 capped to 50
        # Professional: below, at, above 10,000; far above: 15 + 1,990,000 x 0.0001 = 214 -> 200
        (PRO, 9_999, D("1"), D("15"), D("0"), D("15"), False),
        (PRO, 10_000, D("1"), D("15"), D("0"), D("15"), False),
        (PRO, 10_001, D("1"), D("15"), D("0.0001"), D("15.0001"), False),
        (PRO, 2_000_000, D("1"), D("15"), D("185"), D("200"), True),
        # Enterprise with an account fee: unlimited included messages, no cap
        (with_fee(ENTERPRISE, D("900")), 0, D("0"), D("900"), D("0"), D("900"), False),
        (with_fee(ENTERPRISE, D("900")), 10**9, D("0"), D("900"), D("0"), D("900"), False),
        # a month with zero usage: the fee only; pay-as-you-go is free
        (STARTER, 0, D("0"), D("5"), D("0"), D("5"), False),
        (PRO, 0, D("0"), D("15"), D("0"), D("15"), False),
        (PAYG, 0, D("0"), D("0"), D("0"), D("0"), False),
        # pay-as-you-go: the sum of the month's per-request prices
        (PAYG, 1234, D("0.370200001"), D("0"), D("0.370200001"), D("0.370200001"), False),
    ],
)
def test_a_months_charge_under_each_plan(plan, messages, payg_cost, base, overage, total, capped):
    charge = monthly_charge(plan, messages, payg_cost)
    assert (charge.base, charge.overage, charge.total, charge.capped) == (
        base,
        overage,
        total,
        capped,
    )
    assert charge.base + charge.overage == charge.total


def test_the_cap_reports_what_the_month_would_have_cost_without_it():
    charge = monthly_charge(STARTER, 401_000, D("0"))
    assert charge.uncapped_total == D("65")  # 5 + 400,000 x 0.00015
    assert charge.total == D("50") and charge.overage_messages == 400_000


def test_a_custom_plan_without_a_fee_cannot_be_charged():
    with pytest.raises(PlanError, match="'enterprise' has no fee.*talk to us"):
        monthly_charge(ENTERPRISE, 10, D("0"))


@pytest.mark.parametrize(
    ("messages", "payg_cost", "match"),
    [
        (-1, D("0"), "messages"),
        (True, D("0"), "messages"),
        (1, D("-0.1"), "payg_cost"),
        (1, D("NaN"), "payg_cost"),
        (1, 0.5, "payg_cost"),
    ],
)
def test_bad_inputs_are_refused_with_the_offending_value(messages, payg_cost, match):
    with pytest.raises(PlanError, match=match):
        monthly_charge(STARTER, messages, payg_cost)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"code": "Starter"}, "lower-case"),
        ({"version": 0}, "version"),
        ({"monthly_fee": D("-1")}, "monthly_fee"),
        ({"overage_rate": D("1e-12")}, "finer than a nano-USD"),
        ({"included_messages": -5}, "included_messages"),
        ({"monthly_cap": D("1")}, "below its fee"),
    ],
)
def test_malformed_plans_are_refused(fields, match):
    base = dict(
        code="starter",
        name="Starter",
        version=1,
        monthly_fee=D("5"),
        included_messages=1000,
        overage_rate=D("0.00015"),
        monthly_cap=D("50"),
    )
    with pytest.raises(PlanError, match=match):
        Plan(**(base | fields))


@given(
    messages=st.integers(min_value=0, max_value=10**9),
    cost=st.decimals(min_value=0, max_value=10**6, places=9, allow_nan=False),
)
def test_a_plans_charge_is_between_its_fee_and_its_cap_and_grows_with_messages(messages, cost):
    for plan in (STARTER, PRO):
        charge = monthly_charge(plan, messages, cost)
        assert plan.monthly_fee <= charge.total <= plan.monthly_cap
        assert monthly_charge(plan, messages + 1, cost).total >= charge.total


def month(m: str, messages: int, payg: str, *, other: str = "0", projected: bool = False):
    return MonthUsage(m, messages, D(payg), D(other), projected)


def threshold_rule(history, plans):
    """What simple recommenders do: the smallest plan whose allowance covers the
    average monthly messages (pay-as-you-go only without messages)."""
    average = sum(u.messages for u in history) / len(history)
    if average == 0:
        return PAYG
    for plan in sorted((p for p in plans if p.has_fee), key=lambda p: p.monthly_fee):
        if plan.included_messages is None or plan.included_messages >= average:
            return plan
    return plans[-1]


def test_the_threshold_rule_picks_a_dearer_plan_where_replaying_usage_does_not():
    # 1,500 messages a month with an expensive model ($0.01 a message):
    # pay-as-you-go $15, Starter 5 + 500 x 0.00015 = $5.075, Professional $15.
    history = [
        month("2025-01", 1500, "15"),
        month("2025-02", 1500, "15"),
        month("2025-03", 1500, "15"),
    ]
    naive = threshold_rule(history, PLANS)
    rec = recommend_plan(history, PLANS, PAYG)
    assert naive.code == "professional"
    assert rec.recommended == "starter" and rec.outcome is Outcome.SWITCH
    assert rec.totals == {"payg": D("45"), "starter": D("15.225"), "professional": D("45")}
    assert rec.totals[naive.code] > rec.totals[rec.recommended]
    assert rec.savings_by_month == (D("9.925"),) * 3
    assert rec.savings_per_month == D("9.925") and rec.savings_total == D("29.775")
    assert rec.sentence == (
        "Switch to Starter and save $9.92/month (based on your last 3 months)."  # half-even
    )


def test_costs_per_month_include_the_projected_month_last_and_non_message_requests():
    history = [
        month("2025-02", 0, "0"),
        month("2025-03", 12_000, "3.6", other="0.25"),
        month("2025-04", 20_000, "6", projected=True),
    ]
    rec = recommend_plan(history, PLANS, STARTER)
    assert [(m.month, m.projected, m.messages) for m in rec.months] == [
        ("2025-02", False, 0),
        ("2025-03", False, 12_000),
        ("2025-04", True, 20_000),
    ]
    assert [dict(m.costs) for m in rec.months] == [
        {"payg": D("0"), "starter": D("5"), "professional": D("15")},
        # starter: 5 + 11,000 x 0.00015 = 6.65; professional: 15 + 2,000 x 0.0001 = 15.2
        {"payg": D("3.85"), "starter": D("6.90"), "professional": D("15.45")},
        {"payg": D("6"), "starter": D("7.85"), "professional": D("16")},
    ]
    # pay-as-you-go 9.85 vs Starter 19.75 over three months
    assert rec.recommended == "payg" and rec.savings_total == D("9.90")
    assert rec.savings_per_month == D("3.3")
    assert rec.savings_by_month == (D("5"), D("3.05"), D("1.85"))
    assert rec.not_compared == ("enterprise",)
    assert rec.sentence.startswith("Switch to Pay as you go and save $3.30/month")
    assert "last 2 months and this month's projection" in rec.sentence


def test_staying_on_the_cheapest_plan_is_stated_as_no_change_with_zero_savings():
    # starter 5 + 249,000 x 0.00015 = 42.35; professional 15 + 240,000 x 0.0001 = 39
    history = [month("2025-03", 250_000, "100")]
    rec = recommend_plan(history, PLANS, PRO)
    assert rec.totals == {"payg": D("100"), "starter": D("42.35"), "professional": D("39")}
    assert rec.outcome is Outcome.NO_CHANGE and rec.recommended == rec.current == "professional"
    assert rec.savings_total == 0 and rec.savings_per_month == 0
    assert (
        rec.sentence == "You are on the cheapest plan for your usage (based on your last 1 month)."
    )


def test_a_tie_with_the_current_plan_keeps_it_and_says_so():
    rec = recommend_plan([month("2025-03", 1000, "5")], PLANS, STARTER)
    assert rec.outcome is Outcome.NO_CHANGE and rec.recommended == "starter"
    assert rec.tied_with == ("payg",)
    assert rec.sentence.endswith("Pay as you go would also cost exactly the same.")


def test_a_tie_between_two_cheaper_plans_picks_the_first_listed_and_names_the_other():
    rec = recommend_plan([month("2025-03", 1000, "5")], PLANS, PRO)
    assert rec.recommended == "payg" and rec.tied_with == ("starter",)
    assert rec.savings_per_month == D("10")
    assert rec.sentence.endswith("Starter would cost exactly the same.")


def test_enterprise_is_compared_only_with_an_account_fee():
    history = [month("2025-03", 5_000_000, "2000")]  # starter capped at 50, pro at 200
    assert recommend_plan(history, PLANS, PAYG).recommended == "starter"
    custom = [STARTER, PRO, with_fee(ENTERPRISE, D("40"))]
    rec = recommend_plan(history, custom, PAYG)
    assert rec.recommended == "enterprise" and rec.savings_per_month == D("1960")
    assert rec.not_compared == ()


@pytest.mark.parametrize(
    ("history", "current", "match"),
    [
        ([], PAYG, "no months"),
        ([month("2025-03", 1, "1"), month("2025-03", 1, "1")], PAYG, "repeats a month"),
        ([month("2025-03", 1, "1")], ENTERPRISE, "no fee"),
    ],
)
def test_unusable_histories_are_refused(history, current, match):
    with pytest.raises(PlanError, match=match):
        recommend_plan(history, PLANS, current)


def test_a_month_must_be_a_calendar_month():
    with pytest.raises(PlanError, match="2025-13"):
        MonthUsage("2025-13", 0, D("0"))


def test_the_current_month_is_projected_at_its_run_rate():
    start, end = month_bounds("2025-03", ZoneInfo("UTC"))
    now = datetime(2025, 3, 11, tzinfo=UTC)  # 10 of 31 days elapsed
    projected = project_month(
        month("2025-03", 100, "0.31", other="0.01"), month_start=start, month_end=end, now=now
    )
    assert projected.projected and projected.messages == 310
    assert projected.payg_cost == D("0.961") and projected.other_cost == D("0.031")


def test_months_are_calendar_months_in_the_configured_zone():
    start, end = month_bounds("2025-12", ZoneInfo("America/New_York"))
    assert start.astimezone(UTC) == datetime(2025, 12, 1, 5, tzinfo=UTC)
    assert end.astimezone(UTC) == datetime(2026, 1, 1, 5, tzinfo=UTC)
    assert previous_months("2025-02", 3) == ["2024-11", "2024-12", "2025-01"]


def test_break_even_curves_are_exact_at_each_plans_kinks():
    points = cost_curves(PLANS, payg_price=D("0.001"), max_messages=400_000, points=5)
    by_count = {p.messages: dict(p.costs) for p in points}
    assert set(by_count) == {0, 1000, 10_000, 100_000, 200_000, 300_000, 301_000, 400_000}
    assert by_count[1000] == {"payg": D("1"), "starter": D("5"), "professional": D("15")}
    assert by_count[301_000]["starter"] == D("50")
    assert by_count[400_000] == {"payg": D("400"), "starter": D("50"), "professional": D("54")}


hostile = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.decimals(allow_nan=True, allow_infinity=True),
)


@given(
    code=st.text(max_size=40),
    version=hostile,
    fee=hostile,
    included=hostile,
    rate=hostile,
    cap=hostile,
)
def test_hostile_plan_terms_are_refused_with_a_plan_error_or_make_a_valid_plan(
    code, version, fee, included, rate, cap
):
    try:
        plan = Plan(code, "X", version, fee, included, rate, cap)
    except PlanError:
        return
    assert plan.code == code and isinstance(plan.overage_rate, D)
    monthly_charge(plan, 5, D("1")) if plan.has_fee else None


@given(month_text=st.text(max_size=10), messages=hostile, cost=hostile)
def test_hostile_month_usage_is_refused_with_a_plan_error(month_text, messages, cost):
    try:
        usage = MonthUsage(month_text, messages, cost)
    except PlanError:
        return
    assert usage.messages >= 0 and usage.payg_cost >= 0


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"monthly_fee": D("1e30")}, "monthly_fee"),
        ({"monthly_cap": D("1e20")}, "monthly_cap"),
        ({"overage_rate": D("1e15")}, "overage_rate"),
        ({"included_messages": 10**13}, "included_messages"),
    ],
)
def test_absurdly_large_plan_terms_are_refused(fields, match):
    base = dict(
        code="big",
        name="Big",
        version=1,
        monthly_fee=D("5"),
        included_messages=0,
        overage_rate=D("1"),
        monthly_cap=None,
    )
    with pytest.raises(PlanError, match=match):
        Plan(**(base | fields))


@pytest.mark.parametrize(("messages", "cost"), [(10**13, D("0")), (1, D("1e25"))])
def test_absurdly_large_months_are_refused(messages, cost):
    with pytest.raises(PlanError, match="from 0 to"):
        monthly_charge(PAYG, messages, cost)


def test_a_month_seconds_old_is_projected_from_its_first_day():
    start, end = month_bounds("2025-04", ZoneInfo("UTC"))
    projected = project_month(
        month("2025-04", 3, "0.03"),
        month_start=start,
        month_end=end,
        now=start + timedelta(seconds=1),
    )
    assert (projected.messages, projected.payg_cost) == (90, D("0.9"))  # x 30 days / 1 day
