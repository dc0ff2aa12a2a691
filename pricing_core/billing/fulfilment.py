"""Fulfilment: a paid Checkout Session credits the wallet exactly once
(`idempotency_key = checkout:<session id>`), whether the success page or the webhook
comes first; amounts are checked against the package before anything is credited."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import stripe
from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.outbox import Kind, enqueue_on
from pricing_core.adapters.schema import accounts
from pricing_core.billing import stripe_api
from pricing_core.billing.packages import UnknownPackage, package_on
from pricing_core.billing.sessions import (
    SIMULATED_PREFIX,
    Fulfilment,
    Outcome,
    SessionStatus,
    UnknownCheckout,
    check_session_id,
    insert_session,
    session_row,
    set_session,
)
from pricing_core.domain.errors import PermissionDenied
from pricing_core.domain.money import ZERO, format_money
from pricing_core.domain.principal import Principal, target_account
from pricing_core.ledger.wallets import (
    EntryKind,
    find_entry,
    get_wallet_on,
    idempotent_write,
    post_entry,
)
from pricing_core.safety import demo_enabled


def _adopt(conn: Connection, session: dict[str, Any], now: datetime) -> Any:
    """Record a session we have no row for (its creation was not recorded) from its
    metadata, at the package's current amounts. Raises: UnknownCheckout."""
    metadata = session.get("metadata") or {}
    account_id, package_id = metadata.get("account_id"), metadata.get("package_id")
    if not account_id or not package_id:
        raise UnknownCheckout(f"checkout session {session['id']!r} names no account or package")
    if conn.execute(select(accounts.c.id).where(accounts.c.id == account_id)).first() is None:
        raise UnknownCheckout(f"checkout session {session['id']!r}: unknown account {account_id!r}")
    try:
        package = package_on(conn, package_id)
    except UnknownPackage as exc:
        raise UnknownCheckout(f"checkout session {session['id']!r}: {exc}") from None
    insert_session(
        conn, session["id"], account_id, package, user_id=metadata.get("user_id") or None, now=now
    )
    return session_row(conn, session["id"], lock=True)


def payment_problems(session: dict[str, Any], row: Any) -> list[str]:
    """Why a paid session does not match what its package cost (empty when it does).

    Compares Stripe's `amount_total`, `currency`, line items and metadata with the
    recorded session (`row`: amount_cents, currency, account_id). Pure.
    """
    problems: list[str] = []
    sid = session.get("id")
    if session.get("mode", "payment") != "payment":
        problems.append(f"session {sid!r} has mode {session.get('mode')!r}, expected 'payment'")
    currency = str(session.get("currency") or "").lower()
    if currency != row.currency:
        problems.append(
            f"session {sid!r} currency {currency!r} != package currency {row.currency!r}"
        )
    if session.get("amount_total") != row.amount_cents:
        problems.append(
            f"session {sid!r} amount_total {session.get('amount_total')!r} cents != package "
            f"price {row.amount_cents} cents"
        )
    items = (session.get("line_items") or {}).get("data")
    if items is not None:
        total = sum(int(i.get("amount_total") or 0) for i in items)
        if total != row.amount_cents or any(
            str(i.get("currency") or "").lower() != row.currency for i in items
        ):
            problems.append(
                f"session {sid!r} line items total {total} cents != package price "
                f"{row.amount_cents} {row.currency}"
            )
    metadata = session.get("metadata") or {}
    if metadata.get("account_id") not in (None, row.account_id) or session.get(
        "client_reference_id"
    ) not in (None, row.account_id):
        problems.append(f"session {sid!r} names another account than {row.account_id!r}")
    return problems


def _receipt_url(session: dict[str, Any]) -> str | None:
    intent = session.get("payment_intent")
    if isinstance(intent, dict):
        charge = intent.get("latest_charge")
        if isinstance(charge, dict):
            return charge.get("receipt_url")
    return None


def _intent_id(session: dict[str, Any]) -> str | None:
    intent = session.get("payment_intent")
    return intent.get("id") if isinstance(intent, dict) else intent


def fulfil_session_on(
    conn: Connection, session: dict[str, Any], *, now: datetime, account_id: str | None = None
) -> Fulfilment:
    """Fulfil one Checkout Session (a dict as Stripe returns it, line items expanded)
    inside `conn`'s transaction: the one code path for the page, the webhook,
    reconciliation and the demo's simulated purchase.

    Args: account_id: when given, the session must belong to this account.
    Returns: Fulfilment. Raises: UnknownCheckout, PermissionDenied.
    """
    sid = check_session_id(session.get("id"))
    row = session_row(conn, sid, lock=True) or _adopt(conn, session, now)
    if account_id is not None and row.account_id != account_id:
        raise PermissionDenied(f"checkout session {sid!r} belongs to another account")
    if row.simulated and not demo_enabled():
        raise PermissionDenied(f"simulated checkout session {sid!r} outside demo mode")
    total = row.credits + row.bonus
    key = f"checkout:{sid}"

    def result(outcome: Outcome, credited: Decimal, message: str) -> Fulfilment:
        balance = get_wallet_on(conn, row.account_id).balance
        return Fulfilment(sid, row.account_id, outcome, credited, balance, message)

    if find_entry(conn, row.account_id, key) is not None:
        if row.status != SessionStatus.COMPLETE:
            set_session(conn, row, now, status=SessionStatus.COMPLETE)
        return result(Outcome.ALREADY_CREDITED, total, f"session {sid} was already credited")
    if session.get("payment_status") != "paid":
        if session.get("status") == "expired":
            set_session(conn, row, now, status=SessionStatus.EXPIRED)
            return result(Outcome.EXPIRED, ZERO, f"session {sid} expired unpaid")
        if session.get("status") == "complete":
            if row.status != SessionStatus.FAILED:
                set_session(conn, row, now, status=SessionStatus.PROCESSING)
                return result(Outcome.PROCESSING, ZERO, "payment processing")
            return result(Outcome.FAILED, ZERO, f"the payment of session {sid} failed")
        return result(Outcome.NOT_PAID, ZERO, f"session {sid} is not paid yet")
    problems = payment_problems(session, row)
    if problems:
        set_session(
            conn,
            row,
            now,
            status=SessionStatus.MISMATCH,
            error="; ".join(problems),
            payment_intent=_intent_id(session),
        )
        return result(Outcome.MISMATCH, ZERO, "not credited: " + "; ".join(problems))
    post_entry(
        conn,
        account_id=row.account_id,
        amount=row.credits,
        kind=EntryKind.PURCHASE,
        idempotency_key=key,
        reference=sid,
        reason=f"credit pack {row.package_id}",
        now=now,
    )
    if row.bonus > 0:
        post_entry(
            conn,
            account_id=row.account_id,
            amount=row.bonus,
            kind=EntryKind.BONUS,
            idempotency_key=f"{key}:bonus",
            reference=sid,
            reason=f"volume bonus of credit pack {row.package_id}",
            now=now,
        )
    set_session(
        conn,
        row,
        now,
        status=SessionStatus.COMPLETE,
        fulfilled_at=now,
        error=None,
        payment_intent=_intent_id(session),
        receipt_url=_receipt_url(session),
    )
    return result(Outcome.CREDITED, total, f"credited {format_money(total)}")


def fulfil_checkout(
    engine: Engine,
    session_id: str,
    *,
    viewer: Principal | None = None,
    account_id: str | None = None,
    client: stripe.StripeClient | None = None,
    now: datetime | None = None,
) -> Fulfilment:
    """Retrieve a Checkout Session from Stripe and credit its package exactly once.

    Safe to call any number of times, concurrently (page, webhook, reconciliation):
    the credit is keyed `checkout:<session id>`, so repeats return ALREADY_CREDITED.
    Args:
        viewer: the signed-in user returning from Checkout (the success page): a
            member's session must belong to their account. None for system callers
            (webhook, reconciliation).
        account_id: when given, the session must belong to it.
    Returns: Fulfilment (credited, processing, mismatch...). Raises: InvalidUsage
        (not a session id), UnknownCheckout, PermissionDenied, ConfigurationError,
        StripeUnavailable.
    """
    if viewer is not None and not viewer.is_admin:
        account_id = target_account(viewer, account_id)
    sid = check_session_id(session_id)
    at = now or datetime.now(UTC)
    if sid.startswith(SIMULATED_PREFIX):
        return simulated_status(engine, sid, account_id=account_id)
    session = stripe_api.retrieve_session(client or stripe_api.stripe_client(), sid)
    if session.get("id") != sid:
        raise stripe_api.StripeUnavailable(
            f"Stripe returned session {session.get('id')!r} for {sid!r}"
        )
    return idempotent_write(
        engine, lambda conn: fulfil_session_on(conn, session, now=at, account_id=account_id)
    )


def mark_session_on(
    conn: Connection, session: dict[str, Any], status: SessionStatus, *, now: datetime
) -> str:
    """Mark a recorded session expired or failed (never one already credited)."""
    row = session_row(conn, check_session_id(session.get("id")), lock=True)
    if row is None:
        return f"session {session.get('id')} is not ours: ignored"
    if row.status in (SessionStatus.COMPLETE, SessionStatus.MISMATCH):
        return f"session {row.id} is {row.status}: left as it is"
    set_session(conn, row, now, status=status)
    if status is SessionStatus.FAILED:  # tell the buyer, in this transaction, once
        enqueue_on(
            conn, key=f"payment_failed:{row.id}", kind=Kind.PAYMENT_FAILED,
            account_id=row.account_id, payload={"amount": str(row.credits + row.bonus)},
            now=now,
        )  # fmt: skip
    return f"session {row.id} marked {status}"


def simulated_status(engine: Engine, sid: str, *, account_id: str | None) -> Fulfilment:
    with engine.connect() as conn:
        row = session_row(conn, sid)
        if row is None:
            raise UnknownCheckout(f"unknown simulated checkout session {sid!r}")
        if account_id is not None and row.account_id != account_id:
            raise PermissionDenied(f"checkout session {sid!r} belongs to another account")
        credited = find_entry(conn, row.account_id, f"checkout:{sid}") is not None
        balance = get_wallet_on(conn, row.account_id).balance
    total = row.credits + row.bonus
    if credited:
        return Fulfilment(
            sid, row.account_id, Outcome.ALREADY_CREDITED, total, balance, "simulated purchase"
        )
    return Fulfilment(
        sid, row.account_id, Outcome.NOT_PAID, ZERO, balance, "simulated session not credited"
    )
