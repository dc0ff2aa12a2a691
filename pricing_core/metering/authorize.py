"""Authorize: the AI app asks before a model call (and settles after it, `settle`).

    hold = authorize(engine, account_id=..., user_id=..., model="gpt-4o-mini",
                     estimated_input_tokens=1200, max_output_tokens=500, request_id="r1")
    ... call the model ...
    settle(engine, hold, input_tokens=1180, output_tokens=312)   # or release(...)

`authorize` estimates the cost, checks in order the feature flags, the per-message
token limits, the daily then monthly cost caps, the blocking budgets, then places a
hold for the estimate if the available balance covers it and is at least the
minimum balance (`PRICING_MINIMUM_BALANCE_USD`). Every check and the hold happen in
one transaction that first locks the account's wallet row, so concurrent
authorizations of one account are serialized: they see each other's holds and cannot
together overspend a balance, a cap or a budget.

Anonymous users (`user_id` "anon:<session id>") are recorded for the operator's
cost analytics but never debited; each session gets
`PRICING_FREE_TIER_REQUESTS_PER_DAY` requests per calendar day.

Feature flags: `PRICING_ENABLE_PRICING` off records tokens only (no holds, no
charges); `PRICING_ENABLE_BUDGET_ENFORCEMENT` off never refuses (holds are still
placed, a settle may then overdraw), and its rollout (`limits.rollout`) decides per
account, with a grace period that reports the refusal without refusing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import usage_events, users
from pricing_core.adapters.server_calls import is_postgres
from pricing_core.config import get_settings
from pricing_core.domain.errors import DuplicateRequest, InsufficientBalance
from pricing_core.domain.rollout import Stage
from pricing_core.domain.usage_event import (
    check_id,
)
from pricing_core.ledger.holds import (
    Hold,
    HoldStatus,
    expire_holds_on,
    find_hold_by_request_on,
    lock_wallet_on,
    place_hold_in_one_call,
    place_hold_on,
    release,
)
from pricing_core.ledger.wallets import idempotent_write
from pricing_core.limits.budgets import status_on
from pricing_core.limits.checks import check_budgets, check_cost_caps, check_free_tier, check_tokens
from pricing_core.limits.rollout import enforcement_is_uniform, enforcement_on
from pricing_core.limits.rules import (
    COST_CAPS,
    LimitExceeded,
    LimitKind,
    SpendLimitExceeded,
    effective_constraints,
    limit_rows_on,
)
from pricing_core.metering.estimate import (
    DEFAULT_OPERATION,
    UnknownUser,
    estimate_cost,
    is_anonymous,
)
from pricing_core.metering.optimize import Suggestion, cheaper_fit

# refusals that a cheaper way to run the request can avoid
PRESSURE = (*COST_CAPS, LimitKind.MONTHLY_BUDGET)

__all__ = [
    "Authorization",
    "authorize",
    "authorize_request",
    "check_user",
    "estimate_cost",
    "release",
]


# ---------------------------------------------------------------- authorize


def _check_user_on(conn: Connection, account_id: str, user_id: str) -> None:
    if is_anonymous(user_id):
        return
    found = conn.execute(
        select(users.c.id).where(users.c.id == user_id, users.c.account_id == account_id)
    ).first()
    if found is None:
        raise UnknownUser(f"no user {user_id!r} on account {account_id!r}")


def check_user(engine: Engine, account_id: str, user_id: str) -> None:
    """Raises: UnknownUser unless `user_id` is a user of `account_id` (or anonymous)."""
    check_id("user_id", user_id)
    with engine.connect() as conn:
        _check_user_on(conn, account_id, user_id)


def _same_request(a: Hold, b: Hold) -> bool:
    keys = (
        "user_id",
        "operation",
        "provider",
        "model",
        "chat_id",
        "input_tokens",
        "max_output_tokens",
    )
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def authorize(
    engine: Engine,
    *,
    account_id: str,
    user_id: str,
    model: str,
    max_output_tokens: int,
    request_id: str,
    estimated_input_tokens: int | None = None,
    prompt_text: str | None = None,
    operation: str = DEFAULT_OPERATION,
    provider: str | None = None,
    chat_id: str | None = None,
    now: datetime | None = None,
) -> Hold:
    """`authorize_request(...).hold`: the Hold placed (see there for the checks,
    arguments and errors)."""
    return authorize_request(
        engine,
        account_id=account_id,
        user_id=user_id,
        model=model,
        max_output_tokens=max_output_tokens,
        request_id=request_id,
        estimated_input_tokens=estimated_input_tokens,
        prompt_text=prompt_text,
        operation=operation,
        provider=provider,
        chat_id=chat_id,
        now=now,
    ).hold


@dataclass(frozen=True, slots=True)
class Authorization:
    """What `authorize_request` decided: the hold; `grace_notice`, the refusal
    enforcement would have given had the account's grace period ended (else None);
    `suggestion`, a cheaper fit under budget pressure, which the hold already is
    when `hold.substituted_for` is set (PRICING_OPTIMIZATION=enforce)."""

    hold: Hold
    grace_notice: str | None = None
    suggestion: Suggestion | None = None  # a cheaper fit (PRICING_OPTIMIZATION)


def authorize_request(
    engine: Engine,
    *,
    account_id: str,
    user_id: str,
    model: str,
    max_output_tokens: int,
    request_id: str,
    estimated_input_tokens: int | None = None,
    prompt_text: str | None = None,
    operation: str = DEFAULT_OPERATION,
    provider: str | None = None,
    chat_id: str | None = None,
    now: datetime | None = None,
) -> Authorization:
    """Decide whether a model call may run, and reserve its estimated cost.

    Checks, in order (each refusal writes nothing): feature flags; per-message token
    limits of the operation; daily, then monthly cost caps; blocking budgets (the
    account's, then the user's); for anonymous users the daily free-tier allowance;
    the available balance against the estimate and the minimum balance.

    Args:
        user_id: a user of the account, or "anon:<session id>" (never debited).
        estimated_input_tokens / prompt_text: exactly one (see `estimate_cost`).
        request_id: the model call's id; settling records the usage under it. A
            retry with the same request id and parameters returns the same hold.
    Returns: Authorization: the active Hold (amount: the estimate in Decimal USD; 0
        for anonymous users or with pricing off) and, for an account in its
        enforcement grace period (`limits.rollout`), the refusal it would have got.
    Raises: InvalidUsage, UnknownModel, UnknownAccount, UnknownUser,
        TokenLimitExceeded, SpendLimitExceeded (naming the limit), InsufficientBalance,
        DuplicateRequest (request id reused for a different call).
    """
    at = now or datetime.now(UTC)
    settings = get_settings()
    for name, value in (
        ("account_id", account_id),
        ("user_id", user_id),
        ("request_id", request_id),
    ):
        check_id(name, value)
    check_id("chat_id", chat_id, optional=True)
    estimate = estimate_cost(
        engine,
        model=model,
        max_output_tokens=max_output_tokens,
        prompt_text=prompt_text,
        prompt_tokens=estimated_input_tokens,
        provider=provider,
        operation=operation,
        now=at,
    )
    anonymous = is_anonymous(user_id)
    charged = settings.enable_pricing and not anonymous
    enforce = settings.enable_budget_enforcement
    wanted = Hold(
        id=f"hold_{uuid.uuid4().hex}",
        account_id=account_id,
        user_id=user_id,
        request_id=request_id,
        amount=estimate.price if charged else Decimal(0),
        status=HoldStatus.ACTIVE,
        expires_at=at + timedelta(seconds=settings.hold_timeout_seconds),
        created_at=at,
        closed_at=None,
        operation=operation,
        provider=estimate.provider,
        model=model,
        chat_id=chat_id,
        input_tokens=estimate.input_tokens,
        max_output_tokens=estimate.max_output_tokens,
        estimate_method=estimate.method,
    )

    uniform = enforcement_is_uniform()
    if (
        is_postgres(engine)
        and charged
        and uniform
        and not (enforce and settings.default_monthly_budget)
    ):
        # the common case in one round trip; limits, budgets, replays, unknown users
        # and per-account rollouts fall through to the general path below
        minimum = settings.minimum_balance_usd if enforce else None
        placed = place_hold_in_one_call(engine, wanted, minimum=minimum, check_limits=enforce)
        if placed is not None:
            return Authorization(placed)

    def work(conn: Connection) -> Authorization:
        lock_wallet_on(conn, account_id)
        expire_holds_on(conn, now=at, account_id=account_id)
        _check_user_on(conn, account_id, user_id)
        existing = find_hold_by_request_on(conn, account_id, request_id)
        if existing is not None:
            if not _same_request(existing, wanted):
                raise DuplicateRequest(
                    f"request id {request_id!r} was already authorized for a different call"
                )
            return Authorization(existing)
        if _recorded(conn, account_id, request_id):
            raise DuplicateRequest(f"request id {request_id!r} was already recorded")
        stage = enforcement_on(conn, account_id, now=at)[0] if enforce else Stage.OFF
        if stage is Stage.OFF:
            return Authorization(place_hold_on(conn, wanted, minimum=None))
        try:
            return _hold_within_limits(
                engine, conn, wanted, anonymous=anonymous, charged=charged, now=at,
                optimize=settings.optimization if stage is Stage.ON and charged else "off",
            )  # fmt: skip
        except (LimitExceeded, InsufficientBalance) as refusal:
            if stage is Stage.ON:
                raise
            # grace period: nothing was written by the refused check; hold anyway
            return Authorization(place_hold_on(conn, wanted, minimum=None), str(refusal))

    return idempotent_write(engine, work)


def _hold_within_limits(
    engine: Engine,
    conn: Connection,
    wanted: Hold,
    *,
    anonymous: bool,
    charged: bool,
    now: datetime,
    optimize: str,
) -> Authorization:
    """Check the limits of `wanted` and hold it (enforcement on). With `optimize`
    ("suggest" or "enforce", `metering.optimize`), a budget or cost-cap refusal carries
    a cheaper fit as its `suggestion`, which "enforce" holds instead; past a budget
    alert, the hold comes with a cheaper fit. Raises: LimitExceeded,
    InsufficientBalance (nothing written)."""
    minimum = get_settings().minimum_balance_usd if charged else None
    try:
        _check_limits(conn, wanted, anonymous=anonymous, charged=charged, now=now)
    except SpendLimitExceeded as refusal:
        if optimize == "off" or refusal.limit not in PRESSURE:
            raise
        headroom = Decimal(refusal.value) - Decimal(refusal.current)
        fit = cheaper_fit(engine, wanted, headroom=headroom, now=now, trim_requested=True)
        refusal.suggestion = fit
        if fit is None or optimize != "enforce":
            raise
        instead = fit.applied_to(wanted)
        _check_limits(conn, instead, anonymous=anonymous, charged=charged, now=now)
        return Authorization(place_hold_on(conn, instead, minimum=minimum), suggestion=fit)
    hold = place_hold_on(conn, wanted, minimum=minimum)
    if optimize == "off":
        return Authorization(hold)
    budget = status_on(conn, wanted.account_id, now=now, recorded=False)
    limit = budget.budget.monthly_limit
    if not budget.crossed or limit is None:
        return Authorization(hold)
    left = limit - budget.spend - budget.held + hold.amount  # before this hold
    fit = cheaper_fit(engine, wanted, headroom=left, now=now, trim_requested=False)
    return Authorization(hold, suggestion=fit)


def _check_limits(
    conn: Connection, wanted: Hold, *, anonymous: bool, charged: bool, now: datetime
) -> None:
    """Raises: the first LimitExceeded of the request `wanted` (token limits, then the
    free tier or the cost caps and blocking budgets)."""
    account_id, user_id = wanted.account_id, wanted.user_id or ""
    operation = wanted.operation or DEFAULT_OPERATION
    rows = limit_rows_on(conn, account_id, None if anonymous else user_id, operation)
    constraints = effective_constraints(
        rows, account_id=account_id, user_id=user_id, operation=operation
    )
    check_tokens(
        constraints,
        account_id=account_id,
        input_tokens=wanted.input_tokens or 0,
        max_output_tokens=wanted.max_output_tokens or 0,
    )
    if anonymous:
        check_free_tier(conn, account_id=account_id, user_id=user_id, now=now)
    elif charged:
        check_cost_caps(conn, constraints, account_id=account_id, estimate=wanted.amount, now=now)
        check_budgets(conn, account_id=account_id, user_id=user_id, estimate=wanted.amount, now=now)


def _recorded(conn: Connection, account_id: str, request_id: str) -> bool:
    e = usage_events.c
    return (
        conn.execute(
            select(e.id).where(e.account_id == account_id, e.request_id == request_id)
        ).first()
        is not None
    )
