"""Holds: money reserved on a wallet between authorizing a model call and recording it.

A hold is a row in `holds` plus the same amount added to `wallets.held`, in one
transaction, so `available = balance - held` always excludes reserved money
(`verify_ledger` checks that `held` equals the sum of active holds). Placing a hold
is one conditional statement, safe under concurrency on PostgreSQL (READ COMMITTED):

    UPDATE wallets SET held = held + :amount
    WHERE account_id = :id AND balance - held - :amount >= 0 AND balance - held >= :minimum

A hold ends exactly once: `settled` (its usage was recorded), `released` (the call
did not happen) or `expired` (nobody came back before `expires_at`). Expiry is lazy
(before every authorization of the account, and before a settlement on the general
path; the one-call settlement only checks its own hold) and by the CLI `pricing-core
holds expire`.

This module writes only holds and `wallets.held`; it never touches the balance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Engine, func, insert, literal, select, update
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import holds, wallets
from pricing_core.adapters.server_calls import call_row
from pricing_core.adapters.storage import run_write
from pricing_core.adapters.types import NanoUSD
from pricing_core.domain.errors import InsufficientBalance, PricingError, UnknownAccount
from pricing_core.domain.money import ZERO, nanos_to_usd, usd_to_nanos
from pricing_core.ledger.wallets import Wallet


class HoldStatus(StrEnum):
    ACTIVE = "active"
    SETTLED = "settled"
    RELEASED = "released"
    EXPIRED = "expired"


class HoldNotFound(PricingError):
    """No hold with this id on this account (another account's hold is not found either)."""


class HoldNotActive(PricingError):
    """The hold was already settled, released or expired.

    Attributes: hold: the hold as it is now.
    """

    def __init__(self, hold: Hold) -> None:
        closed = hold.closed_at.isoformat() if hold.closed_at else "?"
        super().__init__(f"hold {hold.id!r} is {hold.status} (since {closed}), not active")
        self.hold = hold


@dataclass(frozen=True, slots=True)
class Hold:
    """A reservation on a wallet. `amount`: Decimal USD (the estimate).

    `request_id` is the model call it was authorized for; settling records the usage
    under that request id.
    """

    id: str
    account_id: str
    user_id: str | None
    request_id: str | None
    amount: Decimal
    status: HoldStatus
    expires_at: datetime
    created_at: datetime
    closed_at: datetime | None
    operation: str | None = None
    provider: str | None = None
    model: str | None = None
    chat_id: str | None = None
    input_tokens: int | None = None
    max_output_tokens: int | None = None
    estimate_method: str | None = None
    substituted_for: str | None = None  # the model asked for, when a cheaper one is held


_FIELDS = Hold.__slots__  # type: ignore[attr-defined]


def _hold(row: object) -> Hold:
    values = {f: getattr(row, f) for f in _FIELDS}
    values["status"] = HoldStatus(values["status"])
    return Hold(**values)


def lock_wallet_on(conn: Connection, account_id: str) -> Wallet:
    """Read a wallet and lock its row until the transaction ends (PostgreSQL
    `SELECT ... FOR UPDATE`; SQLite's `BEGIN IMMEDIATE` already serializes writers).

    Every authorization and settlement of an account takes this lock first, so their
    budget and cap checks see each other's holds, and locks are always taken in the
    same order (wallet, then holds): no deadlocks. Raises: UnknownAccount.
    """
    row = conn.execute(
        select(wallets.c.balance, wallets.c.held)
        .where(wallets.c.account_id == account_id)
        .with_for_update()
    ).first()
    if row is None:
        raise UnknownAccount(f"unknown account {account_id!r}")
    return Wallet(account_id, row.balance, row.held)


def get_hold_on(conn: Connection, account_id: str, hold_id: str, *, lock: bool = False) -> Hold:
    """The hold `hold_id` of `account_id`. Raises: HoldNotFound."""
    stmt = select(holds).where(holds.c.account_id == account_id, holds.c.id == hold_id)
    row = conn.execute(stmt.with_for_update() if lock else stmt).first()
    if row is None:
        raise HoldNotFound(f"no hold {hold_id!r} on account {account_id!r}")
    return _hold(row)


_SELECT_HOLD = f"SELECT {', '.join(_FIELDS)} FROM holds WHERE account_id = %s AND id = %s"


def peek_hold(engine: Engine, account_id: str, hold_id: str) -> Hold | None:
    """The hold as stored now, or None: one unlocked read on the hot path's connection
    (PostgreSQL only; `adapters.server_calls`). A write that relies on it must check
    again that the hold is still active, as `pricing_record_usage` does."""
    row = call_row(engine, _SELECT_HOLD, (account_id, hold_id))
    if row is None:
        return None
    values = dict(zip(_FIELDS, row, strict=True))
    values["amount"] = nanos_to_usd(values["amount"])
    values["status"] = HoldStatus(values["status"])
    for stamp in ("expires_at", "created_at", "closed_at"):
        if values[stamp] is not None:
            values[stamp] = values[stamp].astimezone(UTC)
    return Hold(**values)


_PLACE_HOLD = (
    "SELECT outcome, available, balance FROM pricing_place_hold(" + ", ".join(["%s"] * 16) + ")"
)


def place_hold_in_one_call(
    engine: Engine, hold: Hold, *, minimum: Decimal | None, check_limits: bool
) -> Hold | None:
    """`place_hold_on` with what `authorize` does around it (lock the wallet, expire the
    account's overdue holds, check the user and the request id), as one server-side
    call (PostgreSQL's `pricing_place_hold`, migration 0008), for the common case.

    Args:
        minimum: as `place_hold_on` (None: place it unconditionally).
        check_limits: hand over to the general path when a spending limit or a
            budget could apply to the account.
    Returns: the hold placed, or None when the general path must decide (nothing is
        written then). Raises: InsufficientBalance, UnknownAccount.
    """
    params = (
        hold.id, hold.account_id, hold.user_id, hold.request_id, usd_to_nanos(hold.amount),
        hold.expires_at, hold.created_at, hold.operation, hold.provider, hold.model,
        hold.chat_id, hold.input_tokens, hold.max_output_tokens, hold.estimate_method,
        check_limits, None if minimum is None else usd_to_nanos(minimum),
    )  # fmt: skip
    row = call_row(engine, _PLACE_HOLD, params)
    if row is None:  # a concurrent authorization of this request id won
        return None
    outcome, available, balance = row
    if outcome == "unknown":
        raise UnknownAccount(f"unknown account {hold.account_id!r}")
    if outcome == "short":
        raise InsufficientBalance(
            hold.account_id,
            nanos_to_usd(available),
            max(hold.amount, minimum or ZERO),
            balance=nanos_to_usd(balance),
        )
    return hold if outcome == "placed" else None


def find_hold_by_request_on(conn: Connection, account_id: str, request_id: str) -> Hold | None:
    """The hold placed for `request_id` on `account_id`, if any."""
    row = conn.execute(
        select(holds).where(holds.c.account_id == account_id, holds.c.request_id == request_id)
    ).first()
    return _hold(row) if row else None


def get_hold(engine: Engine, account_id: str, hold_id: str) -> Hold:
    """The hold `hold_id` of `account_id`. Raises: HoldNotFound."""
    with engine.connect() as conn:
        return get_hold_on(conn, account_id, hold_id)


def place_hold_on(
    conn: Connection,
    hold: Hold,
    *,
    minimum: Decimal | None,
) -> Hold:
    """Insert `hold` (status active) and add its amount to `wallets.held`.

    Args:
        hold: the hold to place; `amount` Decimal USD >= 0, whole nano-USD.
        minimum: the available balance must be at least this (USD) and cover the
            amount; None places the hold unconditionally (enforcement off; the
            available balance may then go negative).
    Returns: the hold. Raises: InsufficientBalance (nothing written), UnknownAccount.
    """
    stmt = (
        update(wallets)
        .where(wallets.c.account_id == hold.account_id)
        .values(held=wallets.c.held + hold.amount, version=wallets.c.version + 1)
        .returning(wallets.c.held)
    )
    if minimum is not None:
        # `balance - held` is typed BIGINT: bind the amounts as NanoUSD explicitly.
        available = wallets.c.balance - wallets.c.held
        stmt = stmt.where(
            available - literal(hold.amount, NanoUSD) >= 0,
            available >= literal(minimum, NanoUSD),
        )
    if conn.execute(stmt).scalar_one_or_none() is None:
        wallet = lock_wallet_on(conn, hold.account_id)
        raise InsufficientBalance(
            hold.account_id,
            wallet.available,
            max(hold.amount, minimum or ZERO),
            balance=wallet.balance,
        )
    conn.execute(insert(holds).values({f: getattr(hold, f) for f in _FIELDS}))
    return hold


def close_hold_on(
    conn: Connection, account_id: str, hold_id: str, status: HoldStatus, *, now: datetime
) -> Hold:
    """End an active hold (settled, released or expired) and take its amount out of
    `wallets.held`, inside `conn`'s transaction. The status change is conditional
    (`WHERE status = 'active'`), so a hold ends exactly once.

    Returns: the closed hold. Raises: HoldNotFound, HoldNotActive.
    """
    if status is HoldStatus.ACTIVE:
        raise ValueError("a hold cannot be closed as active")
    amount = conn.execute(
        update(holds)
        .where(
            holds.c.account_id == account_id,
            holds.c.id == hold_id,
            holds.c.status == HoldStatus.ACTIVE.value,
        )
        .values(status=status.value, closed_at=now)
        .returning(holds.c.amount)
    ).scalar_one_or_none()
    if amount is None:
        raise HoldNotActive(get_hold_on(conn, account_id, hold_id))
    _unhold(conn, account_id, amount)
    return get_hold_on(conn, account_id, hold_id)


def _unhold(conn: Connection, account_id: str, amount: Decimal) -> None:
    if amount:
        conn.execute(
            update(wallets)
            .where(wallets.c.account_id == account_id)
            .values(held=wallets.c.held - amount, version=wallets.c.version + 1)
        )


def expire_holds_on(conn: Connection, *, now: datetime, account_id: str | None = None) -> int:
    """Expire every active hold past its `expires_at` (of one account, or all) and take
    the amounts out of `wallets.held`. Returns: the number of holds expired.
    """
    stmt = (
        update(holds)
        .where(holds.c.status == HoldStatus.ACTIVE.value, holds.c.expires_at <= now)
        .values(status=HoldStatus.EXPIRED.value, closed_at=now)
        .returning(holds.c.account_id, holds.c.amount)
    )
    if account_id is not None:
        stmt = stmt.where(holds.c.account_id == account_id)
    per_account: dict[str, Decimal] = {}
    count = 0
    for acct, amount in conn.execute(stmt).all():
        per_account[acct] = per_account.get(acct, ZERO) + amount
        count += 1
    for acct in sorted(per_account):  # lock wallets in sorted id order
        _unhold(conn, acct, per_account[acct])
    return count


def expire_holds(engine: Engine, *, now: datetime | None = None, batch: int = 1000) -> int:
    """Expire all overdue holds, account by account (`pricing-core holds expire`).

    Each account is one transaction that locks its wallet first, like authorize and
    settle do. Returns: the number of holds expired.
    """
    at = now or datetime.now(UTC)
    with engine.connect() as conn:
        overdue = [
            a
            for (a,) in conn.execute(
                select(holds.c.account_id)
                .where(holds.c.status == HoldStatus.ACTIVE.value, holds.c.expires_at <= at)
                .group_by(holds.c.account_id)
                .order_by(holds.c.account_id)
                .limit(batch)
            )
        ]
    total = 0
    for account_id in overdue:

        def work(conn: Connection, account_id: str = account_id) -> int:
            lock_wallet_on(conn, account_id)
            return expire_holds_on(conn, now=at, account_id=account_id)

        total += run_write(engine, work)
    if len(overdue) == batch:
        total += expire_holds(engine, now=at, batch=batch)
    return total


def release(engine: Engine, account_id: str, hold_id: str, *, now: datetime | None = None) -> Hold:
    """Release a hold whose model call did not happen (or needs no charge).

    Idempotent: releasing a released hold returns it unchanged. An overdue hold is
    expired instead. Returns: the hold as it is now.
    Raises: HoldNotFound, HoldNotActive (already settled or expired).
    """
    at = now or datetime.now(UTC)

    def work(conn: Connection) -> Hold:
        lock_wallet_on(conn, account_id)
        expire_holds_on(conn, now=at, account_id=account_id)
        hold = get_hold_on(conn, account_id, hold_id, lock=True)
        if hold.status is not HoldStatus.ACTIVE:
            return hold  # raised after commit, so a lazy expiry is kept
        return close_hold_on(conn, account_id, hold_id, HoldStatus.RELEASED, now=at)

    hold = run_write(engine, work)
    if hold.status is not HoldStatus.RELEASED:
        raise HoldNotActive(hold)
    return hold


def count_holds(engine: Engine, account_id: str | None = None) -> dict[HoldStatus, int]:
    """Number of holds by status (of one account, or all)."""
    stmt = select(holds.c.status, func.count()).group_by(holds.c.status)
    if account_id is not None:
        stmt = stmt.where(holds.c.account_id == account_id)
    with engine.connect() as conn:
        found = {HoldStatus(s): n for s, n in conn.execute(stmt)}
    return {s: found.get(s, 0) for s in HoldStatus}
