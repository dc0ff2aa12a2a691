"""The REST API under `/api/v1` (FastAPI), for the AI app's backend.

Mounted by `api.http.routes()` next to the dashboard (same port); OpenAPI at
`/api/v1/openapi.json`, docs at `/api/v1/docs`. Every route calls the same Python
functions the app can call in process (`metering.authorize`, `ledger.holds`, `limits`, ...).

Rules:
- Authentication: `Authorization: Bearer <API key>` (`pricing-core apikeys create`);
  a key acts only for its own account: other accounts' holds, chats and users are
  not found (404).
- Amounts are decimal strings of USD; never floats (request numbers that are
  money are refused; token counts are strict integers).
- Errors have a JSON body `{"error": <code>, "message": <sentence>, ...}`:
  402 insufficient balance (with `balance`, `available`, `required`); 403 a
  per-message token limit, 429 a cost cap, budget or free-tier allowance (with
  `limit` naming it, and a `Retry-After` header); 422 validation errors (with
  `detail`: field locations and messages); 404 not found, including a model not in
  the price list (`unknown_model`); 409 conflicts (a request id reused, a hold no
  longer active); 401 a missing, unknown or revoked key; 500 `internal_error` (the
  request changed nothing).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from fastapi import FastAPI, Query, Response

from pricing_core.access.apikeys import key_id_of
from pricing_core.analytics.event_log import list_events
from pricing_core.api.answers import (
    balance_out,
    budget_out,
    chat_usage_out,
    estimate_out,
    header_text,
    invoices_out,
    methods_out,
    model_list_out,
    save_budget,
)
from pricing_core.api.errors import (
    Db,
    Key,
    check_own_user,
    new_api,
    parse_instant,
    user_of,
)
from pricing_core.api.responses import (
    BalanceOut,
    BudgetOut,
    ChatUsageOut,
    EstimateOut,
    EventPageOut,
    HoldOut,
    InvoicesOut,
    ModelListOut,
    PaymentMethodsOut,
    SettlementOut,
    UsageOut,
    event_out,
    response_from,
    responses_for,
    suggestion_out,
)
from pricing_core.api.schemas import (
    NAME_PATTERN,
    AuthorizeIn,
    BudgetIn,
    ChatId,
    Cursor,
    EstimateIn,
    HoldId,
    IdQuery,
    Instant,
    NameQuery,
    PageLimit,
    SettleIn,
    UsageIn,
    UserIdQuery,
)
from pricing_core.domain.usage_event import UsageEvent, with_api_key
from pricing_core.ledger import holds as holds_mod
from pricing_core.metering import authorize as authz
from pricing_core.metering import estimate
from pricing_core.metering import settle as settling
from pricing_core.metering.record import record_request_usage

GRACE_HEADER = "X-Pricing-Grace"

# ---------------------------------------------------------------- the app


def create_app() -> FastAPI:
    """The `/api/v1` application (mount it; its OpenAPI is at `/openapi.json`)."""
    app = new_api("AI usage billing API", __doc__)

    @app.post(
        "/authorize",
        response_model=HoldOut,
        responses={
            200: {
                "description": "the hold placed",
                "headers": {
                    GRACE_HEADER: {
                        "description": "the refusal budget enforcement would have given, "
                        "while the account is in its grace period (not refused)",
                        "schema": {"type": "string"},
                    }
                },
            },
            **responses_for(402, 403, 409, 429),
        },
        summary="Authorize a model call: check limits and hold its estimated cost",
    )
    def post_authorize(body: AuthorizeIn, key: Key, db: Db, response: Response) -> HoldOut:
        decided = authz.authorize_request(
            db,
            account_id=key.account_id,
            user_id=user_of(body.user_id, body.anonymous_session_id),
            **body.model_dump(exclude={"user_id", "anonymous_session_id"}),
        )
        if decided.grace_notice:  # enforcement's grace period: what it would refuse
            response.headers[GRACE_HEADER] = header_text(decided.grace_notice)
        return response_from(HoldOut, decided.hold, suggestion=suggestion_out(decided.suggestion))

    @app.post(
        "/holds/{hold_id}/settle",
        response_model=SettlementOut,
        responses=responses_for(409),
        summary="Record a held call's actual usage",
    )
    def post_settle(hold_id: HoldId, body: SettleIn, key: Key, db: Db) -> SettlementOut:
        fields = body.model_dump()
        fields["metadata"] = with_api_key(fields["metadata"], key_id_of(key))
        result = settling.settle(db, hold_id, account_id=key.account_id, **fields)
        return response_from(
            SettlementOut,
            result,
            hold=response_from(HoldOut, result.hold),
            usage=response_from(UsageOut, result.usage),
        )

    @app.post(
        "/holds/{hold_id}/release",
        response_model=HoldOut,
        responses=responses_for(409),
        summary="Release a hold whose call did not happen",
    )
    def post_release(hold_id: HoldId, key: Key, db: Db) -> HoldOut:
        return response_from(HoldOut, holds_mod.release(db, key.account_id, hold_id))

    @app.post(
        "/usage",
        response_model=UsageOut,
        status_code=201,
        responses={
            200: {"model": UsageOut, "description": "already recorded (replay)"},
            **responses_for(402, 409),
        },
        summary="Record a model call's usage (idempotent by request_id)",
    )
    def post_usage(body: UsageIn, key: Key, db: Db, response: Response) -> UsageOut:
        user_id = user_of(body.user_id, body.anonymous_session_id)
        authz.check_user(db, key.account_id, user_id)
        provider = estimate.resolve_provider(body.model, body.provider)
        fields = body.model_dump(exclude={"anonymous_session_id"})
        fields.update(
            account_id=key.account_id,
            user_id=user_id,
            provider=provider,
            created_at=parse_instant("created_at", body.created_at, "body"),
            metadata=with_api_key(body.metadata, key_id_of(key)),
        )
        result, _alerts = record_request_usage(db, UsageEvent(**fields))
        if result.replayed:
            response.status_code = 200
        return response_from(UsageOut, result)

    @app.get(
        "/usage",
        response_model=EventPageOut,
        responses=responses_for(),
        summary="The account's usage events, newest first",
    )
    def get_usage(
        key: Key,
        db: Db,
        user_id: UserIdQuery = None,
        chat_id: IdQuery = None,
        model: NameQuery = None,
        operation: NameQuery = None,
        since: Instant = None,
        until: Instant = None,
        limit: PageLimit = 50,
        cursor: Cursor = None,
    ) -> EventPageOut:
        page = list_events(
            db,
            key.account_id,
            user_id=user_id,
            chat_id=chat_id,
            model=model,
            operation=operation,
            since=parse_instant("since", since),
            until=parse_instant("until", until),
            limit=limit,
            cursor=cursor,
        )
        return EventPageOut(items=[event_out(e) for e in page.items], next_cursor=page.next_cursor)

    @app.get(
        "/balance",
        response_model=BalanceOut,
        response_model_exclude_none=True,  # "credits" only when the server shows credits
        responses=responses_for(),
        summary="The account's wallet",
    )
    def get_balance(key: Key, db: Db) -> BalanceOut:
        return balance_out(db, key.account_id)

    @app.get(
        "/chats/{chat_id}/usage",
        response_model=ChatUsageOut,
        responses=responses_for(),
        summary="A chat's totals and its usage events",
    )
    def get_chat_usage(
        chat_id: ChatId,
        key: Key,
        db: Db,
        limit: PageLimit = 50,
        cursor: Cursor = None,
    ) -> ChatUsageOut:
        return chat_usage_out(db, key.account_id, chat_id, limit=limit, cursor=cursor)

    @app.get(
        "/pricing/models",
        response_model=ModelListOut,
        responses=responses_for(),
        summary="Models and the per-token prices charged now",
    )
    def get_models(
        key: Key,
        db: Db,
        provider: NameQuery = None,
        model: Annotated[
            str | None,
            Query(max_length=64, pattern=NAME_PATTERN, description="substring of the model id"),
        ] = None,
        limit: PageLimit = 50,
        offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    ) -> ModelListOut:
        return model_list_out(db, provider=provider, model=model, limit=limit, offset=offset)

    @app.post(
        "/estimate",
        response_model=EstimateOut,
        responses=responses_for(),
        summary="Estimate the most a call can cost",
    )
    def post_estimate(body: EstimateIn, key: Key, db: Db) -> EstimateOut:
        return estimate_out(db, body)

    @app.get(
        "/budget",
        response_model=BudgetOut,
        responses=responses_for(),
        summary="A monthly budget (the account's, or a user's) against this month",
    )
    def get_budget(key: Key, db: Db, user_id: UserIdQuery = None) -> BudgetOut:
        check_own_user(db, key.account_id, user_id)
        return budget_out(db, key.account_id, user_id)

    @app.put(
        "/budget",
        response_model=BudgetOut,
        responses=responses_for(),
        summary="Set or remove a monthly budget",
    )
    def put_budget(body: BudgetIn, key: Key, db: Db) -> BudgetOut:
        return save_budget(db, key, body)

    @app.get(
        "/billing/invoices",
        response_model=InvoicesOut,
        responses=responses_for(),
        summary="The account's monthly statements and Stripe invoices",
    )
    def get_invoices(key: Key, db: Db) -> InvoicesOut:
        return invoices_out(db, key)

    @app.get(
        "/billing/methods",
        response_model=PaymentMethodsOut,
        responses=responses_for(),
        summary="The account's saved payment methods and auto top-up",
    )
    def get_methods(key: Key, db: Db) -> PaymentMethodsOut:
        return methods_out(db, key)

    return app


@lru_cache(maxsize=1)
def api_app() -> FastAPI:
    """The one `/api/v1` application of this process."""
    return create_app()
