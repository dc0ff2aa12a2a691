"""The measured linear provider cost (`catalog.linear`) against genai-prices itself.

The reference is `genai_prices.calc_price` called here directly: every model of the
snapshot, token counts across tier edges, moments across price periods and times of
day. A charge's provider cost and its quote must equal it exactly.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import genai_prices
import pytest
from genai_prices import Usage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricing_core.catalog.linear import standard_cost
from pricing_core.catalog.price_book import PriceBook, _find, known_models
from pricing_core.domain.costing import EXACT_DIGITS, LinearCharge, TokenCounts

START = datetime(2024, 1, 1, tzinfo=UTC)
EDGES = [0, 1, 127_999, 128_000, 128_001, 199_999, 200_000, 200_001, 272_000, 1_000_000]


def calc_price(provider: str, model: str, counts: TokenCounts, at: datetime) -> Decimal:
    usage = Usage(
        input_tokens=counts.input_tokens,
        output_tokens=counts.output_tokens,
        cache_read_tokens=counts.cached_tokens,
    )
    return genai_prices.calc_price(
        usage, model, provider_id=provider, genai_request_timestamp=at
    ).total_price


def priced_models() -> list[tuple[str, str]]:
    """The snapshot's models that calc_price prices by tokens now."""
    out = []
    for provider, model in known_models():
        try:
            calc_price(provider, model, TokenCounts(1000, 100), START + timedelta(days=600))
        except Exception:  # noqa: BLE001 - not priced by tokens: not this module's case
            continue
        out.append((provider, model))
    return out


MODELS = priced_models()
tokens = st.one_of(st.sampled_from(EDGES), st.integers(0, 2_000_000))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(MODELS),
    tokens,
    st.integers(0, 200_000),
    st.integers(0, 100),
    st.integers(0, 1100 * 86_400),
)
def test_standard_cost_equals_calc_price(model, input_tokens, output_tokens, percent, second):
    provider, name = model
    counts = TokenCounts(input_tokens, output_tokens, input_tokens * percent // 100)
    at = START + timedelta(seconds=second)
    _provider, info = _find(provider, name)
    price = info.get_prices(at)  # type: ignore[attr-defined]
    expected = calc_price(provider, name, counts, at)
    assert standard_cost(provider, name, counts, at, price) == expected


@pytest.mark.parametrize(
    "provider,model",
    [("google", "gemini-2.5-pro"), ("deepseek", "deepseek-chat"), ("openai", "gpt-4o")],
)
def test_a_quotes_provider_cost_is_calc_prices_at_tier_edges_and_times_of_day(provider, model):
    book = PriceBook(default_markup=Decimal("1.25"))
    for input_tokens in EDGES:
        for hour in (0, 1, 16, 17, 23):  # deepseek's off-peak hours start at 16:30 UTC
            at = datetime(2026, 3, 2, hour, 45, tzinfo=UTC)
            counts = TokenCounts(input_tokens, 777, input_tokens // 3)
            quote = book.quote(
                provider=provider, model=model, operation="chat_message", counts=counts, at=at
            )
            assert quote.provider_cost == calc_price(provider, model, counts, at)


def test_exact_at_refuses_where_28_digit_decimals_could_round():
    small = LinearCharge(Decimal(0), Decimal("0.0000025"), Decimal("0.00000125"), Decimal("1E-5"))
    assert small.exact_at(1000, 10, 100) == Decimal("0.0025125") + Decimal("0.001")
    wide = LinearCharge(Decimal(0), Decimal("1." + "3" * 20), Decimal(0), Decimal(0))
    assert wide.exact_at(10**7, 0, 0) is None  # 28 digits: calc_price decides
    assert wide.exact_at(10**6, 0, 0) == Decimal("1333333.333333333333330")
    assert wide.exact_at(1, 0, 0) is not None
    assert len(str(10**EXACT_DIGITS)) == EXACT_DIGITS + 1
