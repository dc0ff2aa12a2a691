"""Calendar periods in a configured time zone: month boundaries and DST changes."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pricing_core.domain.periods import day_period, local_day, month_period

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")


@pytest.mark.parametrize(
    ("instant", "zone", "label", "starts_at", "ends_at"),
    [
        # 23:30 UTC on Jan 31 is already February 1st in Berlin (UTC+1 in winter).
        (
            datetime(2025, 1, 31, 23, 30, tzinfo=UTC),
            BERLIN,
            "2025-02",
            datetime(2025, 1, 31, 23, 0, tzinfo=UTC),
            datetime(2025, 2, 28, 23, 0, tzinfo=UTC),
        ),
        # 22:59 UTC on Jan 31 is still January in Berlin.
        (
            datetime(2025, 1, 31, 22, 59, tzinfo=UTC),
            BERLIN,
            "2025-01",
            datetime(2024, 12, 31, 23, 0, tzinfo=UTC),
            datetime(2025, 1, 31, 23, 0, tzinfo=UTC),
        ),
        # March in Berlin has a DST change: it starts at UTC+1 and ends at UTC+2.
        (
            datetime(2025, 3, 15, tzinfo=UTC),
            BERLIN,
            "2025-03",
            datetime(2025, 2, 28, 23, 0, tzinfo=UTC),
            datetime(2025, 3, 31, 22, 0, tzinfo=UTC),
        ),
        # New York: 03:00 UTC on Nov 1 is still October 31st (UTC-4).
        (
            datetime(2025, 11, 1, 3, 0, tzinfo=UTC),
            NEW_YORK,
            "2025-10",
            datetime(2025, 10, 1, 4, 0, tzinfo=UTC),
            datetime(2025, 11, 1, 4, 0, tzinfo=UTC),
        ),
        # New York's November has the fall-back change: ends at UTC-5.
        (
            datetime(2025, 11, 20, tzinfo=UTC),
            NEW_YORK,
            "2025-11",
            datetime(2025, 11, 1, 4, 0, tzinfo=UTC),
            datetime(2025, 12, 1, 5, 0, tzinfo=UTC),
        ),
        # Tokyo, December -> January across the year boundary (UTC+9, no DST).
        (
            datetime(2025, 12, 31, 15, 0, tzinfo=UTC),
            TOKYO,
            "2026-01",
            datetime(2025, 12, 31, 15, 0, tzinfo=UTC),
            datetime(2026, 1, 31, 15, 0, tzinfo=UTC),
        ),
    ],
)
def test_a_month_starts_and_ends_at_local_midnight(instant, zone, label, starts_at, ends_at):
    period = month_period(instant, zone)
    assert (period.label, period.starts_at, period.ends_at) == (label, starts_at, ends_at)
    assert period.starts_at <= instant < period.ends_at


def test_the_day_of_a_dst_change_is_23_or_25_hours_long():
    spring = day_period(datetime(2025, 3, 30, 12, tzinfo=UTC), BERLIN)
    autumn = day_period(datetime(2025, 10, 26, 12, tzinfo=UTC), BERLIN)
    assert spring.ends_at - spring.starts_at == timedelta(hours=23)
    assert autumn.ends_at - autumn.starts_at == timedelta(hours=25)
    assert (spring.first_day, autumn.first_day) == (date(2025, 3, 30), date(2025, 10, 26))


def test_consecutive_months_tile_time_without_gaps_or_overlaps():
    instant = datetime(2024, 1, 15, tzinfo=UTC)
    for _ in range(24):
        period = month_period(instant, NEW_YORK)
        following = month_period(period.ends_at, NEW_YORK)
        assert following.starts_at == period.ends_at
        assert local_day(period.ends_at - timedelta(microseconds=1), NEW_YORK) == (
            period.end_day - timedelta(days=1)
        )
        instant = period.ends_at


def test_seconds_left_counts_to_the_local_month_end():
    now = datetime(2025, 3, 31, 21, 0, tzinfo=UTC)  # 23:00 in Berlin (UTC+2)
    assert month_period(now, BERLIN).seconds_left(now) == 3600


def test_naive_instants_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        month_period(datetime(2025, 1, 1), BERLIN)
