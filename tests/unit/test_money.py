"""Money: exact parsing, the one half-even rounding to the nano-USD, exact unit
conversions, serialization and formatting for people."""

from decimal import Decimal
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing_core.domain.money import (
    DisplayUnit,
    cents_to_usd,
    check_credit_rate,
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


# ---------------------------------------------------------------- the display unit

CREDITS = DisplayUnit(Decimal(10))


@pytest.mark.parametrize(
    ("usd", "shown"),
    [
        ("2", "20 credits"),
        ("1.25", "12.5 credits"),
        ("0.1", "1 credit"),
        ("-2", "-20 credits"),
        ("0", "0 credits"),
        ("0.00031", "< 0.01 credits"),  # a token-priced message: never "0 credits"
        ("-0.00031", "-< 0.01 credits"),
        ("0.000999", "< 0.01 credits"),  # 0.00999 credits: below the last place, said so
        ("0.001", "0.01 credits"),
        ("12345.678", "123,456.78 credits"),
    ],
)
def test_credits_read_with_two_places_and_tiny_amounts_never_read_as_nothing(usd, shown):
    assert CREDITS.format(Decimal(usd)) == shown


def test_more_credit_places_show_small_charges_and_usd_stays_format_money():
    assert DisplayUnit(Decimal(10), 4).format(Decimal("0.00031")) == "0.0031 credits"
    assert DisplayUnit().format(Decimal("0.00031")) == format_money(Decimal("0.00031"))


@pytest.mark.parametrize("rate", ["3", "7", "0.3", "1.5", "0", "-10", "NaN"])
def test_a_credit_rate_must_split_a_usd_into_whole_nano_usd(rate):
    with pytest.raises(ValueError):
        check_credit_rate(rate)


@given(
    st.integers(-(10**15), 10**15),
    st.sampled_from(["10", "100", "1000", "8", "2.5", "1", "1000000000"]),
)
def test_an_amount_in_credits_converts_back_to_the_same_nano_usd(nanos, rate):
    unit = DisplayUnit(check_credit_rate(rate))
    usd = Decimal(nanos).scaleb(-9)
    assert unit.to_usd(unit.plain(usd)) == usd  # exact both ways: no rounding anywhere
    assert Decimal(unit.plain(usd)) == usd * Decimal(rate)


def test_a_part_of_a_nano_usd_in_credits_is_refused():
    with pytest.raises(ValueError, match="nano-USD"):
        CREDITS.to_usd("0.000000001")  # 0.0000000001 USD


def test_a_token_charge_explains_itself_in_exact_credits():
    from pricing_core.domain.costing import TokenCounts, TokenRates, quote_tokens

    quote = quote_tokens(
        TokenCounts(1000, 100), provider_cost=Decimal("0.00021"),
        provider_rates=TokenRates(Decimal("0.15"), Decimal("0.6")), markup=Decimal("1.25"),
        price_version="t", unit=CREDITS,
    )  # fmt: skip
    assert quote.explanation == (
        "1,000 input tokens x 1.5 credits/MTok + 100 output tokens x 6 credits/MTok = "
        "0.0021 credits at the provider's price; our price 0.002625 credits"
    )
