"""Expected charges computed independently of the product: genai-prices' own
`calc_price` for an OpenAI model, times the default markup, half-even to the nano-USD."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from genai_prices import Usage, calc_price

MARKUP = Decimal("1.25")  # the default PRICING_DEFAULT_MARKUP


def openai_price(model: str, input_tokens: int, output_tokens: int) -> Decimal:
    """What a call of `model` costs now: Decimal USD."""
    exact = calc_price(
        Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        model,
        provider_id="openai",
        genai_request_timestamp=datetime.now(UTC),
    ).total_price
    return (exact * MARKUP).quantize(Decimal("1e-9"), ROUND_HALF_EVEN)
