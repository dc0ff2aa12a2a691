"""Errors and request checks of the API: `PricingError`s mapped to HTTP statuses and
JSON bodies in one place, the API-key dependency, query validation, and `new_api`,
which builds every API app with them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pricing_core.access.apikeys import (
    InvalidApiKey,
    TooManyAttempts,
    UnknownApiKey,
    authenticate_api_key,
)
from pricing_core.adapters.counters import Counter, count_event
from pricing_core.adapters.storage import open_database
from pricing_core.api.responses import amount_str, suggestion_out
from pricing_core.billing.packages import UnknownPackage
from pricing_core.billing.stripe_api import StripeUnavailable
from pricing_core.config import get_settings
from pricing_core.domain.errors import (
    ConfigurationError,
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
from pricing_core.ledger.holds import HoldNotActive, HoldNotFound
from pricing_core.limits.rules import LimitExceeded, TokenLimitExceeded
from pricing_core.metering import authorize as authz
from pricing_core.metering import estimate

# ---------------------------------------------------------------- errors


def _error(
    status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """The API's error body: `{"error": code, "message": message, **extra}`."""
    response = JSONResponse({"error": code, "message": message, **extra}, status_code=status)
    response.headers.update(headers or {})  # after content-type, as they always were
    return response


def _limit_error(
    status: int, message: str, *, retry_after: int | None, **fields: str | dict[str, Any] | None
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
    "cache_write_tokens",
    "service_tier",
    "quantity",
    "max_output_tokens",
    "prompt_tokens",
    "prompt_text",
    "estimated_input_tokens",
    "created_at",
    "metadata",
    "monthly_limit",
    "thresholds",
}


def _json(model: BaseModel | None) -> dict[str, Any] | None:
    return None if model is None else model.model_dump(mode="json")


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
            value=amount_str(exc.value),
            current=amount_str(exc.current),
            requested=amount_str(exc.requested),
            suggestion=_json(suggestion_out(exc.suggestion)),
        )
    if isinstance(exc, UnknownModel):
        # Like a provider's own API: the model named is not in the price list (404),
        # while the request itself is well formed.
        return _error(404, "unknown_model", message)
    if isinstance(exc, InvalidUsage | UnknownOperation):
        first = message.split(" ", 1)[0]
        loc: list[str | int] = ["body", first] if first in _FIELDS else ["body"]
        return _error(
            422,
            "validation_error",
            message,
            detail=[{"loc": loc, "msg": message, "type": type(exc).__name__}],
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
    if isinstance(exc, ConfigurationError):
        return _error(503, "not_configured", message)
    if isinstance(exc, StripeUnavailable):
        return _error(502, "payment_provider_unavailable", message)
    # PermissionDenied is 404 too: never confirm another account's data.
    not_found = (
        UnknownAccount
        | HoldNotFound
        | estimate.UnknownUser
        | UnknownApiKey
        | PermissionDenied
        | UnknownPackage
    )
    if isinstance(exc, not_found):
        return _error(404, "not_found", message)
    if isinstance(exc, HoldNotActive):
        return _error(409, "hold_not_active", message)
    if isinstance(exc, DuplicateRequest | IdempotencyConflict):
        return _error(409, "duplicate_request", message)
    return _error(409, "refused", message)


async def on_pricing_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PricingError)
    return pricing_error_response(exc)


async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
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


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # Starlette names only the first route's methods
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return _error(exc.status_code, f"http_{exc.status_code}", str(exc.detail), headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path accepts (one route per method here)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


async def on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug or an outage answers JSON too (500 `internal_error`), never a traceback;
    it is counted (the Integrity page) and logged by the server."""
    await run_in_threadpool(_count, 500, request.method, request.url.path)
    return _error(500, "internal_error", "the server failed; the request changed nothing")


def _count(status: int, method: str, path: str) -> None:
    count_event(open_database(), Counter.API_REJECTED, detail=f"{status} {method} {path}")


class CountRejections:
    """ASGI middleware: every answer with a 4xx or 5xx status adds one to today's
    `api_rejected` counter (with the status, method and path as its detail). A
    request whose handler raised is counted by `on_unexpected_error` instead."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, receive, send_and_see)
        if status >= 400:
            await run_in_threadpool(_count, status, scope["method"], scope["path"])


def new_api(title: str, description: str | None, **options: Any) -> FastAPI:
    """A FastAPI app as every API of the product is built: its OpenAPI at
    `/openapi.json` and docs at `/docs` (under its mount), unknown query parameters
    refused, every error answered as JSON by the handlers above and counted."""
    app = FastAPI(
        title=title,
        version="1.0.0",
        description=description or "",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        dependencies=[Depends(known_query_only)],
        **options,
    )
    app.add_exception_handler(PricingError, on_pricing_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)
    app.add_middleware(CountRejections)
    return app


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
    problems = [_problem("query", n, "unknown query parameter", "extra_forbidden") for n in unknown]
    problems += [_problem("query", n, "given more than once", "value_error") for n in repeated]
    if problems:
        raise RequestValidationError(problems)


def parse_instant(name: str, text: str | None, where: str = "query") -> datetime | None:
    """Parse an ISO 8601 instant with an offset (`where`: "query" or "body", for the
    error's location). An instant whose UTC time falls outside years 1..9999 (e.g.
    9999-12-31T23:59:59-14:00) is taken as the latest or earliest representable one.

    Returns: UTC datetime. Raises: RequestValidationError (422) for a malformed instant.
    """
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        problem = _problem(
            where, name, f"not an ISO 8601 instant with an offset: {text!r:.60}", "datetime_parsing"
        )
        raise RequestValidationError([problem])
    try:
        return value.astimezone(UTC)
    except OverflowError:
        edge = datetime.max if value.year == datetime.max.year else datetime.min
        return edge.replace(tzinfo=UTC)


def _problem(where: str, name: str, msg: str, kind: str) -> dict[str, Any]:
    """One entry of a RequestValidationError about the parameter `name`."""
    return {"loc": (where, name), "msg": msg, "type": kind}


Key = Annotated[Principal, Depends(api_key)]
Db = Annotated[Engine, Depends(engine)]


def user_of(body_user: str | None, session: str | None) -> str:
    return body_user if body_user is not None else estimate.anonymous_user_id(session or "")


def check_own_user(db: Engine, account_id: str, user_id: str | None) -> None:
    """Raises: UnknownUser (404) when `user_id` is given and not a user of the account."""
    if user_id is not None:
        authz.check_user(db, account_id, user_id)
