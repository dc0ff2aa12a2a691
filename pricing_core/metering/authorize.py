"""Authorize / settle: the AI app asks before a model call and records after it.

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

`settle` records the actual usage exactly as `record_usage` does (same price book,
same event, chat totals and rollups, keyed by the hold's request id) and closes the
hold in the same transaction; a cost above the hold is still charged and the event
is flagged `exceeded_hold`.

Anonymous users (`user_id` "anon:<session id>") are recorded for the operator's
cost analytics but never debited; each session gets
`PRICING_FREE_TIER_REQUESTS_PER_DAY` requests per calendar day.

Feature flags: `PRICING_ENABLE_PRICING` off records tokens only (no holds, no
charges); `PRICING_ENABLE_BUDGET_ENFORCEMENT` off never refuses (holds are still
placed, a settle may then overdraw).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import usage_events, users
from pricing_core.adapters.server_calls import is_postgres
from pricing_core.catalog.price_book import get_price_book
from pricing_core.config import get_settings
from pricing_core.domain.errors import DuplicateRequest, InvalidUsage
from pricing_core.domain.usage_event import (
    UsageEvent,
    check_id,
    validate_event,
)
from pricing_core.ledger.holds import (
    Hold,
    HoldNotActive,
    HoldStatus,
    close_hold_on,
    expire_holds_on,
    find_hold_by_request_on,
    get_hold_on,
    lock_wallet_on,
    peek_hold,
    place_hold_in_one_call,
    place_hold_on,
    release,
)
from pricing_core.ledger.wallets import idempotent_write
from pricing_core.limits.alerts import BudgetAlert, deliver_alerts, record_alerts_on
from pricing_core.limits.checks import check_budgets, check_cost_caps, check_free_tier, check_tokens
from pricing_core.limits.rules import effective_constraints, limit_rows_on
from pricing_core.metering.estimate import (
    DEFAULT_OPERATION,
    UnknownUser,
    estimate_cost,
    is_anonymous,
)
from pricing_core.metering.record import UsageResult, record_in_one_call, record_on

__all__ = [
    "authorize",
    "check_user",
    "estimate_cost",
    "release",
    "settle",
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
    Returns: the active Hold (amount: the estimate in Decimal USD; 0 for anonymous
        users or with pricing off).
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

    minimum = settings.minimum_balance_usd if enforce and charged else None
    if is_postgres(engine) and charged and not (enforce and settings.default_monthly_budget):
        # the common case in one round trip; limits, budgets, replays and unknown
        # users fall through to the general path below
        placed = place_hold_in_one_call(engine, wanted, minimum=minimum, check_limits=enforce)
        if placed is not None:
            return placed

    def work(conn: Connection) -> Hold:
        lock_wallet_on(conn, account_id)
        expire_holds_on(conn, now=at, account_id=account_id)
        _check_user_on(conn, account_id, user_id)
        existing = find_hold_by_request_on(conn, account_id, request_id)
        if existing is not None:
            if not _same_request(existing, wanted):
                raise DuplicateRequest(
                    f"request id {request_id!r} was already authorized for a different call"
                )
            return existing
        if _recorded(conn, account_id, request_id):
            raise DuplicateRequest(f"request id {request_id!r} was already recorded")
        if enforce:
            rows = limit_rows_on(conn, account_id, None if anonymous else user_id, operation)
            constraints = effective_constraints(
                rows, account_id=account_id, user_id=user_id, operation=operation
            )
            check_tokens(
                constraints,
                account_id=account_id,
                input_tokens=estimate.input_tokens,
                max_output_tokens=estimate.max_output_tokens,
            )
            if anonymous:
                check_free_tier(conn, account_id=account_id, user_id=user_id, now=at)
            elif charged:
                check_cost_caps(
                    conn, constraints, account_id=account_id, estimate=wanted.amount, now=at
                )
                check_budgets(
                    conn, account_id=account_id, user_id=user_id, estimate=wanted.amount, now=at
                )
        return place_hold_on(conn, wanted, minimum=minimum)

    return idempotent_write(engine, work)


def _recorded(conn: Connection, account_id: str, request_id: str) -> bool:
    e = usage_events.c
    return (
        conn.execute(
            select(e.id).where(e.account_id == account_id, e.request_id == request_id)
        ).first()
        is not None
    )


# ---------------------------------------------------------------- settle


@dataclass(frozen=True, slots=True)
class Settlement:
    """The result of settling a hold.

    `usage` is what `record_usage` would return (replayed=True on a retry);
    `exceeded_hold` is True when the actual price was above the hold; `alerts` are
    the budget alerts this usage newly reached.
    """

    hold: Hold
    usage: UsageResult
    exceeded_hold: bool
    alerts: tuple[BudgetAlert, ...]


def settle(
    engine: Engine,
    hold: Hold | str,
    *,
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int = 0,
    metadata: Mapping[str, Any] | None = None,
    account_id: str | None = None,
    now: datetime | None = None,
) -> Settlement:
    """Record a held call's actual usage at its actual price and close the hold, in
    one transaction (the hold's amount leaves `held`; the price is debited).

    Args:
        hold: the Hold, or its id together with `account_id`.
        input_tokens / output_tokens / cached_tokens: the actual usage.
    Returns: Settlement. A retry with the same usage returns the same result
        (usage.replayed=True) and charges nothing more.
    Raises: HoldNotFound, HoldNotActive (released or expired: record the usage with
        `record_usage` instead), InvalidUsage, DuplicateRequest (settled before with
        different usage, or recorded before with different usage: then the hold is
        released, since that record stands).
    Prices: the price book in effect now; an actual cost above the hold is charged.
    """
    at = now or datetime.now(UTC)
    acct = hold.account_id if isinstance(hold, Hold) else account_id
    hold_id = hold.id if isinstance(hold, Hold) else hold
    if not acct:
        raise InvalidUsage("settle needs the hold's account_id")
    check_id("account_id", acct)
    check_id("hold id", hold_id)
    book = get_price_book(engine)

    def held_event(current: Hold) -> UsageEvent:
        """The usage to record: the held call's fields, the actual token counts."""
        return validate_event(
            UsageEvent(
                request_id=current.request_id or current.id,
                account_id=current.account_id,
                user_id=current.user_id or "",
                operation=current.operation or DEFAULT_OPERATION,
                provider=current.provider or "",
                model=current.model or "",
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cached_tokens=cached_tokens,
                chat_id=current.chat_id,
                metadata=metadata,
            ),
            now=at,
        )

    if is_postgres(engine) and not get_settings().default_monthly_budget:
        # the common case in one round trip after a read: an active hold of an account
        # without plan or budget, a new request id; anything else falls through
        current = peek_hold(engine, acct, hold_id)
        if current is not None and current.status is HoldStatus.ACTIVE and current.expires_at > at:
            usage = record_in_one_call(
                engine,
                held_event(current),
                book=book,
                now=at,
                allow_overdraft=True,
                alerts=True,
                hold_id=current.id,
            )
            if usage is not None:
                closed = replace(current, status=HoldStatus.SETTLED, closed_at=at)
                return Settlement(closed, usage, usage.price > current.amount, ())

    def work(conn: Connection) -> Settlement | Hold | DuplicateRequest:
        lock_wallet_on(conn, acct)
        expire_holds_on(conn, now=at, account_id=acct)
        current = get_hold_on(conn, acct, hold_id, lock=True)
        if current.status in (HoldStatus.RELEASED, HoldStatus.EXPIRED):
            return current  # raised after commit, so a lazy expiry is kept
        event = held_event(current)
        if current.status is HoldStatus.SETTLED:
            usage = record_on(conn, event, book=book, now=at, timestamp_given=False)
            return Settlement(current, usage, usage.price > current.amount, ())
        try:
            usage = record_on(
                conn, event, book=book, now=at, timestamp_given=False, hold_id=current.id
            )
        except DuplicateRequest as exc:  # nothing written yet: free the hold, then raise
            close_hold_on(conn, acct, current.id, HoldStatus.RELEASED, now=at)
            return DuplicateRequest(f"{exc}; hold {current.id} was released")
        if usage.replayed:  # recorded earlier without this hold: nothing more to hold
            closed = close_hold_on(conn, acct, current.id, HoldStatus.RELEASED, now=at)
            return Settlement(closed, usage, False, ())
        alerts = record_alerts_on(conn, account_id=acct, user_id=current.user_id, now=at)
        closed = get_hold_on(conn, acct, current.id)
        return Settlement(closed, usage, usage.price > current.amount, tuple(alerts))

    result = idempotent_write(engine, work)
    if isinstance(result, Hold):
        raise HoldNotActive(result)
    if isinstance(result, DuplicateRequest):
        raise result
    if result.alerts:
        deliver_alerts(engine)
    return result
