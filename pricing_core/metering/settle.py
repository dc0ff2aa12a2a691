"""Settle: record a held call's actual usage and close its hold (`metering.authorize`
places the hold).

`settle` records the actual usage exactly as `record_usage` does (same price book,
same event, chat totals and rollups, keyed by the hold's request id) and closes the
hold in the same transaction; a cost above the hold is still charged and the event
is flagged `exceeded_hold`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from pricing_core.adapters.server_calls import is_postgres
from pricing_core.catalog.price_book import get_price_book
from pricing_core.config import get_settings
from pricing_core.domain.errors import DuplicateRequest, InvalidUsage
from pricing_core.domain.usage_event import (
    MAX_METADATA_KEYS,
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
    get_hold_on,
    lock_wallet_on,
    peek_hold,
)
from pricing_core.ledger.wallets import idempotent_write
from pricing_core.limits.alerts import BudgetAlert, deliver_alerts, record_alerts_on
from pricing_core.metering.charges import SUBSTITUTED_FOR
from pricing_core.metering.estimate import DEFAULT_OPERATION
from pricing_core.metering.record import UsageResult, record_in_one_call, record_on


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
                metadata=_noted(metadata, current),
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


def _noted(metadata: Mapping[str, Any] | None, hold: Hold) -> Mapping[str, Any] | None:
    """The caller's metadata, plus the model asked for when the hold substituted one
    (the charge's explanation names it; `charges.with_substitution`)."""
    if not hold.substituted_for or len(metadata or {}) >= MAX_METADATA_KEYS:
        return metadata  # a caller's full metadata wins over the note (never refused)
    return {**(metadata or {}), SUBSTITUTED_FOR: hold.substituted_for}
