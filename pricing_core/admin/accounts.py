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
from collections.abc import Callable
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
    IdempotencyConflict,
    InvalidUsage,
    PricingError,
    UnknownAccount,
)
from pricing_core.domain.money import format_money, round_nano, to_usd
from pricing_core.domain.principal import Principal, require_admin
from pricing_core.ledger.holds import lock_wallet_on
from pricing_core.ledger.wallets import (
    EntryKind,
    Posting,
    find_entry,
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
    require_admin(principal)  # before reading any argument: a member learns nothing
    value = admin_amount(amount, positive=False)
    return _post_adjustment(
        engine,
        principal,
        account_id,
        lambda _balance: value,
        action="balance.adjust",
        reason=reason,
        idempotency_key=_form_key("adjust", idempotency_key),
        confirmed=confirmed,
        now=now,
        replay_amount=value,
    )


def set_balance(
    engine: Engine,
    principal: Principal,
    account_id: str,
    target: object,
    *,
    reason: str,
    idempotency_key: str,
    confirmed: bool = False,
    now: datetime | None = None,
) -> Posting:
    """Set the balance to `target` ("set to $50.00, compensation for the outage").

    Reads the balance and posts the difference as one `adjustment` entry while holding
    the wallet's row lock, so a charge running at the same moment lands either wholly
    before (and is absorbed into the difference) or wholly after (and is debited from
    `target`). Audited like `adjust_balance`.
    Args:
        target: USD (Decimal, int or str), 0 to 1,000,000, whole nano-USD.
        idempotency_key: the form submission's key; a retry with it returns the first
            posting and changes nothing, even if charges moved the balance since.
        confirmed: required when the difference is at least `admin_confirm_usd`.
    Returns: Posting of the difference (replayed=True if the key was already applied).
    Raises: PermissionDenied, InvalidUsage (bad target, or already at it),
        ConfirmationRequired, UnknownAccount, InsufficientBalance (the target is below
        the amount held by active holds).
    """
    require_admin(principal)
    try:
        value = to_usd(target)
    except ValueError as exc:
        raise InvalidUsage(f"target balance: {exc}") from None
    if value < 0 or value > MAX_ADMIN_AMOUNT or value != round_nano(value):
        raise InvalidUsage(
            f"the target balance must be 0 to {MAX_ADMIN_AMOUNT} USD in whole nano-USD: {value}"
        )

    def difference(balance: Decimal) -> Decimal:
        if balance == value:
            raise InvalidUsage(f"the balance is already {format_money(value)}")
        return value - balance

    return _post_adjustment(
        engine,
        principal,
        account_id,
        difference,
        action="balance.set",
        reason=reason,
        idempotency_key=_form_key("set", idempotency_key),
        confirmed=confirmed,
        now=now,
    )


def _post_adjustment(
    engine: Engine,
    principal: Principal,
    account_id: str,
    amount_for: Callable[[Decimal], Decimal],
    *,
    action: str,
    reason: str,
    idempotency_key: str,
    confirmed: bool,
    now: datetime | None,
    replay_amount: Decimal | None = None,
) -> Posting:
    """One audited `adjustment` entry of `amount_for(balance)` USD, computed under the
    wallet's row lock. A key already applied replays its entry (IdempotencyConflict
    if `replay_amount` is given and differs from it)."""
    require_admin(principal)
    text = audit_reason(reason)
    limit = get_settings().admin_confirm_usd
    at = now or datetime.now(UTC)

    def work(conn: Connection) -> Posting:
        wallet = lock_wallet_on(conn, account_id)
        applied = find_entry(conn, account_id, idempotency_key)
        if applied is not None:
            if replay_amount is not None and applied.amount != replay_amount:
                raise IdempotencyConflict(
                    f"idempotency key {idempotency_key!r} was already used for "
                    f"{applied.amount} USD on account {account_id!r}"
                )
            return Posting(applied, replayed=True)
        value = amount_for(wallet.balance)
        if abs(value) >= limit and not confirmed:
            raise ConfirmationRequired(
                f"an adjustment of {format_money(value)} is at least the "
                f"{format_money(limit)} confirmation threshold: confirm it"
            )
        posting = post_entry(
            conn,
            account_id=account_id,
            amount=value,
            kind=EntryKind.ADJUSTMENT,
            idempotency_key=idempotency_key,
            reason=text,
            actor=actor_of(principal),
            now=at,
        )
        audit_balance_change(conn, principal, posting, action=action, held=wallet.held, now=at)
        return posting

    return idempotent_write(engine, work)


def _form_key(prefix: str, key: object) -> str:
    """`prefix:key` for a form submission's key. Raises: InvalidUsage for a bad key."""
    if not isinstance(key, str) or not BATCH_KEY.match(key):
        raise InvalidUsage(f"bad idempotency key {key!r:.80}")
    return f"{prefix}:{key}"


def confirm_threshold() -> Decimal:
    """USD from which an adjustment needs the confirmation step (a setting)."""
    return get_settings().admin_confirm_usd
