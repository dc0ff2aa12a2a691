"""What the API returns: response models (amounts as decimal strings of USD) and the
conversions from `pricing_core` values to them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field

from pricing_core.analytics.event_log import EventRow
from pricing_core.api.schemas import Money
from pricing_core.domain.money import usd_str

# ---------------------------------------------------------------- responses


class SuggestionOut(BaseModel):
    """A cheaper way to run the request that fits the budget or cap left
    (PRICING_OPTIMIZATION)."""

    model: str
    provider: str
    max_output_tokens: int
    price: Money
    headroom: Money = Field(description="USD left under the budget or cap")


class HoldOut(BaseModel):
    id: str
    status: Literal["active", "settled", "released", "expired"]
    amount: Money
    request_id: str | None
    user_id: str | None
    operation: str | None
    provider: str | None
    model: str | None
    chat_id: str | None
    input_tokens: int | None
    max_output_tokens: int | None
    estimate_method: str | None
    created_at: datetime
    expires_at: datetime
    closed_at: datetime | None
    substituted_for: str | None = Field(
        None, description="the model asked for, when a cheaper one was held instead"
    )
    suggestion: SuggestionOut | None = None


class UsageOut(BaseModel):
    request_id: str
    event_id: int
    price: Money
    provider_cost: Money
    basis: str
    price_version: str
    explanation: str
    balance_after: Money
    replayed: bool


class SettlementOut(BaseModel):
    hold: HoldOut
    usage: UsageOut
    exceeded_hold: bool


class EventOut(BaseModel):
    event_id: int
    request_id: str
    user_id: str
    chat_id: str | None
    operation: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    provider_cost: Money
    price: Money
    basis: str
    status: str
    price_version: str
    created_at: datetime
    hold_id: str | None
    exceeded_hold: bool | None


class EventPageOut(BaseModel):
    items: list[EventOut]
    next_cursor: int | None


class ChatUsageOut(BaseModel):
    chat_id: str
    user_id: str
    title: str | None
    requests: int
    input_tokens: int
    output_tokens: int
    cost: Money
    first_at: datetime
    last_at: datetime
    events: list[EventOut]
    next_cursor: int | None


class CreditsOut(BaseModel):
    """The same amounts in credits (`PRICING_UNIT=credits`): exact, never rounded."""

    per_usd: str = Field(description="credits per USD (PRICING_CREDITS_PER_USD)")
    balance: str
    held: str
    available: str


class BalanceOut(BaseModel):
    account_id: str
    currency: Literal["USD"] = "USD"
    balance: Money
    held: Money
    available: Money
    credits: CreditsOut | None = Field(
        None, description="the amounts in credits; only when the server shows credits"
    )


class StatementOut(BaseModel):
    """A month's billing record (USD decimal strings); its PDF is on the Billing page."""

    period: str = Field(description="YYYY-MM, in the server's time zone")
    plan_code: str
    plan_version: int | None
    messages: int
    input_tokens: int
    output_tokens: int
    provider_cost: Money
    plan_fee: Money
    overage: Money
    monthly_cap: Money | None
    cap_applied: bool
    payg_usage: Money
    credits_bought: Money
    credits_granted: Money
    refunds: Money
    adjustments: Money
    opening_balance: Money
    closing_balance: Money
    total: Money
    paid: bool


class InvoiceOut(BaseModel):
    """A Stripe invoice (amounts: decimal strings in `currency`)."""

    id: str
    number: str | None
    status: str
    amount_due: str
    amount_paid: str
    currency: str
    description: str | None
    hosted_invoice_url: str | None
    invoice_pdf: str | None
    created_at: datetime


class InvoicesOut(BaseModel):
    account_id: str
    statements: list[StatementOut] = Field(description="monthly billing records, newest first")
    invoices: list[InvoiceOut] = Field(description="Stripe's invoices, newest first")


class PaymentMethodOut(BaseModel):
    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


class AutoTopupOut(BaseModel):
    enabled: bool
    threshold: Money
    package_id: str | None
    amount: Money | None
    monthly_max: Money
    failures: int
    disabled_reason: str | None


class PaymentMethodsOut(BaseModel):
    account_id: str
    payment_methods: list[PaymentMethodOut] = Field(description="saved cards, newest first")
    auto_topup: AutoTopupOut | None


class ModelPriceOut(BaseModel):
    provider: str
    model: str
    priced: bool
    input_mtok: str | None = Field(description="USD per million input tokens charged")
    output_mtok: str | None
    cache_read_mtok: str | None
    markup: str | None


class FixedPriceOut(BaseModel):
    operation: str
    model: str | None = Field(description="null: every model of the operation without its own")
    price: Money = Field(description="USD per unit (an image, a video); x quantity per call")
    credits: str | None = Field(
        None, description="the price in credits, exact; only when the server shows credits"
    )


class ModelListOut(BaseModel):
    items: list[ModelPriceOut]
    total: int
    fixed_prices: list[FixedPriceOut] = Field(
        default_factory=list, description="fixed prices per unit in effect now"
    )


class EstimateOut(BaseModel):
    provider: str
    model: str
    operation: str
    input_tokens: int
    max_output_tokens: int
    price: Money
    provider_cost: Money
    method: str
    price_version: str
    explanation: str


class BudgetOut(BaseModel):
    account_id: str
    user_id: str | None
    period: str
    monthly_limit: Money | None
    operator_default: bool
    thresholds: list[int]
    block_at_limit: bool
    spend: Money
    held: Money
    crossed: list[int]


class ErrorOut(BaseModel):
    error: str
    message: str


class FieldErrorOut(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(ErrorOut):
    detail: list[FieldErrorOut]


class PaymentRequiredOut(ErrorOut):
    balance: Money | None
    available: Money
    required: Money


class LimitErrorOut(ErrorOut):
    limit: str
    scope: str
    operation: str
    value: str
    current: str
    requested: str
    retry_after: int | None
    suggestion: SuggestionOut | None = None


def responses_for(*codes: int) -> dict[int | str, dict[str, Any]]:
    models: dict[int, tuple[type[BaseModel], str]] = {
        400: (ErrorOut, "the body could not be read (not UTF-8 JSON)"),
        401: (ErrorOut, "missing, unknown or revoked API key"),
        402: (PaymentRequiredOut, "insufficient balance"),
        403: (LimitErrorOut, "a per-message token limit"),
        404: (ErrorOut, "not found in the key's account"),
        409: (ErrorOut, "conflict: request id reused, or hold no longer active"),
        422: (ValidationErrorOut, "validation error, with field details"),
        429: (
            LimitErrorOut,
            "a cost cap, budget, free-tier allowance, or too many failed API key attempts "
            "from this address; see Retry-After",
        ),
        500: (ErrorOut, "the server failed; the request changed nothing"),
        501: (ErrorOut, "not available yet (the message says what to use instead)"),
        502: (ErrorOut, "Stripe could not be reached or refused the call"),
        503: (ErrorOut, "payments are not configured or switched off"),
    }
    return {
        c: {"model": models[c][0], "description": models[c][1]}
        for c in (400, 401, 404, 422, 429, 500, *codes)
    }


# ---------------------------------------------------------------- conversions


Out = TypeVar("Out", bound=BaseModel)


def response_from(model: type[Out], source: object, **given: Any) -> Out:
    """A response model filled from `source`'s attributes of the same names.

    Amounts (Decimal USD) become decimal strings, enums their values; `given` sets
    the fields whose value has another name (or no attribute) on `source`.
    """
    unknown = given.keys() - model.model_fields.keys()
    if unknown:
        raise TypeError(f"{model.__name__} has no fields {sorted(unknown)}")
    values = dict(given)
    for name in model.model_fields.keys() - given.keys():
        if hasattr(source, name):
            values[name] = response_value(getattr(source, name))
    return model(**values)


def response_value(value: object) -> object:
    if isinstance(value, Decimal):
        return usd_str(value)
    return value.value if isinstance(value, Enum) else value


def event_out(e: EventRow) -> EventOut:
    return response_from(EventOut, e, event_id=e.id, basis=e.charge_basis)


def rate_str(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def amount_str(value: int | Decimal) -> str:
    return usd_str(value) if isinstance(value, Decimal) else str(value)


def suggestion_out(suggestion: object | None) -> SuggestionOut | None:
    """A `metering.optimize.Suggestion` (or None) as the API shows it."""
    return None if suggestion is None else response_from(SuggestionOut, suggestion)
