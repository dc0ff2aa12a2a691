"""Pure costing: a quote's numbers and explanation against an independent computation."""

from decimal import ROUND_HALF_EVEN
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing_core.domain.costing import (
    ChargeBasis,
    TokenCounts,
    TokenRates,
    quote_fixed,
    quote_tokens,
)
from pricing_core.domain.errors import InvalidUsage

NANO = D("1e-9")
MINI = TokenRates(D("0.15"), D("0.6"), D("0.075"))  # gpt-4o-mini, USD per MTok


def by_hand(tokens_and_rates: list[tuple[int, str]]) -> D:
    """Sum of tokens x rate / 1e6, exactly."""
    return sum((D(t) * D(r) / D(1_000_000) for t, r in tokens_and_rates), D(0))


def test_a_token_quote_is_tokens_times_rate_times_markup_and_says_so():
    counts = TokenCounts(1020, 129)
    cost = by_hand([(1020, "0.15"), (129, "0.6")])  # 0.000153 + 0.0000774
    assert cost == D("0.0002304")
    quote = quote_tokens(
        counts, provider_cost=cost, provider_rates=MINI, markup=D("1.25"), price_version="v1"
    )
    assert quote.provider_cost == D("0.000230400")
    assert quote.price == D("0.000288")  # 0.0002304 x 1.25
    assert quote.basis is ChargeBasis.PAYG and quote.price_version == "v1"
    assert quote.explanation == (
        "1,020 input tokens x $0.15/MTok + 129 output tokens x $0.60/MTok = $0.0002304"
        " at the provider's price; our price $0.000288"
    )
    assert "markup" not in quote.explanation  # the account's people see "our price"
    assert quote.admin_explanation == quote.explanation + "; markup x1.25"
    assert [(line.label, line.tokens, line.amount) for line in quote.lines] == [
        ("input", 1020, D("0.000153")),
        ("output", 129, D("0.0000774")),
    ]


def test_cached_input_is_priced_at_the_cache_read_rate():
    counts = TokenCounts(1000, 10, cached_tokens=400)
    cost = by_hand([(600, "0.15"), (400, "0.075"), (10, "0.6")])
    quote = quote_tokens(
        counts, provider_cost=cost, provider_rates=MINI, markup=D(1), price_version="v"
    )
    assert [line.label for line in quote.lines] == ["input", "cached input", "output"]
    assert quote.price == cost.quantize(NANO, ROUND_HALF_EVEN) == D("0.000126")
    assert "x markup" not in quote.explanation  # a markup of 1 is not mentioned
    assert "400 cached input tokens x $0.075/MTok" in quote.explanation


def test_operator_override_rates_set_the_price_but_not_the_provider_cost():
    counts = TokenCounts(2_000_000, 1_000_000)
    override = TokenRates(D("1"), D("2"))
    quote = quote_tokens(
        counts,
        provider_cost=D("0.9"),
        provider_rates=MINI,
        markup=D("1.1"),
        override=override,
        price_version="v",
    )
    assert quote.provider_cost == D("0.9")
    assert quote.price == (D(2) * 1 + D(1) * 2) * D("1.1")  # 4.4
    assert "2,000,000 input tokens x $1.00/MTok" in quote.explanation


def test_the_price_is_rounded_once_half_even_to_the_nano_usd():
    # 1 output token at $2.5/MTok = 0.0000025 USD; x markup 0.001 = 0.0000000025 -> ...02
    quote = quote_tokens(
        TokenCounts(0, 1),
        provider_cost=D("0.0000025"),
        provider_rates=TokenRates(D("0.3"), D("2.5")),
        markup=D("0.001"),
        price_version="v",
    )
    assert quote.price == D("0.000000002")


@given(
    input_tokens=st.integers(0, 200_000),
    output_tokens=st.integers(0, 50_000),
    markup=st.decimals(min_value=0, max_value=5, places=3),
)
def test_any_token_quote_matches_an_independent_computation(input_tokens, output_tokens, markup):
    cost = by_hand([(input_tokens, "0.15"), (output_tokens, "0.6")])
    quote = quote_tokens(
        TokenCounts(input_tokens, output_tokens),
        provider_cost=cost,
        provider_rates=MINI,
        markup=markup,
        price_version="v",
    )
    assert quote.price == (cost * markup).quantize(NANO, ROUND_HALF_EVEN)
    assert quote.provider_cost == cost.quantize(NANO, ROUND_HALF_EVEN)


def test_a_negative_markup_is_refused():
    with pytest.raises(InvalidUsage, match="markup"):
        quote_tokens(
            TokenCounts(1, 1),
            provider_cost=D(0),
            provider_rates=MINI,
            markup=D("-1"),
            price_version="v",
        )


@pytest.mark.parametrize(
    ("counts", "needle"),
    [
        ((-1, 0, 0), "input_tokens"),
        ((1, -1, 0), "output_tokens"),
        ((1.5, 0, 0), "integer"),
        ((True, 0, 0), "integer"),
        (("12", 0, 0), "integer"),
        ((1, 1, 2), "exceed"),
    ],
)
def test_token_counts_refuse_negative_non_integer_and_inconsistent_values(counts, needle):
    with pytest.raises(InvalidUsage, match=needle):
        TokenCounts(*counts)


def test_a_fixed_price_quote_says_the_price_per_call():
    quote = quote_fixed(
        "image_generation", price=D("0.04"), provider_cost=D("0.02"), price_version="op:1"
    )
    assert (quote.price, quote.provider_cost, quote.basis) == (
        D("0.04"),
        D("0.02"),
        ChargeBasis.FIXED,
    )
    assert quote.explanation == "fixed price for image_generation: $0.04/call"
