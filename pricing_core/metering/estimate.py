"""Estimates before a model call: prompt tokens counted or given, the provider
resolved, and the price of the call at its largest (`max_output_tokens`), priced as
`record_usage` would price it. Also the user ids of anonymous sessions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
from sqlalchemy import Engine

from pricing_core.catalog.price_book import get_price_book
from pricing_core.config import get_settings
from pricing_core.domain.costing import TokenCounts
from pricing_core.domain.errors import (
    InsufficientBalance,
    InvalidUsage,
    PricingError,
    UnknownModel,
)
from pricing_core.domain.usage_event import (
    ANONYMOUS_PREFIX,
    MAX_TOKENS,
    check_name,
    check_quantity,
)
from pricing_core.ledger.wallets import get_wallet

DEFAULT_OPERATION = "chat_message"
HEURISTIC = "heuristic: 4 ASCII chars per token (up) + 1 per other char"  # < 64 chars: a column
GIVEN = "given"


class UnknownUser(PricingError):
    """The user is not a user of this account (a key acts only for its own users)."""


def anonymous_user_id(session_id: str) -> str:
    """The user id under which an anonymous session's usage is recorded."""
    return f"{ANONYMOUS_PREFIX}{session_id}"


def is_anonymous(user_id: str | None) -> bool:
    return bool(user_id) and str(user_id).startswith(ANONYMOUS_PREFIX)


# ---------------------------------------------------------------- estimates


@dataclass(frozen=True, slots=True)
class Estimate:
    """The most a call can cost: its prompt tokens plus `max_output_tokens`.

    Amounts: Decimal USD (rounded to the nano-USD). `method` says how the input
    tokens were counted: "given" (by the caller) or the heuristic (`HEURISTIC`).
    """

    provider: str
    model: str
    operation: str
    input_tokens: int
    max_output_tokens: int
    price: Decimal
    provider_cost: Decimal
    method: str
    price_version: str
    explanation: str


def count_prompt_tokens(text: str) -> int:
    """Estimate the tokens of a prompt without a tokenizer.

    No tokenizer with bundled data is installed (tiktoken downloads its BPE files at
    run time, which this product must not do), so this is a documented heuristic:
    ceil(ASCII characters / 4) + 1 per non-ASCII character. The first term is
    OpenAI's rule of thumb for English ("a token is about 4 characters"); the second
    over-counts accented Latin and counts CJK about right, so for the purpose of a
    hold the estimate errs high.
    """
    if not isinstance(text, str):
        raise InvalidUsage(f"prompt_text must be a string, got {type(text).__name__}")
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    return math.ceil(ascii_chars / 4) + (len(text) - ascii_chars)


def resolve_provider(model: str, provider: str | None) -> str:
    """The provider id for `model` (given, or found in the genai-prices snapshot).

    Raises: UnknownModel.
    """
    if provider:
        return provider
    snapshot = genai_prices.data_snapshot.get_snapshot()
    try:
        found, _ = snapshot.find_provider_model(model, None, None, None)
    except LookupError:
        raise UnknownModel(f"unknown model {model!r} (no provider given)") from None
    return str(found.id)


def _tokens(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidUsage(f"{name} must be an integer, got {value!r:.80}")
    if not 0 <= value <= MAX_TOKENS:
        raise InvalidUsage(f"{name} must be between 0 and {MAX_TOKENS:,}, got {value}")
    return value


def estimate_cost(
    engine: Engine,
    *,
    model: str,
    max_output_tokens: int,
    prompt_text: str | None = None,
    prompt_tokens: int | None = None,
    provider: str | None = None,
    operation: str = DEFAULT_OPERATION,
    quantity: int = 1,
    now: datetime | None = None,
) -> Estimate:
    """Price the largest possible call: the prompt plus `max_output_tokens`.

    Args: exactly one of `prompt_text` (counted by `count_prompt_tokens`) or
        `prompt_tokens`. `provider` is inferred from the model when omitted ("" for
        a model with a fixed price for `operation`, which needs none).
        `quantity`: units of a fixed-price operation (`UsageEvent.quantity`).
    Returns: Estimate (Decimal USD). Raises: InvalidUsage, UnknownModel.
    Prices: the price book in effect now (genai-prices + operator rows).
    """
    at = now or datetime.now(UTC)
    check_name("model", model)
    check_name("operation", operation)
    if (prompt_text is None) == (prompt_tokens is None):
        raise InvalidUsage("give exactly one of prompt_text and prompt_tokens")
    if prompt_text is not None:
        input_tokens, method = count_prompt_tokens(prompt_text), HEURISTIC
        _tokens("prompt tokens (estimated)", input_tokens)
    else:
        input_tokens, method = _tokens("prompt_tokens", prompt_tokens), GIVEN
    output = _tokens("max_output_tokens", max_output_tokens)
    book = get_price_book(engine)
    if not provider and book.operation_row(operation, at, model) is not None:
        provider_id = ""  # a fixed price is per operation and model, whoever serves it
    else:
        provider_id = resolve_provider(model, provider)
        check_name("provider", provider_id)
    quote = book.quote(
        provider=provider_id,
        model=model,
        operation=operation,
        counts=TokenCounts(input_tokens, output),
        at=at,
        quantity=check_quantity(quantity),
    )
    return Estimate(
        provider_id,
        model,
        operation,
        input_tokens,
        output,
        quote.price,
        quote.provider_cost,
        method,
        quote.price_version,
        quote.explanation,
    )


def check_affordable(engine: Engine, account_id: str, price: Decimal) -> None:
    """The balance check `authorize` makes, without holding anything: the available
    balance must cover `price` (Decimal USD) and be at least
    `PRICING_MINIMUM_BALANCE_USD`. Raises: InsufficientBalance, UnknownAccount."""
    wallet = get_wallet(engine, account_id)
    needed = max(price, get_settings().minimum_balance_usd)
    if wallet.available < needed:
        raise InsufficientBalance(account_id, wallet.available, needed, balance=wallet.balance)
