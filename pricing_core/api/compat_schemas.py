"""The source systems' request and response shapes (`api.compat`): camelCase field
names, amounts as decimal strings of USD."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from pricing_core.api.responses import (
    AutoTopupOut,
    InvoiceOut,
    PaymentMethodOut,
    StatementOut,
)
from pricing_core.api.schemas import BUDGET_PATTERN, Money, Name, Percent, UserId


class _Out(BaseModel):
    """A response in the source's camelCase field names."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class CompatBalance(_Out):
    balance: Money
    currency: Literal["USD"] = "USD"
    held: Money
    available: Money
    status: Literal["ok", "low", "critical", "negative"]


class CompatMessage(_Out):
    request_id: str
    user_id: str
    model: str
    provider: str
    operation: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost: Money
    created_at: str


class CompatChatUsage(_Out):
    chat_id: str
    title: str | None
    total_cost: Money
    message_count: int
    input_tokens: int
    output_tokens: int
    messages: list[CompatMessage]
    next_cursor: int | None


class CompatModel(_Out):
    provider: str
    model: str
    input_price: str | None = Field(description="USD per million input tokens charged")
    output_price: str | None = Field(description="USD per million output tokens charged")
    cached_input_price: str | None
    priced: bool


class CompatModels(_Out):
    models: list[CompatModel]
    total: int


class CompatEstimate(_Out):
    model: str
    provider: str
    input_tokens: int
    max_output_tokens: int
    estimated_cost: Money
    currency: Literal["USD"] = "USD"
    method: str
    explanation: str


class CompatBudget(_Out):
    period: str
    user_id: str | None
    monthly_limit: Money | None
    current_spend: Money
    held: Money
    remaining: Money | None
    percent_used: str | None
    alert_threshold: int
    thresholds: list[int]
    block_at_limit: bool
    status: Literal["no_budget", "ok", "warning", "exceeded"]


class CompatBudgetUsage(CompatBudget):
    today_spend: Money
    projected_month: Money | None


class CompatBudgetLimitIn(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    monthly_limit: Annotated[str, Field(pattern=BUDGET_PATTERN)] | None = Field(
        description="USD as a decimal string, whole cents; null removes the budget"
    )
    alert_threshold: Percent = Field(80, description="percent of the limit that alerts")
    block_at_limit: bool = Field(True, strict=True)
    user_id: UserId | None = None


class CompatPaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    package_id: Name = Field(description="a credit package id, e.g. popular-v1")


class CompatPayment(_Out):
    session_id: str
    url: str


# The billing documents and methods: the `/api/v1` models, in camelCase.
class CompatStatement(StatementOut, _Out):
    pass


class CompatInvoice(InvoiceOut, _Out):
    pass


class CompatInvoices(_Out):
    statements: list[CompatStatement]
    invoices: list[CompatInvoice]


class CompatPaymentMethod(PaymentMethodOut, _Out):
    pass


class CompatAutoTopup(AutoTopupOut, _Out):
    pass


class CompatMethods(_Out):
    payment_methods: list[CompatPaymentMethod]
    auto_topup: CompatAutoTopup | None
