"""forecast: pace of the last 14 days, month-end projection, runway (exact Decimals)."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from pricing_core.domain.forecast import (
    RunwayState,
    days_left_in_month,
    forecast_spend,
    project_at_pace,
    runway,
)

TODAY = date(2025, 3, 20)  # 11 days left in March


def every_day(amount: str, *, start: date, end: date) -> dict[date, Decimal]:
    days = (end - start).days + 1
    return {start + timedelta(days=i): Decimal(amount) for i in range(days)}


def test_a_steady_pace_projects_the_month_end_and_the_runway_exactly():
    daily = every_day("0.30", start=date(2025, 2, 1), end=TODAY)
    result = forecast_spend(
        daily=daily, balance=Decimal("10"), today=TODAY, first_usage=date(2025, 2, 1)
    )
    assert result.state is RunwayState.PROJECTED
    assert result.window_spend == Decimal("4.20")
    assert result.pace_per_day == Decimal("0.3")
    assert result.month_to_date == Decimal("6.00")  # 20 days x 0.30
    assert result.projected_month_end == Decimal("9.30")  # 6.00 + 11 x 0.30
    assert result.runway_days == 33  # 10 / 0.30 = 33.3
    assert "lasts about 33 days" in result.message
    assert "14 days" in result.message


def test_today_is_not_part_of_the_pace_but_is_part_of_the_month_to_date():
    daily = every_day("1", start=date(2025, 1, 1), end=TODAY - timedelta(days=1))
    daily[TODAY] = Decimal("100")
    result = forecast_spend(
        daily=daily, balance=Decimal("7"), today=TODAY, first_usage=date(2025, 1, 1)
    )
    assert result.window_spend == Decimal("14")
    assert result.month_to_date == Decimal("119")
    assert result.projected_month_end == Decimal("130")
    assert result.runway_days == 7


def test_a_pace_that_does_not_divide_evenly_is_rounded_only_at_the_end():
    daily = {date(2025, 3, 10): Decimal("1")}  # 1 USD in 14 days
    result = forecast_spend(
        daily=daily, balance=Decimal("1"), today=TODAY, first_usage=date(2025, 1, 1)
    )
    assert result.pace_per_day == Decimal("0.071428571")  # 1/14 half-even to nano
    # 1 + 11/14 = 1.785714285714..., rounded once
    assert result.projected_month_end == Decimal("1.785714286")
    assert result.runway_days == 14


def test_the_runway_is_rounded_down():
    assert runway(Decimal("2.99"), window_spend=Decimal("14"), window=14) == 2


def test_too_little_history_says_so_and_projects_nothing():
    daily = every_day("5", start=TODAY - timedelta(days=13), end=TODAY)
    result = forecast_spend(
        daily=daily, balance=Decimal("50"), today=TODAY, first_usage=TODAY - timedelta(days=13)
    )
    assert result.state is RunwayState.SHORT_HISTORY
    assert not result.enough_history
    assert (
        result.runway_days is None
        and result.projected_month_end is None
        and result.pace_per_day is None
    )
    assert result.message == "Too little history to project: 13 complete days of usage, 14 needed."


def test_exactly_fourteen_days_of_history_is_enough():
    first = TODAY - timedelta(days=14)
    daily = every_day("1", start=first, end=TODAY)
    result = forecast_spend(daily=daily, balance=Decimal("3"), today=TODAY, first_usage=first)
    assert result.state is RunwayState.PROJECTED and result.runway_days == 3


def test_no_usage_at_all_says_there_is_nothing_to_project():
    result = forecast_spend(daily={}, balance=Decimal("10"), today=TODAY, first_usage=None)
    assert result.state is RunwayState.NO_USAGE
    assert result.month_to_date == Decimal(0)
    assert "No usage yet" in result.message


def test_an_idle_account_has_no_runway_but_a_projection():
    daily = {date(2025, 3, 1): Decimal("2")}
    result = forecast_spend(
        daily=daily, balance=Decimal("10"), today=TODAY, first_usage=date(2025, 1, 1)
    )
    assert result.state is RunwayState.IDLE
    assert result.runway_days is None
    assert result.projected_month_end == Decimal("2")
    assert "spent nothing in the last 14 days" in result.message


@pytest.mark.parametrize("balance", [Decimal("0"), Decimal("-3.50")])
def test_a_used_up_or_negative_balance_has_zero_runway(balance):
    daily = every_day("1", start=date(2025, 1, 1), end=TODAY)
    result = forecast_spend(daily=daily, balance=balance, today=TODAY, first_usage=date(2025, 1, 1))
    assert result.state is RunwayState.EXHAUSTED and result.runway_days == 0


@pytest.mark.parametrize(
    ("today", "left"),
    [
        (date(2025, 2, 28), 0),
        (date(2024, 2, 28), 1),
        (date(2025, 12, 1), 30),
        (date(2025, 4, 30), 0),
    ],
)
def test_days_left_in_the_month_follow_the_calendar(today, left):
    assert days_left_in_month(today) == left


def test_the_month_end_projection_works_for_message_counts_too():
    assert project_at_pace(
        Decimal(400), window_spend=Decimal(280), window=14, today=TODAY
    ) == Decimal(620)
