"""The source systems' API paths under `/api`, for clients already written against them.

Mounted next to `/api/v1` (OpenAPI at `/api/openapi.json`, tag "compatibility").
Same API-key authentication and the same JSON errors as `/api/v1`; every route
calls the `/api/v1` route's function (`api.routes`) and renames its fields: no
second implementation. Field names are the source's camelCase; amounts are decimal
strings of USD, as in `/api/v1`.

    GET  /api/balance                 -> /api/v1/balance (+ status: ok/low/critical/negative)
    GET  /api/usage/chat/{chatId}     -> /api/v1/chats/{chat_id}/usage
    GET  /api/pricing/models          -> /api/v1/pricing/models
    GET  /api/pricing/estimate        -> POST /api/v1/estimate; 402 when the available
                                         balance cannot cover it (the source's pre-flight)
    GET  /api/budget/status           -> /api/v1/budget
    PUT  /api/budget/limit            -> PUT /api/v1/budget
    GET  /api/budget/usage            -> /api/v1/budget, with today's spend and the
                                         month's projection (the Overview figures)
    POST /api/billing/payment         -> a Stripe Checkout Session for a credit package
    GET  /api/billing/invoices        -> /api/v1/billing/invoices (statements, invoices)
    GET  /api/billing/methods         -> /api/v1/billing/methods (saved cards, auto top-up)
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Literal

from fastapi import FastAPI, Query

from pricing_core.analytics.account import balance_state, overview
from pricing_core.api.answers import (
    balance_out,
    budget_response,
    chat_usage_out,
    estimate_out,
    invoices_out,
    methods_out,
    model_list_out,
    save_budget,
)
from pricing_core.api.compat_schemas import (
    CompatBalance,
    CompatBudget,
    CompatBudgetLimitIn,
    CompatBudgetUsage,
    CompatChatUsage,
    CompatEstimate,
    CompatInvoices,
    CompatMessage,
    CompatMethods,
    CompatModel,
    CompatModels,
    CompatPayment,
    CompatPaymentIn,
)
from pricing_core.api.errors import (
    Db,
    Key,
    check_own_user,
    new_api,
)
from pricing_core.api.responses import EventOut, response_value, responses_for
from pricing_core.api.schemas import (
    NAME_PATTERN,
    BudgetIn,
    ChatId,
    Cursor,
    EstimateIn,
    NameQuery,
    PageLimit,
    UserIdQuery,
)
from pricing_core.billing.checkout import create_checkout
from pricing_core.domain.usage_event import MAX_TOKENS
from pricing_core.limits.budgets import budget_report
from pricing_core.metering import estimate

TAG = "compatibility"


def _money(value: object) -> str:
    text = response_value(value)
    assert isinstance(text, str)
    return text


def _budget(db: Db, account_id: str, user_id: str | None) -> CompatBudget:
    status = budget_report(db, account_id, user_id or "")
    budget = budget_response(status, user_id)
    # the source's single alert threshold: the highest one below the limit itself
    alert = max([t for t in budget.thresholds if t < 100] or [100])
    used = status.percent_used
    label: Literal["no_budget", "ok", "warning", "exceeded"] = (
        "no_budget" if used is None
        else "exceeded" if used >= 100 else "warning" if used >= alert else "ok"
    )  # fmt: skip
    return CompatBudget(
        period=budget.period,
        user_id=budget.user_id,
        monthly_limit=budget.monthly_limit,
        current_spend=budget.spend,
        held=budget.held,
        remaining=None if status.remaining is None else _money(status.remaining),
        percent_used=None if used is None else _money(used),
        alert_threshold=alert,
        thresholds=budget.thresholds,
        block_at_limit=budget.block_at_limit,
        status=label,
    )


def _message(e: EventOut) -> CompatMessage:
    return CompatMessage(
        request_id=e.request_id,
        user_id=e.user_id,
        model=e.model,
        provider=e.provider,
        operation=e.operation,
        input_tokens=e.input_tokens,
        output_tokens=e.output_tokens,
        cached_tokens=e.cached_tokens,
        cost=e.price,
        created_at=e.created_at.isoformat(),
    )


def create_compat_app() -> FastAPI:
    """The `/api` application of the source systems' paths (mount it at `/api`)."""
    app = new_api(
        "AI usage billing API: the source systems' paths",
        __doc__,
        openapi_tags=[{"name": TAG, "description": "the source systems' paths and fields"}],
    )

    @app.get("/balance", tags=[TAG], response_model=CompatBalance, responses=responses_for())
    def balance(key: Key, db: Db) -> CompatBalance:
        wallet = balance_out(db, key.account_id)
        return CompatBalance(
            balance=wallet.balance,
            held=wallet.held,
            available=wallet.available,
            status=balance_state(Decimal(wallet.balance)).value,
        )

    @app.get(
        "/usage/chat/{chatId}",
        tags=[TAG],
        response_model=CompatChatUsage,
        responses=responses_for(),
    )
    def chat_usage(
        chatId: ChatId,  # noqa: N803 - the source's path parameter
        key: Key,
        db: Db,
        limit: PageLimit = 200,
        cursor: Cursor = None,
    ) -> CompatChatUsage:
        chat = chat_usage_out(db, key.account_id, chatId, limit=limit, cursor=cursor)
        return CompatChatUsage(
            chat_id=chat.chat_id,
            title=chat.title,
            total_cost=chat.cost,
            message_count=chat.requests,
            input_tokens=chat.input_tokens,
            output_tokens=chat.output_tokens,
            messages=[_message(e) for e in chat.events],
            next_cursor=chat.next_cursor,
        )

    @app.get("/pricing/models", tags=[TAG], response_model=CompatModels, responses=responses_for())
    def pricing_models(
        key: Key,
        db: Db,
        provider: NameQuery = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 5000,
        offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    ) -> CompatModels:
        listed = model_list_out(db, provider=provider, model=None, limit=limit, offset=offset)
        return CompatModels(
            models=[
                CompatModel(
                    provider=m.provider,
                    model=m.model,
                    input_price=m.input_mtok,
                    output_price=m.output_mtok,
                    cached_input_price=m.cache_read_mtok,
                    priced=m.priced,
                )
                for m in listed.items
            ],
            total=listed.total,
        )

    @app.get(
        "/pricing/estimate",
        tags=[TAG],
        response_model=CompatEstimate,
        responses=responses_for(402),
    )
    def pricing_estimate(
        key: Key,
        db: Db,
        model: Annotated[str, Query(min_length=1, max_length=64, pattern=NAME_PATTERN)],
        input_tokens: Annotated[int, Query(alias="inputTokens", ge=0, le=MAX_TOKENS)],
        max_output_tokens: Annotated[int, Query(alias="maxOutputTokens", ge=0, le=MAX_TOKENS)],
        provider: NameQuery = None,
    ) -> CompatEstimate:
        """The most the call can cost; 402 (the source's pre-flight) when the available
        balance cannot cover it or is below the minimum balance."""
        quote = estimate_out(
            db,
            EstimateIn.model_validate(
                {
                    "model": model,
                    "provider": provider,
                    "prompt_tokens": input_tokens,
                    "max_output_tokens": max_output_tokens,
                }
            ),
        )
        estimate.check_affordable(db, key.account_id, Decimal(quote.price))
        return CompatEstimate(
            model=quote.model,
            provider=quote.provider,
            input_tokens=quote.input_tokens,
            max_output_tokens=quote.max_output_tokens,
            estimated_cost=quote.price,
            method=quote.method,
            explanation=quote.explanation,
        )

    @app.get("/budget/status", tags=[TAG], response_model=CompatBudget, responses=responses_for())
    def budget_status(key: Key, db: Db, userId: UserIdQuery = None) -> CompatBudget:  # noqa: N803
        check_own_user(db, key.account_id, userId)
        return _budget(db, key.account_id, userId)

    @app.put("/budget/limit", tags=[TAG], response_model=CompatBudget, responses=responses_for())
    def budget_limit(body: CompatBudgetLimitIn, key: Key, db: Db) -> CompatBudget:
        thresholds = sorted({body.alert_threshold, 100})
        saved = save_budget(
            db,
            key,
            BudgetIn(
                user_id=body.user_id,
                monthly_limit=body.monthly_limit,
                thresholds=thresholds,
                block_at_limit=body.block_at_limit,
            ),
        )
        return _budget(db, key.account_id, saved.user_id)

    @app.get(
        "/budget/usage", tags=[TAG], response_model=CompatBudgetUsage, responses=responses_for()
    )
    def budget_usage(key: Key, db: Db) -> CompatBudgetUsage:
        status = _budget(db, key.account_id, None)
        glance = overview(db, key)
        projected = glance.forecast.projected_month_end
        return CompatBudgetUsage(
            **status.model_dump(),
            today_spend=_money(glance.spend_today),
            projected_month=None if projected is None else _money(projected),
        )

    @app.post(
        "/billing/payment",
        tags=[TAG],
        response_model=CompatPayment,
        responses=responses_for(502, 503),
        summary="Start a Stripe Checkout for a credit package; send the buyer to `url`",
    )
    def billing_payment(body: CompatPaymentIn, key: Key, db: Db) -> CompatPayment:
        started = create_checkout(db, key, package_id=body.package_id)
        return CompatPayment(session_id=started.session_id, url=started.url)

    @app.get(
        "/billing/invoices",
        tags=[TAG],
        response_model=CompatInvoices,
        responses=responses_for(),
        summary="Monthly statements and Stripe invoices",
    )
    def billing_invoices(key: Key, db: Db) -> CompatInvoices:
        return CompatInvoices.model_validate(invoices_out(db, key).model_dump())

    @app.get(
        "/billing/methods",
        tags=[TAG],
        response_model=CompatMethods,
        responses=responses_for(502),
        summary="Saved payment methods and auto top-up",
    )
    def billing_methods(key: Key, db: Db) -> CompatMethods:
        return CompatMethods.model_validate(methods_out(db, key).model_dump())

    return app


@lru_cache(maxsize=1)
def compat_app() -> FastAPI:
    """The one `/api` compatibility application of this process."""
    return create_compat_app()
