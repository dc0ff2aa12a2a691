"""`month_pieces`: a day range as whole months plus and minus edge days."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.periods import month_pieces


def _days(lo: date, hi: date) -> list[date]:
    return [lo + timedelta(days=k) for k in range((hi - lo).days + 1)]


def _month_days(first: date) -> list[date]:
    return [d for d in _days(first, first + timedelta(days=31)) if d.month == first.month]


@given(
    start=st.dates(min_value=date(2023, 1, 1), max_value=date(2027, 12, 31)),
    length=st.integers(0, 400),
)
def test_the_pieces_add_up_to_exactly_the_days_of_the_range(start, length):
    end = start + timedelta(days=length)
    pieces = month_pieces(start, end)
    counted: Counter[date] = Counter()
    for first in pieces.months:
        assert first.day == 1
        counted.update(_month_days(first))
    for lo, hi in pieces.add:
        counted.update(_days(lo, hi))
    for lo, hi in pieces.subtract:
        counted.subtract(_days(lo, hi))
    assert +counted == Counter(_days(start, end))
    assert all(n in (0, 1) for n in counted.values())  # nothing taken away twice
    # a month is taken whole only when that reads fewer days than its inside would
    for first in pieces.months:
        inside = [d for d in _month_days(first) if start <= d <= end]
        assert 2 * len(inside) > len(_month_days(first))


def test_a_trailing_thirty_days_reads_one_month_and_the_edges():
    pieces = month_pieces(date(2026, 10, 31), date(2026, 11, 29))
    assert pieces.months == (date(2026, 11, 1),)
    assert pieces.add == ((date(2026, 10, 31), date(2026, 10, 31)),)
    assert pieces.subtract == ((date(2026, 11, 30), date(2026, 11, 30)),)


def test_a_short_range_inside_a_month_is_read_by_its_days():
    pieces = month_pieces(date(2026, 2, 3), date(2026, 2, 9))
    assert pieces.months == () and pieces.subtract == ()
    assert pieces.add == ((date(2026, 2, 3), date(2026, 2, 9)),)


def test_a_reversed_range_is_refused():
    with pytest.raises(InvalidUsage):
        month_pieces(date(2026, 2, 9), date(2026, 2, 3))
