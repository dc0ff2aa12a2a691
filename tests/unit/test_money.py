"""Money: exact parsing, the one half-even rounding to the nano-USD, exact unit
conversions, serialization and formatting for people."""

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing_core.domain.money import (
    cents_to_usd,
    format_money,
    format_rate,
    format_tokens,
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
    ("amount", "shown"),
    [
        ("1234.5", "$1,234.50"),  # from a cent up: cents, thousands separated
        ("1000000", "$1,000,000.00"),
        ("0", "$0.00"),
        ("-3", "-$3.00"),
        ("0.0146", "$0.01"),
        ("0.306", "$0.31"),
        ("0.999", "$1.00"),
        ("0.003", "$0.003"),  # below a cent: up to 4 significant digits
        ("-0.00042", "-$0.00042"),
        ("0.000241125", "$0.0002411"),
        ("0.00024115", "$0.0002412"),  # half-even at the 4th digit
        ("0.0099996", "$0.01"),  # rounds up into cents
        ("0.000000001", "$0.000000001"),  # a nano-USD is still not $0.00
        ("-0.0000000001", "$0.00"),  # below a nano-USD is zero, without a sign
    ],
)
def test_one_money_rule_cents_from_a_cent_and_four_significant_digits_below(amount, shown):
    assert format_money(D(amount)) == shown


@given(st.decimals(min_value=-(10**9), max_value=10**9, allow_nan=False, places=9))
def test_every_formatted_amount_reads_back_within_its_rounding(amount):
    text = format_money(amount)
    assert "E" not in text
    value = D(text.replace("$", "").replace(",", ""))
    magnitude = abs(round_nano(amount))
    if magnitude >= D("0.01") or magnitude == 0:
        assert abs(value - round_nano(amount)) <= D("0.005")
        assert len(text.rsplit(".", 1)[1]) == 2
    else:
        digits = text.rsplit(".", 1)[1].lstrip("0")
        assert 1 <= len(digits) <= 4
        assert abs(value - round_nano(amount)) <= magnitude * D("0.0005")


@pytest.mark.parametrize(
    ("rate", "unit", "text"),
    [("0.15", "MTok", "$0.15/MTok"), ("0.3", "MTok", "$0.30/MTok"),
     ("0.0125", "message", "$0.0125/message"), ("2", "call", "$2.00/call")],
)  # fmt: skip
def test_a_rate_is_never_rounded(rate, unit, text):
    assert format_rate(D(rate), unit) == text


def test_token_counts_get_thousands_separators():
    assert format_tokens(1_234_567) == "1,234,567"
