"""Money: exact parsing, the one half-even rounding to the nano-USD, exact unit
conversions, serialization and formatting for people."""

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing_core.domain.money import (
    cents_to_usd,
    format_tokens,
    format_usd,
    format_usd_exact,
    nanos_to_usd,
    round_nano,
    to_usd,
    usd_str,
    usd_to_cents,
    usd_to_nanos,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1.50", D("1.50")), (" 2 ", D(2)), (7, D(7)), (D("0.000000001"), D("1e-9"))],
)
def test_amounts_parse_exactly_from_strings_ints_and_decimals(value, expected):
    assert to_usd(value) == expected


@pytest.mark.parametrize("value", [0.1, 1.0, True, "NaN", "Infinity", "-inf", "abc", "", "1,5"])
def test_floats_bools_and_non_finite_amounts_are_refused(value):
    with pytest.raises(ValueError):
        to_usd(value)


@pytest.mark.parametrize(
    ("amount", "rounded"),
    [
        ("0.0000000005", "0"),  # a tie rounds to the even nano: 0
        ("0.0000000015", "0.000000002"),
        ("0.0000000025", "0.000000002"),
        ("0.00000000250000001", "0.000000003"),
        ("-0.0000000015", "-0.000000002"),
        ("0.000288", "0.000288"),
    ],
)
def test_rounding_is_half_even_to_the_nano_usd(amount, rounded):
    assert round_nano(D(amount)) == D(rounded)


def test_nano_usd_conversion_is_exact_and_refuses_sub_nano_amounts():
    assert usd_to_nanos(D("1.000000001")) == 1_000_000_001
    assert usd_to_nanos(D("-0.25")) == -250_000_000
    assert nanos_to_usd(1_000_000_001) == D("1.000000001")
    with pytest.raises(ValueError, match="nano-USD"):
        usd_to_nanos(D("0.0000000001"))


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_every_bigint_nano_amount_round_trips(nanos):
    assert usd_to_nanos(nanos_to_usd(nanos)) == nanos


def test_cents_conversion_is_exact_and_refuses_sub_cent_amounts():
    assert cents_to_usd(1999) == D("19.99")
    assert usd_to_cents(D("19.99")) == 1999
    with pytest.raises(ValueError, match="cents"):
        usd_to_cents(D("0.001"))


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("0", "0"),
        ("0.000288000", "0.000288"),
        ("10", "10"),
        ("1E+3", "1000"),
        ("-1.50", "-1.5"),
        ("0.0000000015", "0.000000002"),
    ],
)
def test_serialized_amounts_are_plain_decimal_strings(amount, text):
    assert usd_str(D(amount)) == text


@given(st.decimals(min_value=-(10**12), max_value=10**12, allow_nan=False, places=12))
def test_a_serialized_amount_parses_back_to_the_rounded_amount(amount):
    text = usd_str(amount)
    assert "E" not in text and "e" not in text
    assert D(text) == round_nano(amount)


@pytest.mark.parametrize(
    ("amount", "shown", "as_total"),
    [
        ("1234.5", "$1,234.50", "$1,234.50"),
        ("1000000", "$1,000,000.00", "$1,000,000.00"),
        ("0", "$0.00", "$0.00"),
        ("-3", "-$3.00", "-$3.00"),
        ("0.00042", "$0.00042", "$0.00"),  # small amounts keep two significant digits
        ("-0.00042", "-$0.00042", "$0.00"),  # a total of zero cents has no sign
        ("-0.006", "-$0.006", "-$0.01"),
        ("0.0123456", "$0.0123", "$0.01"),
        ("0.999", "$0.999", "$1.00"),
        ("0.000000001", "$0.000000001", "$0.00"),
    ],
)
def test_amounts_are_formatted_for_people(amount, shown, as_total):
    assert format_usd(D(amount)) == shown
    assert format_usd(D(amount), total=True) == as_total


@pytest.mark.parametrize("amount", ["-0.00042", "-0.00499", "-0.005", "-0.000000001"])
def test_a_negative_total_that_rounds_to_zero_cents_shows_no_minus_sign(amount):
    assert format_usd(D(amount), total=True) == "$0.00"


@pytest.mark.parametrize(
    ("amount", "text"),
    [("0.000241125", "$0.000241125"), ("1.5", "$1.50"), ("-3", "-$3.00"), ("1234", "$1,234.00")],
)
def test_exact_formatting_keeps_every_digit_down_to_the_nano(amount, text):
    assert format_usd_exact(D(amount)) == text


def test_token_counts_get_thousands_separators():
    assert format_tokens(1_234_567) == "1,234,567"
