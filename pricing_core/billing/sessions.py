"""Checkout sessions: their ids, states and rows (`checkout_sessions`), and what
fulfilling one returns. Creating them is `checkout`'s; crediting them `fulfilment`'s."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema_billing import checkout_sessions
from pricing_core.adapters.storage import dialect_insert
from pricing_core.billing.packages import CreditPackage
from pricing_core.domain.errors import InvalidUsage, PricingError

SIMULATED_PREFIX = "cs_sim_"
SESSION_ID = re.compile(r"^cs_[A-Za-z0-9_]{1,250}$")


class UnknownCheckout(PricingError):
    """A Checkout Session that this product did not create (no account/package)."""


class SessionStatus(StrEnum):
    """A checkout session's state in `checkout_sessions.status`."""

    OPEN = "open"  # created, not paid yet
    PROCESSING = "processing"  # completed with an async payment method, not paid yet
    COMPLETE = "complete"  # paid and credited
    EXPIRED = "expired"
    FAILED = "failed"  # the async payment failed
    MISMATCH = "mismatch"  # paid, but not what the package costs: not credited


class Outcome(StrEnum):
    """What one fulfilment attempt did."""

    CREDITED = "credited"
    ALREADY_CREDITED = "already_credited"
    PROCESSING = "processing"
    NOT_PAID = "not_paid"
    EXPIRED = "expired"
    FAILED = "failed"
    MISMATCH = "mismatch"


@dataclass(frozen=True, slots=True)
class Fulfilment:
    """The result of `fulfil_checkout`. `credited` is Decimal USD (credits + bonus) the
    session added to the wallet (now or earlier); `balance` the wallet's balance after."""

    session_id: str
    account_id: str
    outcome: Outcome
    credited: Decimal
    balance: Decimal
    message: str

    @property
    def is_credited(self) -> bool:
        return self.outcome in (Outcome.CREDITED, Outcome.ALREADY_CREDITED)


def insert_session(
    conn: Connection,
    session_id: str,
    account_id: str,
    package: CreditPackage,
    *,
    user_id: str | None,
    now: datetime,
    simulated: bool = False,
) -> None:
    """Record a session with the package's amounts as they are now (the snapshot that
    fulfilment verifies). A session already recorded is left as it is."""
    stmt = dialect_insert(conn, checkout_sessions).values(
        account_id=account_id,
        id=session_id,
        package_id=package.id,
        user_id=user_id,
        amount_cents=package.price_cents,
        currency=package.currency,
        credits=package.credits,
        bonus=package.bonus,
        status=SessionStatus.OPEN,
        refunded_cents=0,
        simulated=simulated,
        created_at=now,
        updated_at=now,
    )
    conn.execute(stmt.on_conflict_do_nothing())


def check_session_id(session_id: object) -> str:
    """Raises: InvalidUsage unless `session_id` looks like a Checkout Session id."""
    if not isinstance(session_id, str) or not SESSION_ID.match(session_id):
        raise InvalidUsage(f"not a checkout session id: {session_id!r}")
    return session_id


def session_row(conn: Connection, session_id: str, *, lock: bool = False) -> Any:
    """The recorded session (row) or None; `lock` takes a row lock (PostgreSQL)."""
    query = select(checkout_sessions).where(checkout_sessions.c.id == session_id)
    if lock:
        query = query.with_for_update()
    return conn.execute(query).first()


def set_session(conn: Connection, row: Any, now: datetime, **values: Any) -> None:
    conn.execute(
        update(checkout_sessions)
        .where(checkout_sessions.c.account_id == row.account_id, checkout_sessions.c.id == row.id)
        .values(updated_at=now, **values)
    )
