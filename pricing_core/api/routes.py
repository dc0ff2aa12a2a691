"""The REST API under `/api/v1` (FastAPI), for the AI app's backend.

Mounted by `http.routes()` next to the dashboard (same port); OpenAPI at
`/api/v1/openapi.json`, docs at `/api/v1/docs`. Every route calls the same Python
functions the app can call in process (`authorization`, `holds`, `limits`, ...).

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
  `detail`: field locations and messages), including an unknown model; 404 not
  found; 409 conflicts (a request id reused, a hold no longer active); 401 a
  missing, unknown or revoked key.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from pricing_core.access.apikeys import (
    InvalidApiKey,
    TooManyAttempts,
    UnknownApiKey,
    authenticate_api_key,
)
from pricing_core.adapters.storage import open_database
from pricing_core.analytics.event_log import MAX_PAGE, EventRow, get_chat, list_events
from pricing_core.catalog.price_book import get_price_book, known_models, provider_price
from pricing_core.config import get_settings
from pricing_core.domain.errors import (
    DuplicateRequest,
    IdempotencyConflict,
    InsufficientBalance,
    InvalidUsage,
    PermissionDenied,
    PricingError,
    UnknownAccount,
    UnknownModel,
    UnknownOperation,
)
from pricing_core.domain.money import usd_str
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import MAX_TOKENS, UsageEvent
from pricing_core.ledger import holds as holds_mod
from pricing_core.ledger.holds import HoldNotActive, HoldNotFound
from pricing_core.ledger.wallets import get_wallet
from pricing_core.limits.budget_rules import save_budget_rule
from pricing_core.limits.budgets import budget_report
from pricing_core.limits.rules import LimitExceeded, TokenLimitExceeded
from pricing_core.metering import authorize as authz

# ---------------------------------------------------------------- field types

ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"  # no control characters
PATH_ID_PATTERN = r"^[^\x00-\x1f\x7f/]+$"
NAME_PATTERN = r"^[A-Za-z0-9._:/@+-]+$"
MONEY_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
INSTANT_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})$"
)

Id = Annotated[str, Field(min_length=1, max_length=128, pattern=ID_PATTERN)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)]
Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS, strict=True)]
Money = Annotated[str, Field(pattern=MONEY_PATTERN, examples=["0.000562500"])]
HoldId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")]
ChatId = Annotated[
    str, Path(min_length=1, max_length=128, pattern=PATH_ID_PATTERN, examples=["chat-1"])
]
IdQuery = Annotated[str | None, Query(max_length=128, pattern=ID_PATTERN)]
NameQuery = Annotated[str | None, Query(max_length=64, pattern=NAME_PATTERN)]
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Cursor = Annotated[int | None, Query(ge=1, le=2**63 - 1)]
Instant = Annotated[
    str | None,
    Query(
        pattern=INSTANT_PATTERN, description="ISO 8601 with an offset, e.g. 2025-03-01T00:00:00Z"
    ),
]


def _plain_text(value: Any, where: str = "metadata") -> None:
    """Refuse strings a database cannot store (NUL, lone surrogates) in JSON metadata."""
    if isinstance(value, str):
        if "\x00" in value or any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
            raise ValueError(f"{where} contains a NUL character or a lone surrogate")
    elif isinstance(value, dict):
        for key, item in value.items():
            _plain_text(key, where)
            _plain_text(item, where)
    elif isinstance(value, list):
        for item in value:
            _plain_text(item, where)


def _storable(value: dict[str, Any]) -> dict[str, Any]:
    _plain_text(value)
    return value


Metadata = Annotated[dict[str, Any], AfterValidator(_storable)]


def _exactly_one(body: BaseModel, first: str, second: str) -> None:
    """Raises: ValueError unless exactly one of the two fields is given."""
    if (getattr(body, first) is None) == (getattr(body, second) is None):
        raise ValueError(f"give exactly one of {first} and {second}")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")  # subclasses' model_config adds to this


class AuthorizeIn(_In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "req-0001",
                    "user_id": "user-1",
                    "model": "gpt-4o-mini",
                    "chat_id": "chat-1",
                    "estimated_input_tokens": 1200,
                    "max_output_tokens": 500,
                }
            ]
        },
    )
    request_id: Id = Field(description="the model call's id; settling records usage under it")
    user_id: Id | None = Field(None, description="a user of the key's account")
    anonymous_session_id: Id | None = Field(
        None, description="instead of user_id: an anonymous session (recorded, never debited)"
    )
    model: Name
    provider: Name | None = Field(None, description="inferred from the model when omitted")
    operation: Name = "chat_message"
    chat_id: Id | None = None
    estimated_input_tokens: Tokens | None = None
    prompt_text: str | None = Field(None, max_length=400_000, description="counted by a heuristic")
    max_output_tokens: Tokens

    @model_validator(mode="after")
    def _one_each(self) -> AuthorizeIn:
        _exactly_one(self, "user_id", "anonymous_session_id")
        _exactly_one(self, "estimated_input_tokens", "prompt_text")
        return self


class SettleIn(_In):
    input_tokens: Tokens
    output_tokens: Tokens
    cached_tokens: Tokens = 0
    metadata: Metadata | None = None


class UsageIn(_In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "req-0002",
                    "user_id": "user-1",
                    "model": "gpt-4o-mini",
                    "chat_id": "chat-1",
                    "input_tokens": 1180,
                    "output_tokens": 312,
                }
            ]
        },
    )
    request_id: Id
    user_id: Id | None = None
    anonymous_session_id: Id | None = None
    operation: Name = "chat_message"
    provider: Name | None = None
    model: Name
    input_tokens: Tokens
    output_tokens: Tokens
    cached_tokens: Tokens = 0
    chat_id: Id | None = None
    created_at: str | None = Field(
        None, pattern=INSTANT_PATTERN, description="ISO 8601 with an offset; default: now"
    )
    metadata: Metadata | None = None

    @model_validator(mode="after")
    def _one_user(self) -> UsageIn:
        _exactly_one(self, "user_id", "anonymous_session_id")
        return self


class EstimateIn(_In):
    model: Name
    provider: Name | None = None
    operation: Name = "chat_message"
    prompt_tokens: Tokens | None = None
    prompt_text: str | None = Field(None, max_length=400_000)
    max_output_tokens: Tokens

    @model_validator(mode="after")
    def _one_prompt(self) -> EstimateIn:
        _exactly_one(self, "prompt_tokens", "prompt_text")
        return self


class BudgetIn(_In):
    user_id: Id | None = Field(None, description="omit for the whole account's budget")
    monthly_limit: Annotated[str, Field(pattern=r"^[0-9]{1,7}(\.[0-9]{1,2})?$")] | None = Field(
        description="USD as a decimal string, whole cents; null removes the budget"
    )
    thresholds: list[Annotated[int, Field(ge=1, le=100, strict=True)]] = Field(
        default_factory=lambda: [50, 80, 100], min_length=1, max_length=10
    )
    block_at_limit: bool = Field(False, strict=True)


# ---------------------------------------------------------------- responses


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


class BalanceOut(BaseModel):
    account_id: str
    currency: Literal["USD"] = "USD"
    balance: Money
    held: Money
    available: Money


class ModelPriceOut(BaseModel):
    provider: str
    model: str
    priced: bool
    input_mtok: str | None = Field(description="USD per million input tokens charged")
    output_mtok: str | None
    cache_read_mtok: str | None
    markup: str | None


class ModelListOut(BaseModel):
    items: list[ModelPriceOut]
    total: int


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


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
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
    }
    return {
        c: {"model": models[c][0], "description": models[c][1]}
        for c in (400, 401, 404, 422, 429, *codes)
    }


# ---------------------------------------------------------------- conversions


Out = TypeVar("Out", bound=BaseModel)


def _out(model: type[Out], source: object, **given: Any) -> Out:
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
            values[name] = _response_value(getattr(source, name))
    return model(**values)


def _response_value(value: object) -> object:
    if isinstance(value, Decimal):
        return usd_str(value)
    return value.value if isinstance(value, Enum) else value


def _event(e: EventRow) -> EventOut:
    return _out(EventOut, e, event_id=e.id, basis=e.charge_basis)


def _rate(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _amount(value: int | Decimal) -> str:
    return usd_str(value) if isinstance(value, Decimal) else str(value)


# ---------------------------------------------------------------- errors


def _error(
    status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """The API's error body: `{"error": code, "message": message, **extra}`."""
    response = JSONResponse({"error": code, "message": message, **extra}, status_code=status)
    response.headers.update(headers or {})  # after content-type, as they always were
    return response


def _limit_error(
    status: int, message: str, *, retry_after: int | None, **fields: str
) -> JSONResponse:
    """A `limit_exceeded` body (`LimitErrorOut`), with `Retry-After` when there is a wait."""
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return _error(
        status, "limit_exceeded", message, headers=headers, retry_after=retry_after, **fields
    )


_FIELDS = {
    "request_id",
    "user_id",
    "chat_id",
    "model",
    "provider",
    "operation",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "max_output_tokens",
    "prompt_tokens",
    "prompt_text",
    "estimated_input_tokens",
    "created_at",
    "metadata",
    "monthly_limit",
    "thresholds",
}


def pricing_error_response(exc: PricingError) -> JSONResponse:
    """Translate a PricingError into the API's status code and JSON body."""
    message = str(exc)
    if isinstance(exc, InsufficientBalance):
        return _error(
            402,
            "insufficient_balance",
            message,
            balance=None if exc.balance is None else usd_str(exc.balance),
            available=usd_str(exc.available),
            required=usd_str(exc.required),
        )
    if isinstance(exc, LimitExceeded):
        return _limit_error(  # retry_after: only period limits (SpendLimitExceeded) have one
            403 if isinstance(exc, TokenLimitExceeded) else 429,
            message,
            retry_after=exc.retry_after,
            limit=str(exc.limit),
            scope=exc.scope,
            operation=exc.operation,
            value=_amount(exc.value),
            current=_amount(exc.current),
            requested=_amount(exc.requested),
        )
    if isinstance(exc, InvalidUsage | UnknownModel | UnknownOperation):
        first = message.split(" ", 1)[0]
        if isinstance(exc, UnknownModel):
            first = "model"
        loc: list[str | int] = ["body", first] if first in _FIELDS else ["body"]
        code = "unknown_model" if isinstance(exc, UnknownModel) else "validation_error"
        return _error(
            422, code, message, detail=[{"loc": loc, "msg": message, "type": type(exc).__name__}]
        )
    if isinstance(exc, TooManyAttempts):
        return _limit_error(
            429,
            message,
            retry_after=exc.retry_after,
            limit="api_auth_max_failures",
            scope="client address",
            operation="*",
            value=str(get_settings().api_auth_max_failures),
            current="",
            requested="1",
        )
    if isinstance(exc, InvalidApiKey):
        return _error(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})
    # PermissionDenied is 404 too: never confirm another account's data.
    not_found = UnknownAccount | HoldNotFound | authz.UnknownUser | UnknownApiKey | PermissionDenied
    if isinstance(exc, not_found):
        return _error(404, "not_found", message)
    if isinstance(exc, HoldNotActive):
        return _error(409, "hold_not_active", message)
    if isinstance(exc, DuplicateRequest | IdempotencyConflict):
        return _error(409, "duplicate_request", message)
    return _error(409, "refused", message)


async def _on_pricing_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PricingError)
    return pricing_error_response(exc)


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = [
        {
            "loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]
    first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return _error(422, "validation_error", f"{where}: {first['msg']}", detail=detail)


async def _on_http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return _error(exc.status_code, f"http_{exc.status_code}", str(exc.detail), headers=exc.headers)


# ---------------------------------------------------------------- dependencies

_bearer = HTTPBearer(auto_error=False, description="an API key: pricing-core apikeys create")


def engine() -> Engine:
    """The database (settings' URL), migrated on first use."""
    return open_database()


def api_key(
    request: Request,
    db: Annotated[Engine, Depends(engine)],
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller: a member principal of the key's account.

    Raises: InvalidApiKey (401), TooManyAttempts (429, failed attempts per address).
    """
    client = request.client.host if request.client else "unknown"
    return authenticate_api_key(db, request.headers.get("authorization"), client=client)


def known_query_only(request: Request) -> None:
    """Refuse query parameters the route does not declare (422), so a typo in a
    filter name is an error instead of a silently unfiltered answer."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    allowed: set[str] = set()
    stack = [dependant] if dependant is not None else []
    while stack:  # the route's own query parameters and its dependencies'
        node = stack.pop()
        allowed.update(p.alias for p in node.query_params)
        stack.extend(node.dependencies)
    unknown = sorted(set(request.query_params) - allowed)
    # Every declared query parameter is a single value: a repeated one is an error,
    # not "the last one wins".
    repeated = sorted(
        name
        for name in set(request.query_params) & allowed
        if len(request.query_params.getlist(name)) > 1
    )
    problems = [_query_problem(n, "unknown query parameter", "extra_forbidden") for n in unknown]
    problems += [_query_problem(n, "given more than once", "value_error") for n in repeated]
    if problems:
        raise RequestValidationError(problems)


def _instant(name: str, text: str | None, where: str = "query") -> datetime | None:
    """Parse an ISO 8601 instant with an offset; 422 otherwise. Returns: UTC datetime."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        problem = _query_problem(name, f"not an ISO 8601 instant: {text!r:.60}", "datetime_parsing")
        raise RequestValidationError([problem])
    return value.astimezone(UTC)


def _query_problem(name: str, msg: str, kind: str) -> dict[str, Any]:
    """One entry of a RequestValidationError about the query parameter `name`."""
    return {"loc": ("query", name), "msg": msg, "type": kind}


Key = Annotated[Principal, Depends(api_key)]
Db = Annotated[Engine, Depends(engine)]


def _user(body_user: str | None, session: str | None) -> str:
    return body_user if body_user is not None else authz.anonymous_user_id(session or "")


def _check_own_user(db: Engine, account_id: str, user_id: str | None) -> None:
    """Raises: UnknownUser (404) when `user_id` is given and not a user of the account."""
    if user_id is not None:
        authz.check_user(db, account_id, user_id)


# ---------------------------------------------------------------- the app


def create_app() -> FastAPI:
    """The `/api/v1` application (mount it; its OpenAPI is at `/openapi.json`)."""
    app = FastAPI(
        title="AI usage billing API",
        version="1.0.0",
        description=__doc__,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        dependencies=[Depends(known_query_only)],
    )
    app.add_exception_handler(PricingError, _on_pricing_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)

    @app.post(
        "/authorize",
        response_model=HoldOut,
        responses=_responses(402, 403, 409, 429),
        summary="Authorize a model call: check limits and hold its estimated cost",
    )
    def post_authorize(body: AuthorizeIn, key: Key, db: Db) -> HoldOut:
        hold = authz.authorize(
            db,
            account_id=key.account_id,
            user_id=_user(body.user_id, body.anonymous_session_id),
            **body.model_dump(exclude={"user_id", "anonymous_session_id"}),
        )
        return _out(HoldOut, hold)

    @app.post(
        "/holds/{hold_id}/settle",
        response_model=SettlementOut,
        responses=_responses(409),
        summary="Record a held call's actual usage",
    )
    def post_settle(hold_id: HoldId, body: SettleIn, key: Key, db: Db) -> SettlementOut:
        result = authz.settle(db, hold_id, account_id=key.account_id, **body.model_dump())
        return _out(
            SettlementOut,
            result,
            hold=_out(HoldOut, result.hold),
            usage=_out(UsageOut, result.usage),
        )

    @app.post(
        "/holds/{hold_id}/release",
        response_model=HoldOut,
        responses=_responses(409),
        summary="Release a hold whose call did not happen",
    )
    def post_release(hold_id: HoldId, key: Key, db: Db) -> HoldOut:
        return _out(HoldOut, holds_mod.release(db, key.account_id, hold_id))

    @app.post(
        "/usage",
        response_model=UsageOut,
        status_code=201,
        responses={
            200: {"model": UsageOut, "description": "already recorded (replay)"},
            **_responses(402, 409),
        },
        summary="Record a model call's usage (idempotent by request_id)",
    )
    def post_usage(body: UsageIn, key: Key, db: Db, response: Response) -> UsageOut:
        user_id = _user(body.user_id, body.anonymous_session_id)
        authz.check_user(db, key.account_id, user_id)
        provider = authz.resolve_provider(body.model, body.provider)
        fields = body.model_dump(exclude={"anonymous_session_id"})
        fields.update(
            account_id=key.account_id,
            user_id=user_id,
            provider=provider,
            created_at=_instant("created_at", body.created_at, "body"),
        )
        result, _alerts = authz.record_request_usage(db, UsageEvent(**fields))
        if result.replayed:
            response.status_code = 200
        return _out(UsageOut, result)

    @app.get(
        "/usage",
        response_model=EventPageOut,
        responses=_responses(),
        summary="The account's usage events, newest first",
    )
    def get_usage(
        key: Key,
        db: Db,
        user_id: IdQuery = None,
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
            since=_instant("since", since),
            until=_instant("until", until),
            limit=limit,
            cursor=cursor,
        )
        return EventPageOut(items=[_event(e) for e in page.items], next_cursor=page.next_cursor)

    @app.get(
        "/balance",
        response_model=BalanceOut,
        responses=_responses(),
        summary="The account's wallet",
    )
    def get_balance(key: Key, db: Db) -> BalanceOut:
        return _out(BalanceOut, get_wallet(db, key.account_id), account_id=key.account_id)

    @app.get(
        "/chats/{chat_id}/usage",
        response_model=ChatUsageOut,
        responses=_responses(),
        summary="A chat's totals and its usage events",
    )
    def get_chat_usage(
        chat_id: ChatId,
        key: Key,
        db: Db,
        limit: PageLimit = 50,
        cursor: Cursor = None,
    ) -> ChatUsageOut:
        chat = get_chat(db, key.account_id, chat_id)
        if chat is None:
            raise HoldNotFound(f"no chat {chat_id!r} on account {key.account_id!r}")
        page = list_events(db, key.account_id, chat_id=chat_id, limit=limit, cursor=cursor)
        return _out(
            ChatUsageOut,
            chat,
            events=[_event(e) for e in page.items],
            next_cursor=page.next_cursor,
        )

    @app.get(
        "/pricing/models",
        response_model=ModelListOut,
        responses=_responses(),
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
        matches = [
            (p, m)
            for p, m in _model_ids()
            if (provider is None or p == provider) and (model is None or model in m)
        ]
        return ModelListOut(
            items=[_model_price(db, p, m) for p, m in matches[offset : offset + limit]],
            total=len(matches),
        )

    @app.post(
        "/estimate",
        response_model=EstimateOut,
        responses=_responses(),
        summary="Estimate the most a call can cost",
    )
    def post_estimate(body: EstimateIn, key: Key, db: Db) -> EstimateOut:
        return _out(EstimateOut, authz.estimate_cost(db, **body.model_dump()))

    @app.get(
        "/budget",
        response_model=BudgetOut,
        responses=_responses(),
        summary="A monthly budget (the account's, or a user's) against this month",
    )
    def get_budget(key: Key, db: Db, user_id: IdQuery = None) -> BudgetOut:
        _check_own_user(db, key.account_id, user_id)
        return _budget(db, key.account_id, user_id)

    @app.put(
        "/budget",
        response_model=BudgetOut,
        responses=_responses(),
        summary="Set or remove a monthly budget",
    )
    def put_budget(body: BudgetIn, key: Key, db: Db) -> BudgetOut:
        _check_own_user(db, key.account_id, body.user_id)
        save_budget_rule(
            db,
            account_id=key.account_id,
            user_id=body.user_id or "",
            monthly_limit=None if body.monthly_limit is None else Decimal(body.monthly_limit),
            thresholds=body.thresholds,
            block=body.block_at_limit,
            actor=key.user_id,
        )
        return _budget(db, key.account_id, body.user_id)

    return app


@lru_cache(maxsize=1)
def _model_ids() -> tuple[tuple[str, str], ...]:
    return tuple(sorted(known_models()))


def _model_price(db: Engine, provider: str, model: str) -> ModelPriceOut:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)  # cache-friendly
    try:
        listed = provider_price(provider, model, now)
    except (UnknownModel, ValueError, TypeError, LookupError):
        return ModelPriceOut(
            provider=provider,
            model=model,
            priced=False,
            input_mtok=None,
            output_mtok=None,
            cache_read_mtok=None,
            markup=None,
        )
    row = get_price_book(db).model_row(provider, model, now)
    markup = row.markup if row else get_settings().default_markup
    rates = row.override if row and row.override else listed.rates
    cache = rates.cache_read_mtok
    return ModelPriceOut(
        provider=provider,
        model=model,
        priced=True,
        input_mtok=_rate(rates.input_mtok * markup),
        output_mtok=_rate(rates.output_mtok * markup),
        cache_read_mtok=None if cache is None else _rate(cache * markup),
        markup=_rate(markup),
    )


def _budget(db: Engine, account_id: str, user_id: str | None) -> BudgetOut:
    status = budget_report(db, account_id, user_id or "")
    budget = status.budget
    return _out(
        BudgetOut,
        status,
        account_id=budget.account_id,
        user_id=user_id,  # None for the account's budget ("" in the settings)
        monthly_limit=_response_value(budget.monthly_limit),
        thresholds=list(budget.thresholds),
        operator_default=budget.is_default,
        block_at_limit=budget.block_at_limit,
    )


@lru_cache(maxsize=1)
def api_app() -> FastAPI:
    """The one `/api/v1` application of this process."""
    return create_app()
