"""Admin account management: search, one account's state, balance adjustments and
bulk grants, each written to the ledger AND the audit log in one transaction.

- `adjust_balance`: a signed amount with a required reason. Amounts of at least the
  `admin_confirm_usd` setting (either sign) need `confirmed=True` (the page's
  confirmation step). Keyed by the caller's idempotency key: a double submit applies
  once.
- `bulk_grant`: one `grant` entry per account, keyed `grant:<batch key>`, each in its
  own transaction with its audit row. Re-submitting the same batch (after a crash
  halfway, or a double click) grants each account exactly once and reports the rest
  as already applied.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.audit import actor_of, audit_reason, write_audit
from pricing_core.adapters.schema import (
    wallets,
)
from pricing_core.config import get_settings
from pricing_core.domain.errors import (
    InvalidUsage,
    PricingError,
    UnknownAccount,
)
from pricing_core.domain.money import format_usd, round_nano, to_usd
from pricing_core.domain.principal import Principal, require_admin
from pricing_core.ledger.wallets import (
    EntryKind,
    Posting,
    idempotent_write,
    post_entry,
)

MAX_ADMIN_AMOUNT = Decimal(1_000_000)  # USD per adjustment or grant: above is a typo
# An idempotency key an operator chose (a form submission, a grant batch).
BATCH_KEY = re.compile(r"^[A-Za-z0-9._:@-]{1,64}$")


class ConfirmationRequired(PricingError):
    """A large adjustment was submitted without the confirmation step."""


# ---------------------------------------------------------------- changes


def admin_amount(amount: object, *, positive: bool) -> Decimal:
    """An amount an operator typed, exact Decimal USD. Raises: InvalidUsage for garbage,
    zero (or negative when `positive`), sub-nano-USD digits, or above MAX_ADMIN_AMOUNT."""
    try:
        value = to_usd(amount)
    except ValueError as exc:
        raise InvalidUsage(f"amount: {exc}") from None
    if value == 0 or (positive and value < 0):
        raise InvalidUsage(f"the amount must be {'positive' if positive else 'non-zero'}: {value}")
    if value != round_nano(value):
        raise InvalidUsage(f"the amount {value} is finer than a nano-USD")
    if abs(value) > MAX_ADMIN_AMOUNT:
        raise InvalidUsage(f"the amount {value} is above the {MAX_ADMIN_AMOUNT} USD limit")
    return value


def audit_balance_change(
    conn: Connection,
    principal: Principal,
    posting: Posting,
    *,
    action: str,
    held: Decimal,
    now: datetime,
) -> None:
    """Write the audit row of a balance change: balance and available before and after."""
    entry = posting.entry
    before = entry.balance_after - entry.amount
    write_audit(
        conn,
        actor=actor_of(principal),
        action=action,
        now=now,
        account_id=entry.account_id,
        target=f"ledger_entry:{entry.id}",
        before={"balance": before, "available": before - held},
        after={
            "balance": entry.balance_after,
            "available": entry.balance_after - held,
            "amount": entry.amount,
            "idempotency_key": entry.idempotency_key,
        },
        reason=entry.reason,
    )


def held_of(conn: Connection, account_id: str) -> Decimal:
    """Decimal USD held on the account's wallet. Raises: UnknownAccount."""
    held = conn.execute(
        select(wallets.c.held).where(wallets.c.account_id == account_id)
    ).scalar_one_or_none()
    if held is None:
        raise UnknownAccount(f"unknown account {account_id!r}")
    return held


def adjust_balance(
    engine: Engine,
    principal: Principal,
    account_id: str,
    amount: object,
    *,
    reason: str,
    idempotency_key: str,
    confirmed: bool = False,
    now: datetime | None = None,
) -> Posting:
    """Add (positive) or take back (negative) credit, with a required reason.

    The `adjustment` ledger entry (actor, reason) and the audit row (actor, time,
    balance before/after, reason) are written in one transaction. A negative amount
    may not take the available balance below zero.
    Args:
        amount: signed USD (Decimal, int or str), non-zero, at most 1,000,000.
        idempotency_key: the form submission's key; the same key applies once.
        confirmed: required when |amount| >= the `admin_confirm_usd` setting.
    Returns: Posting (replayed=True if the key was already applied).
    Raises: PermissionDenied, InvalidUsage, ConfirmationRequired, UnknownAccount,
        InsufficientBalance, IdempotencyConflict.
    """
    require_admin(principal)
    value = admin_amount(amount, positive=False)
    text = audit_reason(reason)
    if not isinstance(idempotency_key, str) or not BATCH_KEY.match(idempotency_key):
        raise InvalidUsage(f"bad idempotency key {idempotency_key!r:.80}")
    limit = get_settings().admin_confirm_usd
    if abs(value) >= limit and not confirmed:
        raise ConfirmationRequired(
            f"an adjustment of {format_usd(value, total=True)} is at least the "
            f"{format_usd(limit, total=True)} confirmation threshold: confirm it"
        )
    at = now or datetime.now(UTC)

    def work(conn: Connection) -> Posting:
        held = held_of(conn, account_id)
        posting = post_entry(
            conn,
            account_id=account_id,
            amount=value,
            kind=EntryKind.ADJUSTMENT,
            idempotency_key=f"adjust:{idempotency_key}",
            reason=text,
            actor=actor_of(principal),
            now=at,
        )
        if not posting.replayed:
            audit_balance_change(
                conn, principal, posting, action="balance.adjust", held=held, now=at
            )
        return posting

    return idempotent_write(engine, work)


def confirm_threshold() -> Decimal:
    """USD from which an adjustment needs the confirmation step (a setting)."""
    return get_settings().admin_confirm_usd
