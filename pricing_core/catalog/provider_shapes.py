"""The provider-shape table: usage payloads in OpenAI's, Anthropic's and Google's own
response shapes, each with the cost the provider's published price list gives, priced
the way a charge is (genai-prices' `extract_usage` reads the payload, `PriceBook.quote`
prices it). It runs in CI (tests/integration/test_pricing_truth.py) and on the
Integrity page, and catches the usage fields peers get wrong: cached tokens inside the
prompt (OpenAI) or beside it (Anthropic), cache writes, reasoning tokens, a long
context past its tier, and the batch and flex tiers.

Expected costs are worked out by hand from the providers' pricing pages (USD per
million tokens, in each case's `source`), not from genai-prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import genai_prices

from pricing_core.catalog.price_book import PriceBook
from pricing_core.domain.costing import TokenCounts
from pricing_core.domain.errors import PricingError
from pricing_core.domain.money import round_nano


@dataclass(frozen=True, slots=True)
class ShapeCase:
    name: str
    provider: str
    api_flavor: str
    payload: dict[str, Any]
    service_tier: str
    at: datetime
    expected: Decimal  # USD, from the published prices in `source`
    source: str


_2025 = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
_LATE_2026 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)

CASES: tuple[ShapeCase, ...] = (
    ShapeCase(
        "OpenAI: cached tokens inside the prompt",
        "openai", "chat",
        {"model": "gpt-4o-2024-08-06", "usage": {
            "prompt_tokens": 2000, "completion_tokens": 500, "total_tokens": 2500,
            "prompt_tokens_details": {"cached_tokens": 1024}}},
        "standard", _2025, Decimal("0.00872"),
        "gpt-4o $2.50 input, $1.25 cached input, $10 output: "
        "976 x 2.50 + 1,024 x 1.25 + 500 x 10 = 8,720 / 1M",
    ),
    ShapeCase(
        "Anthropic: cache reads and writes beside the input",
        "anthropic", "default",
        {"model": "claude-3-5-sonnet-20241022", "usage": {
            "input_tokens": 100, "output_tokens": 300,
            "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 2000}},
        "standard", _2025, Decimal("0.00915"),
        "Claude 3.5 Sonnet $3 input, $3.75 cache write, $0.30 cache read, $15 output: "
        "100 x 3 + 1,000 x 3.75 + 2,000 x 0.30 + 300 x 15 = 9,150 / 1M",
    ),
    ShapeCase(
        "OpenAI: reasoning tokens inside the completion",
        "openai", "chat",
        {"model": "o3-mini", "usage": {
            "prompt_tokens": 1000, "completion_tokens": 5000,
            "completion_tokens_details": {"reasoning_tokens": 4000}}},
        "standard", _2025, Decimal("0.0231"),
        "o3-mini $1.10 input, $4.40 output (reasoning billed as output): "
        "1,000 x 1.10 + 5,000 x 4.40 = 23,100 / 1M",
    ),
    ShapeCase(
        "Google: a 250k-token Gemini prompt with thinking",
        "google", "default",
        {"modelVersion": "gemini-2.5-pro", "usageMetadata": {
            "promptTokenCount": 250000, "candidatesTokenCount": 1000,
            "thoughtsTokenCount": 2000, "totalTokenCount": 253000}},
        "standard", _2025, Decimal("0.67"),
        "Gemini 2.5 Pro over 200k prompt tokens: $2.50 input, $15 output (thinking is "
        "output) for the whole request: 250,000 x 2.50 + 3,000 x 15 = 670,000 / 1M",
    ),
    ShapeCase(
        "OpenAI: the batch tier before the catalog listed it",
        "openai", "chat",
        {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 10000, "completion_tokens": 2000}},
        "batch", _2025, Decimal("0.00135"),
        "gpt-4o-mini Batch API $0.075 input, $0.30 output (half of $0.15 / $0.60): "
        "10,000 x 0.075 + 2,000 x 0.30 = 1,350 / 1M",
    ),
    ShapeCase(
        "OpenAI: the batch tier as the catalog lists it",
        "openai", "chat",
        {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 10000, "completion_tokens": 2000}},
        "batch", _LATE_2026, Decimal("0.00135"),
        "gpt-4o-mini Batch API $0.075 input, $0.30 output: 10,000 x 0.075 + 2,000 x 0.30",
    ),
    ShapeCase(
        "OpenAI: the flex tier",
        "openai", "chat",
        {"model": "o3", "usage": {"prompt_tokens": 1000, "completion_tokens": 1000}},
        "flex", _LATE_2026, Decimal("0.005"),
        "o3 Flex processing $1 input, $4 output (half of $2 / $8): 1,000 x 1 + 1,000 x 4",
    ),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ShapeResult:
    case: ShapeCase
    model: str | None
    counts: TokenCounts | None
    cost: Decimal | None  # our provider cost, USD (None: could not price)
    explanation: str

    @property
    def ok(self) -> bool:
        return self.cost == round_nano(self.case.expected)


def usage_of(provider: str, payload: dict[str, Any], api_flavor: str) -> tuple[str, TokenCounts]:
    """A provider's response body -> (model, token counts), as genai-prices reads it:
    cached reads and cache writes inside the input, reasoning inside the output.
    Raises: ValueError / LookupError from genai-prices for a shape it does not know."""
    found = genai_prices.extract_usage(payload, provider_id=provider, api_flavor=api_flavor)
    u = found.usage
    counts = TokenCounts(
        int(u.input_tokens or 0),
        int(u.output_tokens or 0),
        int(u.cache_read_tokens or 0),
        int(u.cache_write_tokens or 0),
    )
    return str(found.model.id if found.model else payload.get("model")), counts


def check_provider_shapes(book: PriceBook) -> list[ShapeResult]:
    """Price every case of `CASES` as a charge would; each result says if it matches."""
    results = []
    for case in CASES:
        try:
            model, counts = usage_of(case.provider, case.payload, case.api_flavor)
            quote = book.quote(
                provider=case.provider,
                model=model,
                operation="chat_message",
                counts=counts,
                at=case.at,
                service_tier=case.service_tier,
            )
        except (PricingError, ValueError, LookupError) as exc:
            results.append(ShapeResult(case, None, None, None, f"not priced: {exc}"))
            continue
        results.append(ShapeResult(case, model, counts, quote.provider_cost, quote.explanation))
    return results
