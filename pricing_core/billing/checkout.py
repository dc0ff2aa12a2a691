"""Credit packages, Stripe Checkout Sessions and their fulfilment, exactly once.

Flow (DESIGN.md "Money flows" 3): `create_checkout` opens a Stripe Checkout Session
for a credit package and records it; the browser pays on Stripe's hosted page; then
`fulfil_checkout(session_id)` is called from the success page, from the webhook, or
from reconciliation, in any order, any number of times, concurrently. After Stripe's
fulfilment guide (https://docs.stripe.com/checkout/fulfillment) it retrieves the
session with its line items, checks `payment_status == "paid"`, verifies the amount
and currency against the package, and credits the wallet in one transaction keyed
`checkout:<session id>` (the volume bonus as a second entry, `checkout:<id>:bonus`).

Amounts: package prices are integer cents (Stripe's unit); credits are Decimal USD.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any

import stripe
from sqlalchemy import Engine, select, update
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import accounts
from pricing_core.adapters.schema_billing import checkout_sessions, credit_packages
from pricing_core.adapters.storage import dialect_insert
from pricing_core.billing import stripe_api
from pricing_core.config import Settings, get_settings
from pricing_core.domain.errors import InvalidUsage, PermissionDenied, PricingError
from pricing_core.domain.money import ZERO, cents_to_usd, format_usd
from pricing_core.domain.principal import Principal, target_account
from pricing_core.ledger.wallets import (
    EntryKind,
    find_entry,
    get_wallet_on,
    idempotent_write,
    post_entry,
)
from pricing_core.safety import demo_enabled

SIMULATED_PREFIX = "cs_sim_"
_SESSION_ID = re.compile(r"^cs_[A-Za-z0-9_]{1,250}$")


class UnknownPackage(PricingError):
    """No (active) credit package has this id."""


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
class CreditPackage:
    """One version of a credit pack. Price: integer cents; credits, bonus: Decimal USD."""

    id: str
    code: str
    version: int
    name: str
    price_cents: int
    currency: str
    credits: Decimal
    bonus: Decimal
    popular: bool
    active: bool
    sort_order: int

    @property
    def price(self) -> Decimal:
        """What the buyer pays, Decimal in `currency` units."""
        return cents_to_usd(self.price_cents)

    @property
    def total_credit(self) -> Decimal:
        """Credit received: credits + bonus, Decimal USD."""
        return self.credits + self.bonus

    @property
    def price_per_credit_dollar(self) -> Decimal:
        """Effective price per $1 of credit, to 4 places (half-even), e.g. 0.8995."""
        return (self.price / self.total_credit).quantize(Decimal("0.0001"), ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class CheckoutStart:
    """A created Checkout Session: send the browser to `url`."""

    session_id: str
    url: str


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


@dataclass(frozen=True, slots=True)
class Purchase:
    """A row of the purchase history. Amounts: Decimal (price in `currency`, credit USD)."""

    session_id: str
    package_name: str
    price: Decimal
    currency: str
    credit: Decimal
    status: str
    refunded: Decimal
    dispute_status: str | None
    receipt_url: str | None
    simulated: bool
    created_at: datetime
    fulfilled_at: datetime | None


# ---------------------------------------------------------------- packages


def _package(row: Any) -> CreditPackage:
    return CreditPackage(**{f: getattr(row, f) for f in CreditPackage.__slots__})  # type: ignore[attr-defined]


def list_packages(engine: Engine, *, include_inactive: bool = False) -> list[CreditPackage]:
    """Credit packages in display order (active only unless `include_inactive`)."""
    query = select(credit_packages).order_by(credit_packages.c.sort_order, credit_packages.c.id)
    if not include_inactive:
        query = query.where(credit_packages.c.active.is_(True))
    with engine.connect() as conn:
        return [_package(r) for r in conn.execute(query)]


def _package_on(conn: Connection, package_id: str) -> CreditPackage:
    row = conn.execute(select(credit_packages).where(credit_packages.c.id == package_id)).first()
    if row is None:
        raise UnknownPackage(f"unknown credit package {package_id!r}")
    return _package(row)


def get_package(engine: Engine, package_id: str) -> CreditPackage:
    """One package version by id. Raises: UnknownPackage."""
    with engine.connect() as conn:
        return _package_on(conn, package_id)


# ---------------------------------------------------------------- creating sessions


def success_url(settings: Settings) -> str:
    """Where Stripe sends the buyer after paying (Stripe fills in the session id)."""
    return f"{settings.public_url.rstrip('/')}/buy_credits?session_id={{CHECKOUT_SESSION_ID}}"


def cancel_url(settings: Settings) -> str:
    return f"{settings.public_url.rstrip('/')}/buy_credits?canceled=1"


def checkout_params(
    package: CreditPackage,
    *,
    account_id: str,
    user_id: str | None,
    settings: Settings,
    email: str | None = None,
) -> dict[str, Any]:
    """The Checkout Session parameters for one package (Stripe API `POST
    /v1/checkout/sessions`): payment mode, one line item with inline `price_data`,
    the account and package in `client_reference_id` and `metadata`, return URLs."""
    metadata = {"account_id": account_id, "package_id": package.id, "user_id": user_id or ""}
    credit = format_usd(package.total_credit, total=True)
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": package.currency,
                    "unit_amount": package.price_cents,
                    "product_data": {
                        "name": f"{package.name} credit pack",
                        "description": f"{credit} of AI usage credit",
                    },
                },
            }
        ],
        "client_reference_id": account_id,
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "success_url": success_url(settings),
        "cancel_url": cancel_url(settings),
    }
    if email:
        params["customer_email"] = email
    return params


def create_checkout(
    engine: Engine,
    viewer: Principal,
    *,
    package_id: str,
    account_id: str | None = None,
    idempotency_key: str | None = None,
    client: stripe.StripeClient | None = None,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> CheckoutStart:
    """Create a Stripe Checkout Session for a credit package and record it.

    Args:
        idempotency_key: one per buyer's click (the page keeps it across reruns), so
            a double submit opens one session; default a fresh key.
        account_id: the account to credit: the viewer's own by default; only an admin
            may name another.
    Returns: CheckoutStart (send the browser to its `url`).
    Raises: PermissionDenied, UnknownPackage (missing or inactive), ConfigurationError
        (no Stripe key), StripeUnavailable.
    """
    account_id = target_account(viewer, account_id)
    user_id, email = _buyer(viewer, account_id)
    settings = settings or get_settings()
    client = client or stripe_api.stripe_client(settings)
    package = get_package(engine, package_id)
    if not package.active:
        raise UnknownPackage(f"credit package {package_id!r} is no longer sold")
    at = now or datetime.now(UTC)
    key = f"checkout-create:{account_id}:{idempotency_key or uuid.uuid4().hex}"
    params = checkout_params(
        package, account_id=account_id, user_id=user_id, settings=settings, email=email
    )
    session = stripe_api.create_session(client, params, idempotency_key=key)
    session_id, url = session.get("id"), session.get("url")
    if not isinstance(session_id, str) or not _SESSION_ID.match(session_id) or not url:
        raise stripe_api.StripeUnavailable(f"Stripe returned an unusable session {session_id!r}")

    def record(conn: Connection) -> None:
        _insert_session(conn, session_id, account_id, package, user_id=user_id, now=at)

    idempotent_write(engine, record)
    return CheckoutStart(session_id, url)


def _buyer(viewer: Principal, account_id: str) -> tuple[str | None, str | None]:
    """(user id, email) recorded on a session: the viewer's when buying for their own
    account; none when an admin buys for another account."""
    if account_id != viewer.account_id:
        return None, None
    return viewer.user_id, viewer.email


def _insert_session(
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


# ---------------------------------------------------------------- fulfilment


def check_session_id(session_id: object) -> str:
    """Raises: InvalidUsage unless `session_id` looks like a Checkout Session id."""
    if not isinstance(session_id, str) or not _SESSION_ID.match(session_id):
        raise InvalidUsage(f"not a checkout session id: {session_id!r}")
    return session_id


def session_row(conn: Connection, session_id: str, *, lock: bool = False) -> Any:
    """The recorded session (row) or None; `lock` takes a row lock (PostgreSQL)."""
    query = select(checkout_sessions).where(checkout_sessions.c.id == session_id)
    if lock:
        query = query.with_for_update()
    return conn.execute(query).first()


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
        package = _package_on(conn, package_id)
    except UnknownPackage as exc:
        raise UnknownCheckout(f"checkout session {session['id']!r}: {exc}") from None
    _insert_session(
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


def _set(conn: Connection, row: Any, now: datetime, **values: Any) -> None:
    conn.execute(
        update(checkout_sessions)
        .where(checkout_sessions.c.account_id == row.account_id, checkout_sessions.c.id == row.id)
        .values(updated_at=now, **values)
    )


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
            _set(conn, row, now, status=SessionStatus.COMPLETE)
        return result(Outcome.ALREADY_CREDITED, total, f"session {sid} was already credited")
    if session.get("payment_status") != "paid":
        if session.get("status") == "expired":
            _set(conn, row, now, status=SessionStatus.EXPIRED)
            return result(Outcome.EXPIRED, ZERO, f"session {sid} expired unpaid")
        if session.get("status") == "complete":
            if row.status != SessionStatus.FAILED:
                _set(conn, row, now, status=SessionStatus.PROCESSING)
                return result(Outcome.PROCESSING, ZERO, "payment processing")
            return result(Outcome.FAILED, ZERO, f"the payment of session {sid} failed")
        return result(Outcome.NOT_PAID, ZERO, f"session {sid} is not paid yet")
    problems = payment_problems(session, row)
    if problems:
        _set(
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
    _set(
        conn,
        row,
        now,
        status=SessionStatus.COMPLETE,
        fulfilled_at=now,
        error=None,
        payment_intent=_intent_id(session),
        receipt_url=_receipt_url(session),
    )
    return result(Outcome.CREDITED, total, f"credited {format_usd(total, total=True)}")


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
        return _simulated_status(engine, sid, account_id=account_id)
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
    _set(conn, row, now, status=status)
    return f"session {row.id} marked {status}"


# ---------------------------------------------------------------- demo mode


def simulate_purchase(
    engine: Engine,
    viewer: Principal,
    *,
    package_id: str,
    account_id: str | None = None,
    idempotency_key: str | None = None,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> Fulfilment:
    """Demo mode only: buy a package without Stripe, through the same fulfilment code
    with a simulated paid session (id `cs_sim_...`, recorded as simulated).

    Args: idempotency_key: one per click; the same key simulates one purchase.
        account_id: the viewer's own account by default; only an admin may name another.
    Raises: PermissionDenied outside demo mode or for another account, UnknownPackage.
    """
    account_id = target_account(viewer, account_id)
    user_id, _ = _buyer(viewer, account_id)
    settings = settings or get_settings()
    if not demo_enabled(settings):
        raise PermissionDenied("simulated purchases are only possible in demo mode")
    package = get_package(engine, package_id)
    if not package.active:
        raise UnknownPackage(f"credit package {package_id!r} is no longer sold")
    nonce = idempotency_key or uuid.uuid4().hex
    digest = hashlib.sha256(f"{account_id}\0{nonce}".encode()).hexdigest()[:32]
    sid = f"{SIMULATED_PREFIX}{digest}"
    session = {
        "id": sid,
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": package.price_cents,
        "currency": package.currency,
        "client_reference_id": account_id,
        "metadata": {"account_id": account_id, "package_id": package.id},
        "line_items": {
            "data": [
                {"quantity": 1, "amount_total": package.price_cents, "currency": package.currency}
            ]
        },
        "payment_intent": None,
    }
    at = now or datetime.now(UTC)

    def work(conn: Connection) -> Fulfilment:
        _insert_session(conn, sid, account_id, package, user_id=user_id, now=at, simulated=True)
        return fulfil_session_on(conn, session, now=at, account_id=account_id)

    return idempotent_write(engine, work)


def _simulated_status(engine: Engine, sid: str, *, account_id: str | None) -> Fulfilment:
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


# ---------------------------------------------------------------- history


def list_purchases(
    engine: Engine, viewer: Principal, *, account_id: str | None = None, limit: int = 50
) -> list[Purchase]:
    """The viewer's account's checkout sessions (admins: `account_id`'s), newest
    first, with status, refunds and receipt.

    Raises: PermissionDenied when a member names another account.
    """
    account_id = target_account(viewer, account_id)
    c = checkout_sessions.c
    query = (
        select(checkout_sessions, credit_packages.c.name.label("package_name"))
        .select_from(
            checkout_sessions.outerjoin(credit_packages, credit_packages.c.id == c.package_id)
        )
        .where(c.account_id == account_id)
        .order_by(c.created_at.desc(), c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        Purchase(
            session_id=r.id,
            package_name=r.package_name or r.package_id,
            price=cents_to_usd(r.amount_cents),
            currency=r.currency,
            credit=r.credits + r.bonus,
            status=r.status,
            refunded=cents_to_usd(r.refunded_cents),
            dispute_status=r.dispute_status,
            receipt_url=r.receipt_url,
            simulated=r.simulated,
            created_at=r.created_at,
            fulfilled_at=r.fulfilled_at,
        )
        for r in rows
    ]
