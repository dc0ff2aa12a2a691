"""Calendar periods (day / week / month) in the configured time zone. Pure: pass `now`.

A period is named by its first day: days by themselves, ISO weeks by their Monday,
months by their 1st. A date range is inclusive of both ends; its UTC bounds are the
start of its first day and the start of the day after its last day, in the zone.

Budgets and caps reset on calendar boundaries in `PRICING_TIMEZONE`, never on rolling
windows: "this month" for a user in Berlin starts at local midnight on the 1st,
which is 22:00 or 23:00 UTC the day before depending on daylight saving time.
Usage rollups store the local calendar `day`, so a period is a range of days
(`Period`, `day_period`, `month_period`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from pricing_core.domain.errors import InvalidUsage

MAX_RANGE_DAYS = 3660  # ten years: a report wider than this is a typo


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_micros(at: datetime) -> int:
    """A timezone-aware instant as integer microseconds since the Unix epoch (UTC).
    Raises: TypeError if `at` is naive."""
    return (at - EPOCH) // timedelta(microseconds=1)


def from_epoch_micros(micros: int) -> datetime:
    """Microseconds since the Unix epoch as a UTC datetime."""
    return EPOCH + timedelta(microseconds=int(micros))


class Granularity(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


def period_start(day: date, granularity: Granularity) -> date:
    """The first day of the period containing `day`."""
    if granularity is Granularity.DAY:
        return day
    if granularity is Granularity.WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def period_starts(start: date, end: date, granularity: Granularity) -> list[date]:
    """Every period touching [start, end], by its first day, in order."""
    check_range(start, end)
    out: list[date] = []
    current = period_start(start, granularity)
    while current <= end:
        out.append(current)
        current = next_period(current, granularity)
    return out


def next_period(first_day: date, granularity: Granularity) -> date:
    if granularity is Granularity.DAY:
        return first_day + timedelta(days=1)
    if granularity is Granularity.WEEK:
        return first_day + timedelta(days=7)
    year, month = divmod(first_day.month, 12)
    return date(first_day.year + year, month + 1, 1)


@dataclass(frozen=True, slots=True)
class MonthPieces:
    """A day range as month totals plus and minus day ranges (inclusive pairs): the
    range's sum is sum(months) + sum(add) - sum(subtract). See `month_pieces`."""

    months: tuple[date, ...]  # first days of the months taken whole
    add: tuple[tuple[date, date], ...]
    subtract: tuple[tuple[date, date], ...]


def month_pieces(start: date, end: date) -> MonthPieces:
    """[start, end] split so that a sum over it reads the fewest rollup rows: a month
    the range covers in more than half is taken whole, less the days of it outside the
    range; any other month contributes its days inside the range.
    Raises: InvalidUsage (via check_range)."""
    check_range(start, end)
    months: list[date] = []
    add: list[tuple[date, date]] = []
    subtract: list[tuple[date, date]] = []
    for first in period_starts(start, end, Granularity.MONTH):
        last = next_period(first, Granularity.MONTH) - timedelta(days=1)
        lo, hi = max(start, first), min(end, last)
        if 2 * ((hi - lo).days + 1) <= (last - first).days + 1:
            add.append((lo, hi))
            continue
        months.append(first)
        if lo > first:
            subtract.append((first, lo - timedelta(days=1)))
        if hi < last:
            subtract.append((hi + timedelta(days=1), last))
    return MonthPieces(tuple(months), tuple(add), tuple(subtract))


def check_range(start: date, end: date) -> None:
    """Raises: InvalidUsage if the range is reversed or absurdly wide."""
    if not isinstance(start, date) or not isinstance(end, date):
        raise InvalidUsage(f"a date range needs two dates, got {start!r} and {end!r}")
    if end < start:
        raise InvalidUsage(f"the range ends ({end}) before it starts ({start})")
    if (end - start).days > MAX_RANGE_DAYS:
        raise InvalidUsage(f"the range {start}..{end} is longer than {MAX_RANGE_DAYS} days")


def utc_bounds(start: date, end: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[lo, hi) in UTC covering the local days start..end inclusive."""
    lo = datetime.combine(start, time(), tzinfo=tz).astimezone(UTC)
    hi = datetime.combine(end + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
    return lo, hi


def local_day(at: datetime, tz: ZoneInfo) -> date:
    """The calendar day of an instant in the zone. Raises: ValueError if naive."""
    if at.tzinfo is None:
        raise ValueError(f"now must be timezone-aware: {at!r}")
    return at.astimezone(tz).date()


def parse_day(text: str) -> date:
    """`YYYY-MM-DD` -> date. Raises: InvalidUsage."""
    try:
        return date.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise InvalidUsage(f"not a date (YYYY-MM-DD): {text!r:.40}") from None


def local_moment(day: date, at: time, tz: ZoneInfo) -> datetime:
    """A wall-clock day and time in the zone -> an aware UTC datetime (DST gaps and
    folds resolve as zoneinfo does: the earlier offset)."""
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


# ---------------------------------------------------------------- periods for budgets and caps


class PeriodKind(StrEnum):
    DAY = "day"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class Period:
    """A calendar day or month in a time zone.

    Attributes:
        first_day: the first local calendar day in the period.
        end_day: the first local calendar day after the period (exclusive).
        starts_at / ends_at: the same bounds as UTC instants (ends_at exclusive).
        label: "YYYY-MM" for a month, "YYYY-MM-DD" for a day.
    """

    kind: PeriodKind
    first_day: date
    end_day: date
    starts_at: datetime
    ends_at: datetime
    label: str

    def seconds_left(self, now: datetime) -> int:
        """Whole seconds from `now` until the period ends (at least 1)."""
        return max(1, int((self.ends_at - now).total_seconds() + 0.999999))


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    # Midnight may not exist (a DST jump at 00:00); zoneinfo then picks the
    # post-transition offset, which is the instant the local day starts.
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def day_period(now: datetime, tz: ZoneInfo) -> Period:
    """The local calendar day containing `now`."""
    first = local_day(now, tz)
    end = first + timedelta(days=1)
    return Period(
        PeriodKind.DAY,
        first,
        end,
        _local_midnight(first, tz),
        _local_midnight(end, tz),
        first.isoformat(),
    )


def month_period(now: datetime, tz: ZoneInfo) -> Period:
    """The local calendar month containing `now`."""
    today = local_day(now, tz)
    first = today.replace(day=1)
    end = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return Period(
        PeriodKind.MONTH,
        first,
        end,
        _local_midnight(first, tz),
        _local_midnight(end, tz),
        f"{first.year:04d}-{first.month:02d}",
    )


def period_of(kind: PeriodKind, now: datetime, tz: ZoneInfo) -> Period:
    """`day_period` or `month_period` by kind."""
    return day_period(now, tz) if kind is PeriodKind.DAY else month_period(now, tz)


# ---------------------------------------------------------------- months

MONTH_PATTERN = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")


def month_of(moment: datetime, tz: ZoneInfo) -> str:
    """The calendar month "YYYY-MM" of a timezone-aware moment in `tz`."""
    return moment.astimezone(tz).strftime("%Y-%m")


def month_bounds(month: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The first instant of `month` and of the next month, in `tz` (aware datetimes)."""
    if not MONTH_PATTERN.match(month):
        raise InvalidUsage(f"month must be YYYY-MM, got {month!r}")
    year, mon = int(month[:4]), int(month[5:])
    start = datetime(year, mon, 1, tzinfo=tz)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=tz)
    return start, end


def previous_months(month: str, count: int) -> list[str]:
    """The `count` calendar months before `month`, oldest first."""
    year, mon = int(month[:4]), int(month[5:])
    out = []
    for _ in range(count):
        year, mon = (year - 1, 12) if mon == 1 else (year, mon - 1)
        out.append(f"{year:04d}-{mon:02d}")
    return out[::-1]


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months later; a day the target month
    lacks (the 31st) becomes its last day, as Stripe bills monthly subscriptions."""
    year, month = divmod(moment.month - 1 + months, 12)
    target_year, target_month = moment.year + year, month + 1
    for day in (moment.day, 30, 29, 28):  # the 31st bills on the month's last day
        try:
            return moment.replace(year=target_year, month=target_month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def time_of_day_micros(value: object) -> int:
    """A time of day (naive = UTC) -> microseconds since midnight UTC."""
    moment = datetime.combine(datetime(1970, 1, 1).date(), value)  # type: ignore[arg-type]
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return (
        moment.hour * 3600 + moment.minute * 60 + moment.second
    ) * 1_000_000 + moment.microsecond
