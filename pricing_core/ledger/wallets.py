"""Wallets and the append-only ledger.

A wallet's balance always equals the sum of its ledger entries; entries are never
updated or deleted (a mistake is fixed with a reversal). Every change carries an
idempotency key, unique per account: repeating a change returns the original entry.

Debits are one conditional statement, safe under READ COMMITTED:
`UPDATE wallets SET balance = balance + :amt WHERE account_id = :id AND
balance - held + :amt >= :floor RETURNING balance`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import Engine, func, insert, literal, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from pricing_core.adapters.schema import accounts, ledger_entries, users, wallets
from pricing_core.adapters.storage import run_write
from pricing_core.adapters.types import NanoUSD
from pricing_core.config import get_settings
from pricing_core.domain.errors import (
    IdempotencyConflict,
    InsufficientBalance,
    InvalidUsage,
    UnknownAccount,
)
from pricing_core.domain.money import ZERO, round_nano, to_usd
from pricing_core.domain.principal import Principal, target_account

T = TypeVar("T")


class EntryKind(StrEnum):
    PURCHASE = "purchase"
    USAGE = "usage"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    BONUS = "bonus"
    GRANT = "grant"
    EXPIRY = "expiry"
    REVERSAL = "reversal"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One immutable ledger entry. Amounts: Decimal USD, signed (credit > 0)."""

    id: int
    account_id: str
    kind: str
    amount: Decimal
    balance_after: Decimal
    idempotency_key: str
    reference: str | None
    reason: str | None
    actor: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Posting:
    """The result of a ledger change; `replayed` is True when the idempotency key had
    already been applied and nothing new was written."""

    entry: LedgerEntry
    replayed: bool


@dataclass(frozen=True, slots=True)
class Wallet:
    """A wallet's state. Decimal USD. `available = balance - held`."""

    account_id: str
    balance: Decimal
    held: Decimal

    @property
    def available(self) -> Decimal:
        return self.balance - self.held

    @property
    def owed(self) -> Decimal:
        """Decimal USD the account owes: 0 unless a refund or dispute took the
        balance below zero."""
        return -self.balance if self.balance < 0 else ZERO


def _entry(row: object) -> LedgerEntry:
    return LedgerEntry(**{f: getattr(row, f) for f in LedgerEntry.__slots__})  # type: ignore[attr-defined]


def find_entry(conn: Connection, account_id: str, idempotency_key: str) -> LedgerEntry | None:
    row = conn.execute(
        select(ledger_entries).where(
            ledger_entries.c.account_id == account_id,
            ledger_entries.c.idempotency_key == idempotency_key,
        )
    ).first()
    return _entry(row) if row else None


def post_entry(
    conn: Connection,
    *,
    account_id: str,
    amount: Decimal,
    kind: EntryKind,
    idempotency_key: str,
    now: datetime,
    floor: Decimal | None = ZERO,
    reference: str | None = None,
    reason: str | None = None,
    actor: str | None = None,
) -> Posting:
    """Apply one signed amount to a wallet with a ledger entry, inside `conn`'s transaction.

    Args:
        amount: Decimal USD, signed, already a whole number of nano-USD.
        floor: a debit must leave `balance - held >= floor`; None allows overdraft.
            Credits are never refused.
    Returns: Posting (replayed=True if the key was already applied with the same change).
    Raises: IdempotencyConflict (same key, different change), UnknownAccount,
        InsufficientBalance.
    """
    if amount != round_nano(amount):
        raise InvalidUsage(f"amount {amount} is not a whole number of nano-USD")
    existing = find_entry(conn, account_id, idempotency_key)
    if existing is not None:
        if existing.amount != amount or existing.kind != kind:
            raise IdempotencyConflict(
                f"idempotency key {idempotency_key!r} was already used for "
                f"{existing.kind} {existing.amount} USD on account {account_id!r}"
            )
        return Posting(existing, replayed=True)
    stmt = (
        update(wallets)
        .where(wallets.c.account_id == account_id)
        .values(
            balance=wallets.c.balance + amount,
            version=wallets.c.version + 1,
            updated_at=now,
        )
        .returning(wallets.c.balance)
    )
    if amount < 0 and floor is not None:
        # bind `floor - amount` as money (nano-USD): arithmetic on the columns would
        # otherwise bind the Decimal as a plain number of USD against nano-USD columns
        stmt = stmt.where(wallets.c.balance - wallets.c.held >= literal(floor - amount, NanoUSD))
    balance_after = conn.execute(stmt).scalar_one_or_none()
    if balance_after is None:
        wallet = get_wallet_on(conn, account_id)
        raise InsufficientBalance(account_id, wallet.available, -amount)
    entry_id = conn.execute(
        insert(ledger_entries)
        .values(
            account_id=account_id,
            kind=str(kind),
            amount=amount,
            balance_after=balance_after,
            idempotency_key=idempotency_key,
            reference=reference,
            reason=reason,
            actor=actor,
            created_at=now,
        )
        .returning(ledger_entries.c.id)
    ).scalar_one()
    entry = LedgerEntry(
        entry_id,
        account_id,
        str(kind),
        amount,
        balance_after,
        idempotency_key,
        reference,
        reason,
        actor,
        now,
    )
    return Posting(entry, replayed=False)


def idempotent_write(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run a write whose uniqueness is enforced by the database. If a concurrent
    writer won the race (unique violation), run it once more: it then finds the
    winner's row and replays it."""
    try:
        return run_write(engine, work)
    except IntegrityError:
        return run_write(engine, work)


def get_wallet_on(conn: Connection, account_id: str) -> Wallet:
    row = conn.execute(
        select(wallets.c.balance, wallets.c.held).where(wallets.c.account_id == account_id)
    ).first()
    if row is None:
        raise UnknownAccount(f"unknown account {account_id!r}")
    return Wallet(account_id, row.balance, row.held)


def get_wallet(engine: Engine, account_id: str) -> Wallet:
    """The wallet of `account_id`. Raises: UnknownAccount."""
    with engine.connect() as conn:
        return get_wallet_on(conn, account_id)


def wallet_for(engine: Engine, viewer: Principal, *, account_id: str | None = None) -> Wallet:
    """The viewer's wallet (admins: `account_id`'s). Decimal USD.

    Raises: PermissionDenied (a member naming another account), UnknownAccount.
    """

    return get_wallet(engine, target_account(viewer, account_id))


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _positive(amount: object, what: str) -> Decimal:
    try:
        value = to_usd(amount)
    except ValueError as exc:
        raise InvalidUsage(f"{what}: {exc}") from None
    if value <= 0:
        raise InvalidUsage(f"{what} must be positive, got {value}")
    if value != round_nano(value):
        raise InvalidUsage(f"{what} {value} has more precision than a nano-USD")
    return value


def credit(
    engine: Engine,
    account_id: str,
    amount: object,
    *,
    kind: EntryKind = EntryKind.PURCHASE,
    idempotency_key: str,
    reference: str | None = None,
    reason: str | None = None,
    actor: str | None = None,
    now: datetime | None = None,
) -> Posting:
    """Add credit (purchase, bonus, grant) to a wallet, exactly once per key.

    Args: amount: positive USD (Decimal, int or str).
    Returns: Posting. Raises: InvalidUsage, UnknownAccount, IdempotencyConflict.
    """
    value = _positive(amount, "credit amount")
    return idempotent_write(
        engine,
        lambda conn: post_entry(
            conn,
            account_id=account_id,
            amount=value,
            kind=kind,
            idempotency_key=idempotency_key,
            reference=reference,
            reason=reason,
            actor=actor,
            now=_now(now),
        ),
    )


def create_account(
    engine: Engine,
    account_id: str,
    *,
    name: str,
    user_id: str | None = None,
    email: str | None = None,
    role: str = "member",
    kind: str = "personal",
    opening_credit: Decimal | None = None,
    now: datetime | None = None,
) -> bool:
    """Create an account with its first user, its wallet and the welcome credit (a
    `grant` entry keyed `welcome:<account>`), in one transaction. Idempotent.

    Args: opening_credit: USD granted; default the `welcome_credit` setting; 0 for none.
    Returns: True if created, False if it already existed.
    """
    grant = get_settings().welcome_credit if opening_credit is None else to_usd(opening_credit)
    at = _now(now)

    def work(conn: Connection) -> bool:
        if conn.execute(select(accounts.c.id).where(accounts.c.id == account_id)).first():
            return False
        conn.execute(insert(accounts).values(id=account_id, name=name, kind=kind, created_at=at))
        conn.execute(
            insert(users).values(
                id=user_id or account_id,
                account_id=account_id,
                email=email,
                name=name,
                role=role,
                created_at=at,
            )
        )
        conn.execute(
            insert(wallets).values(
                account_id=account_id, balance=ZERO, held=ZERO, version=0, updated_at=at
            )
        )
        if grant > 0:
            post_entry(
                conn,
                account_id=account_id,
                amount=grant,
                kind=EntryKind.GRANT,
                idempotency_key=f"welcome:{account_id}",
                reason="welcome credit",
                now=at,
            )
        return True

    try:
        return run_write(engine, work)
    except IntegrityError:
        return False  # created concurrently by someone else


def ensure_user(
    engine: Engine,
    account_id: str,
    user_id: str,
    *,
    name: str | None = None,
    email: str | None = None,
    role: str = "member",
    now: datetime | None = None,
) -> None:
    """Add a user to an existing account if missing (team accounts). Idempotent."""

    def work(conn: Connection) -> None:
        if conn.execute(select(users.c.id).where(users.c.id == user_id)).first():
            return
        conn.execute(
            insert(users).values(
                id=user_id,
                account_id=account_id,
                name=name or user_id,
                email=email,
                role=role,
                created_at=_now(now),
            )
        )

    with contextlib.suppress(IntegrityError):
        run_write(engine, work)


def count_entries(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(ledger_entries)).scalar_one()
