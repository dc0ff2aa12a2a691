"""Runway and month-end projection from recent spend (pure: no database, no clock).

Two projections live here:
- `forecast_spend` (Overview page): the pace is the spend of the last `window`
  complete days (default 14, today excluded because it is not over yet) divided by
  `window`. Projections keep the exact sum and divide once, so no intermediate value
  is rounded: the month-end projection is rounded half-even to the nano-USD, the
  runway is a whole number of days (rounded down: "lasts about N days" must not
  promise a day too many).
- `project_month_end` (plans): a linear run rate of the month so far.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from pricing_core.domain.money import USD, ZERO, DisplayUnit, round_nano

PACE_WINDOW_DAYS = 14


class RunwayState(StrEnum):
    """Why the runway is what it is."""

    PROJECTED = "projected"  # enough history and some spend: runway_days is set
    NO_USAGE = "no_usage"  # nothing was ever spent
    SHORT_HISTORY = "short_history"  # fewer days of history than the window
    IDLE = "idle"  # history is long enough but nothing was spent in the window
    EXHAUSTED = "exhausted"  # the balance is zero or below


@dataclass(frozen=True, slots=True)
class Forecast:
    """A spend projection for one account.

    Attributes:
        today: the calendar day (configured time zone) the projection is made on.
        window_days: days the pace is measured over.
        history_days: complete days since the first usage (today excluded).
        window_spend: Decimal USD spent in the window (exact).
        pace_per_day: Decimal USD/day (rounded to the nano-USD, for display), or None
            when the history is too short.
        month_to_date: Decimal USD spent this month, today included.
        projected_month_end: Decimal USD, month to date plus the pace for the days left,
            or None when the history is too short.
        runway_days: whole days the balance lasts at the pace, or None (see `state`).
        state: why runway_days is or is not set.
        message: one sentence for people.
    """

    today: date
    window_days: int
    history_days: int
    window_spend: Decimal
    pace_per_day: Decimal | None
    month_to_date: Decimal
    projected_month_end: Decimal | None
    runway_days: int | None
    state: RunwayState
    message: str

    @property
    def enough_history(self) -> bool:
        return self.state not in (RunwayState.NO_USAGE, RunwayState.SHORT_HISTORY)


def complete_days(first_usage: date | None, today: date) -> int:
    """Complete days of usage history before `today` (0 without usage). A projection
    needs `PACE_WINDOW_DAYS` of them: the Overview's and the Plans page's alike."""
    return 0 if first_usage is None else max((today - first_usage).days, 0)


def window_total(daily: Mapping[date, Decimal], *, today: date, window: int) -> Decimal:
    """Sum of `daily` over the `window` complete days before `today` (Decimal, exact)."""
    start = today - timedelta(days=window)
    return sum((v for d, v in daily.items() if start <= d < today), ZERO)


def days_left_in_month(today: date) -> int:
    """Days of the month after `today` (0 on the last day)."""
    return calendar.monthrange(today.year, today.month)[1] - today.day


def project_at_pace(
    month_to_date: Decimal, *, window_spend: Decimal, window: int, today: date
) -> Decimal:
    """Month to date plus `window_spend / window` per remaining day, rounded to nano-USD.

    Works for any additive quantity kept as Decimal (USD, or message counts).
    """
    return round_nano(month_to_date + window_spend * days_left_in_month(today) / window)


def runway(balance: Decimal, *, window_spend: Decimal, window: int) -> int | None:
    """Whole days `balance` lasts at `window_spend / window` per day (rounded down).

    Returns: None when nothing was spent in the window (no pace to divide by);
    0 when the balance is zero or negative.
    """
    if balance <= 0:
        return 0
    if window_spend <= 0:
        return None
    return int(balance * window // window_spend)


def forecast_spend(
    *,
    daily: Mapping[date, Decimal],
    balance: Decimal,
    today: date,
    first_usage: date | None,
    window: int = PACE_WINDOW_DAYS,
    unit: DisplayUnit = USD,
) -> Forecast:
    """Project this month's spend and the balance's runway.

    Args:
        daily: Decimal USD spent per calendar day (days missing = 0). Needs at least
            the window and the current month.
        balance: Decimal USD the runway is computed for (the available balance).
        today: the current calendar day in the configured time zone.
        first_usage: the day of the account's first usage, or None if it has none.
        window: days of history the pace is measured over.
        unit: the unit the message names amounts in (USD or credits).
    Returns: Forecast. A history shorter than `window` complete days gives no pace,
        no projection and a message saying so.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1 day, got {window}")
    month_start = today.replace(day=1)
    mtd = sum((v for d, v in daily.items() if month_start <= d <= today), ZERO)
    spent = window_total(daily, today=today, window=window)
    history = complete_days(first_usage, today)

    def result(state: RunwayState, message: str, **known: object) -> Forecast:
        values: dict[str, object] = dict(
            pace_per_day=None, projected_month_end=None, runway_days=None
        )
        values.update(known)
        return Forecast(
            today=today,
            window_days=window,
            history_days=history,
            window_spend=spent,
            month_to_date=mtd,
            state=state,
            message=message,
            **values,  # type: ignore[arg-type]
        )

    if first_usage is None:
        return result(RunwayState.NO_USAGE, "No usage yet, so there is nothing to project.")
    if history < window:
        return result(
            RunwayState.SHORT_HISTORY,
            f"Too little history to project: {history} complete day"
            f"{'' if history == 1 else 's'} of usage, {window} needed.",
        )
    pace = round_nano(spent / window)
    projected = project_at_pace(mtd, window_spend=spent, window=window, today=today)
    known = dict(pace_per_day=pace, projected_month_end=projected)
    days = runway(balance, window_spend=spent, window=window)
    if balance <= 0:
        return result(
            RunwayState.EXHAUSTED,
            "Your balance is used up: buy credits to continue.",
            runway_days=0,
            **known,
        )
    if days is None:
        return result(
            RunwayState.IDLE,
            f"You spent nothing in the last {window} days, so your balance lasts "
            "as long as you do not use it.",
            **known,
        )
    return result(
        RunwayState.PROJECTED,
        f"At your pace of the last {window} days ({unit.format(pace)}/day) your balance "
        f"lasts about {days:,} day{'' if days == 1 else 's'}.",
        runway_days=days,
        **known,
    )


# ---------------------------------------------------------------- run-rate projection (plans)


def project_month_end(
    so_far: Decimal | int, *, month_start: datetime, month_end: datetime, now: datetime
) -> Decimal:
    """Linear run-rate projection of a month's total from its month-to-date value.

    `so_far x (month length / elapsed)`, with time measured in microseconds so the
    ratio is exact up to Decimal's precision. Before the month starts (or at its very
    first instant) nothing can be extrapolated and `so_far` is returned; after it
    ends, `so_far` is the total.

    Args:
        so_far: the month-to-date value (USD, messages, ...), >= 0.
        month_start, month_end: the month's bounds, timezone-aware.
        now: the moment the month-to-date value was taken, timezone-aware.
    Returns: Decimal, unrounded, in the unit of `so_far` (callers round once).
    Raises: ValueError if the bounds are not ordered.
    """
    if month_end <= month_start:
        raise ValueError(f"month_end {month_end} is not after month_start {month_start}")
    value = Decimal(so_far)
    if now >= month_end or now <= month_start:
        return value
    elapsed = _micros(now - month_start)
    length = _micros(month_end - month_start)
    return value * length / elapsed


def _micros(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)
