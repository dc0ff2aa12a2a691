"""Refunds and disputes of credit-pack payments: taking the credits back, once.

A refund of part of a payment takes back the same share of the pack's credit
(credits + bonus) with a `refund` ledger entry keyed `refund:<refund id>`, so a refund
delivered twice (or as `charge.refunded` and `refund.updated`) debits once. Shares
are computed on the cumulative refunded amount, so several partial refunds that add
up to the whole payment take back exactly the whole credit. A refund that later
fails is given back with a `reversal` entry.

A dispute (chargeback) holds the disputed credit back at once with a `refund` entry
keyed `dispute:<dispute id>`; a dispute won releases it (`reversal`,
`dispute-released:<id>`), a dispute lost finalizes it (nothing more to move).

Refunds and disputes may take a balance below zero (the overview says the account
owes credit); it is the only way, besides an explicit overdraft import.
All functions here run inside the caller's transaction and use `ledger.post_entry`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema_billing import checkout_sessions
from pricing_core.billing.sessions import session_row, set_session
from pricing_core.domain.money import ZERO, format_money, round_nano
from pricing_core.ledger.wallets import EntryKind, find_entry, post_entry

TAKEN_BACK = frozenset({"succeeded", "pending"})  # refund statuses that return money
GIVEN_BACK = frozenset({"failed", "canceled"})  # refund statuses after which it did not
DISPUTE_RELEASED = frozenset({"won", "warning_closed", "prevented"})
DISPUTE_LOST = frozenset({"lost"})


def refund_share(total_credit: Decimal, amount_cents: int, refunded_cents: int) -> Decimal:
    """The credit (Decimal USD) that corresponds to `refunded_cents` of a payment of
    `amount_cents` that bought `total_credit`: total x refunded / amount, capped at
    the whole, rounded half-even to the nano-USD. Pure."""
    if amount_cents <= 0:
        return ZERO
    refunded = max(0, min(refunded_cents, amount_cents))
    return round_nano(total_credit * refunded / amount_cents)


def row_for_payment(conn: Connection, payment_intent: str | None, *, lock: bool = True) -> Any:
    """The recorded checkout session paid by `payment_intent` (row; locked for writing
    unless `lock=False`) or None."""
    if not payment_intent:
        return None
    row = conn.execute(
        select(checkout_sessions.c.id).where(checkout_sessions.c.payment_intent == payment_intent)
    ).first()
    return session_row(conn, row.id, lock=lock) if row else None


def _credited(conn: Connection, row: Any) -> bool:
    return find_entry(conn, row.account_id, f"checkout:{row.id}") is not None


def apply_refund_on(conn: Connection, refund: dict[str, Any], row: Any, *, now: datetime) -> str:
    """Apply one Stripe refund (its current state) to the session it refunds.

    Returns: what was done, for the event log.
    """
    rid = refund["id"]
    status = refund.get("status")
    cents = int(refund.get("amount") or 0)
    key = f"refund:{rid}"
    taken = find_entry(conn, row.account_id, key)
    if status in TAKEN_BACK:
        if taken is not None:
            return f"refund {rid} was already applied"
        refunded_after = row.refunded_cents + cents
        take = Decimal(0)
        if _credited(conn, row):
            total = row.credits + row.bonus
            take = refund_share(total, row.amount_cents, refunded_after) - refund_share(
                total, row.amount_cents, row.refunded_cents
            )
        if take > 0:
            post_entry(
                conn,
                account_id=row.account_id,
                amount=-take,
                kind=EntryKind.REFUND,
                idempotency_key=key,
                floor=None,  # a refund may take the balance below zero
                reference=row.id,
                reason=f"Stripe refund {rid} of {cents} cents",
                now=now,
            )
        set_session(conn, row, now, refunded_cents=refunded_after)
        return f"refund {rid}: took back {format_money(take)} of credit"
    if status in GIVEN_BACK and taken is not None:
        back_key = f"refund-reversed:{rid}"
        if find_entry(conn, row.account_id, back_key) is not None:
            return f"refund {rid} was already given back"
        post_entry(
            conn,
            account_id=row.account_id,
            amount=-taken.amount,
            kind=EntryKind.REVERSAL,
            idempotency_key=back_key,
            reference=row.id,
            reason=f"Stripe refund {rid} {status}: credit given back",
            now=now,
        )
        set_session(conn, row, now, refunded_cents=max(0, row.refunded_cents - cents))
        return f"refund {rid} {status}: gave back {format_money(-taken.amount)}"
    return f"refund {rid} is {status}: nothing to do"


def apply_dispute_on(conn: Connection, dispute: dict[str, Any], row: Any, *, now: datetime) -> str:
    """Apply a Stripe dispute (its current state): hold back the disputed credit while
    it is open, release it when won, keep it when lost. Returns: what was done."""
    did = dispute["id"]
    status = str(dispute.get("status") or "")
    key = f"dispute:{did}"
    held = find_entry(conn, row.account_id, key)
    if held is None and status not in DISPUTE_RELEASED and _credited(conn, row):
        total = row.credits + row.bonus
        disputed = min(int(dispute.get("amount") or 0), row.amount_cents - row.refunded_cents)
        amount = refund_share(total, row.amount_cents, disputed)
        if amount > 0:
            held = post_entry(
                conn,
                account_id=row.account_id,
                amount=-amount,
                kind=EntryKind.REFUND,
                idempotency_key=key,
                floor=None,
                reference=row.id,
                reason=f"Stripe dispute {did} opened: disputed credit held back",
                now=now,
            ).entry
    if status in DISPUTE_RELEASED:
        if held is not None and find_entry(conn, row.account_id, f"dispute-released:{did}") is None:
            post_entry(
                conn,
                account_id=row.account_id,
                amount=-held.amount,
                kind=EntryKind.REVERSAL,
                idempotency_key=f"dispute-released:{did}",
                reference=row.id,
                reason=f"Stripe dispute {did} {status}: held credit released",
                now=now,
            )
        set_session(conn, row, now, dispute_status="won")
        return f"dispute {did} {status}: credit released"
    if status in DISPUTE_LOST:
        set_session(conn, row, now, dispute_status="lost")
        return f"dispute {did} lost: held-back credit kept"
    set_session(conn, row, now, dispute_status="held")
    return f"dispute {did} {status}: {format_money(-held.amount if held else ZERO)} held back"
