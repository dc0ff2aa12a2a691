"""Auto top-up: settings per account, and the request written in the charge's
transaction.

A debit that takes the balance from at or above the account's threshold to below it
writes a `topups` row (status `pending`) in the debit's own transaction, unless a
top-up is already in flight (a partial unique index allows one per account, so
however many charges race, one top-up starts) or the month's maximum would be
passed. `billing.topups` then charges the saved card off-session and credits the
wallet exactly once, on `payment_intent.succeeded`.

The one-call charge path (`metering.record`, PostgreSQL's `pricing_record_usage`)
reads the threshold in its own statement and hands a debit across it to the general
path, which calls `request_topup_on` (the threshold cached a minute, dropped when the
settings change).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.engine import Connection

from pricing_core.adapters.audit import actor_of
from pricing_core.adapters.schema_payments import TOPUP_IN_FLIGHT, auto_topups, topups
from pricing_core.adapters.storage import dialect_insert, run_write
from pricing_core.billing.packages import UnknownPackage, get_package, package_on
from pricing_core.config import get_settings
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.money import cents_to_usd, to_usd, usd_to_cents, usd_to_nanos
from pricing_core.domain.periods import month_bounds, month_of
from pricing_core.domain.principal import Principal, target_account
from pricing_core.ledger.wallets import get_wallet_on

CACHE_SECONDS = 60
MIN_AMOUNT_CENTS = 100  # Stripe's minimum is $0.50; a top-up under $1 is not worth a fee
FAILURES_TO_DISABLE = 3
_thresholds: dict[tuple[str, str], tuple[float, list[int]]] = {}


@dataclass(frozen=True, slots=True)
class AutoTopup:
    """An account's auto top-up. Money: Decimal USD; `amount` is what is charged and
    credited (the pack's price when `package_id` is set, its credit is the pack's)."""

    account_id: str
    enabled: bool
    threshold: Decimal
    package_id: str | None
    amount: Decimal | None
    monthly_max: Decimal
    failures: int
    disabled_reason: str | None
    updated_at: datetime


def _settings_on(conn: Connection, account_id: str) -> AutoTopup | None:
    row = conn.execute(select(auto_topups).where(auto_topups.c.account_id == account_id)).first()
    if row is None:
        return None
    return AutoTopup(
        account_id=row.account_id,
        enabled=row.enabled,
        threshold=row.threshold,
        package_id=row.package_id,
        amount=None if row.amount_cents is None else cents_to_usd(row.amount_cents),
        monthly_max=cents_to_usd(row.monthly_max_cents),
        failures=row.failures,
        disabled_reason=row.disabled_reason,
        updated_at=row.updated_at,
    )


def get_auto_topup(
    engine: Engine, viewer: Principal, *, account_id: str | None = None
) -> AutoTopup | None:
    """The viewer's account's auto top-up (admins: `account_id`'s); None when never
    set. Raises: PermissionDenied."""
    account_id = target_account(viewer, account_id)
    with engine.connect() as conn:
        return _settings_on(conn, account_id)


def _usd(value: object, what: str) -> Decimal:
    try:
        return to_usd(value)
    except ValueError as exc:
        raise InvalidUsage(f"{what}: {exc}") from None


def _cents(value: object, what: str) -> int:
    try:
        return usd_to_cents(_usd(value, what))
    except ValueError:
        raise InvalidUsage(f"{what} must be whole cents, got {value}") from None


def configure_auto_topup(
    engine: Engine,
    viewer: Principal,
    *,
    enabled: bool,
    threshold: object,
    monthly_max: object,
    package_id: str | None = None,
    amount: object | None = None,
    account_id: str | None = None,
    now: datetime | None = None,
) -> AutoTopup:
    """Save the account's auto top-up: when a charge takes the balance below
    `threshold` (USD: Decimal, int or str), buy the pack `package_id` or charge
    `amount` (USD, whole cents, at least $1.00, credited 1:1) on the saved card, at
    most `monthly_max` (USD, whole cents) a calendar month. Enabling resets the failure count;
    with the balance already below the threshold, a top-up is requested now.

    Raises: PermissionDenied, InvalidUsage (nothing saved), UnknownPackage."""
    account_id = target_account(viewer, account_id)
    if (package_id is None) == (amount is None):
        raise InvalidUsage("choose either a credit pack or an amount to top up with")
    line = _usd(threshold, "the threshold")
    if not line > 0:
        raise InvalidUsage(f"the threshold must be above zero, got {threshold}")
    if package_id is not None:
        package = get_package(engine, package_id)
        if not package.active:
            raise InvalidUsage(f"credit pack {package.name!r} is no longer sold")
        charge_cents = package.price_cents
    else:
        assert amount is not None
        charge_cents = _cents(amount, "the top-up amount")
        if charge_cents < MIN_AMOUNT_CENTS:
            raise InvalidUsage(f"the top-up amount must be at least $1.00, got {amount}")
    max_cents = _cents(monthly_max, "the monthly maximum")
    if max_cents < charge_cents:
        one = cents_to_usd(charge_cents)
        raise InvalidUsage(f"the monthly maximum {monthly_max} is less than one top-up ({one})")
    at = now or datetime.now(UTC)
    values = {
        "enabled": enabled,
        "threshold": line,
        "package_id": package_id,
        "amount_cents": None if package_id is not None else charge_cents,
        "monthly_max_cents": max_cents,
        "updated_by": actor_of(viewer),
        "updated_at": at,
    }
    if enabled:
        values |= {"failures": 0, "disabled_reason": None}

    def work(conn: Connection) -> AutoTopup:
        conn.execute(
            dialect_insert(conn, auto_topups)
            .values(account_id=account_id, **({"failures": 0} | values))
            .on_conflict_do_update(index_elements=["account_id"], set_=values)
        )
        if not enabled:  # nothing charges after "off"; one already at Stripe finishes
            conn.execute(
                update(topups)
                .where(topups.c.account_id == account_id, topups.c.status == "pending")
                .values(status="canceled", updated_at=at)
            )
        else:
            balance = get_wallet_on(conn, account_id).balance
            if balance < line:
                _request_on(conn, account_id, balance=balance, now=at)
        saved = _settings_on(conn, account_id)
        assert saved is not None
        return saved

    saved = run_write(engine, work)
    forget_threshold(account_id)
    return saved


def forget_threshold(account_id: str | None = None) -> None:
    """Drop the cached thresholds (of one account, or all)."""
    for key in [k for k in _thresholds if account_id is None or k[1] == account_id]:
        _thresholds.pop(key, None)


def _cached(url: str, account_id: str) -> list[int] | None:
    cached = _thresholds.get((url, account_id))
    return cached[1] if cached is not None and cached[0] > time.monotonic() else None


def _read_threshold(conn: Connection, account_id: str) -> list[int]:
    a = auto_topups.c
    found = conn.execute(
        select(a.threshold).where(a.account_id == account_id, a.enabled.is_(True))
    ).scalar()
    lines = [] if found is None else [usd_to_nanos(found)]
    _thresholds[(str(conn.engine.url), account_id)] = (time.monotonic() + CACHE_SECONDS, lines)
    return lines


def request_topup_on(
    conn: Connection, account_id: str, *, before: Decimal, after: Decimal, now: datetime
) -> bool:
    """Inside a debit's transaction: request a top-up when the debit took the balance
    (Decimal USD) from at or above the threshold to below it. Returns True when a
    `topups` row was written."""
    lines = _cached(str(conn.engine.url), account_id)
    if lines is None:
        lines = _read_threshold(conn, account_id)
    if not lines:  # the common case costs no query: no auto top-up (cached a minute)
        return False
    settings = _settings_on(conn, account_id)
    if settings is None or not settings.enabled:
        return False
    if not before >= settings.threshold > after:
        return False
    return _request_on(conn, account_id, balance=after, now=now, settings=settings)


def _request_on(
    conn: Connection,
    account_id: str,
    *,
    balance: Decimal,
    now: datetime,
    settings: AutoTopup | None = None,
) -> bool:
    settings = settings or _settings_on(conn, account_id)
    assert settings is not None
    if settings.package_id is not None:
        from_pack = _pack_terms(conn, settings.package_id)
        if from_pack is None:
            return False
        cents, currency, credits = from_pack
    else:
        assert settings.amount is not None
        cents, currency, credits = usd_to_cents(settings.amount), "usd", settings.amount
    if month_charged_cents(conn, account_id, now) + cents > usd_to_cents(settings.monthly_max):
        return False
    written = conn.execute(
        dialect_insert(conn, topups)
        .values(
            account_id=account_id,
            status="pending",
            package_id=settings.package_id,
            amount_cents=cents,
            currency=currency,
            credits=credits,
            attempts=0,
            next_attempt_at=now,
            balance_at_request=balance,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["account_id"], index_where=text(TOPUP_IN_FLIGHT))
        .returning(topups.c.id)
    ).first()
    return written is not None


def _pack_terms(conn: Connection, package_id: str) -> tuple[int, str, Decimal] | None:
    """(price cents, currency, credit) of an active pack; None when no longer sold."""
    try:
        package = package_on(conn, package_id)
    except UnknownPackage:
        return None
    if not package.active:
        return None
    return package.price_cents, package.currency, package.total_credit


def month_charged_cents(conn: Connection, account_id: str, now: datetime) -> int:
    """Cents of the account's top-ups this calendar month that were charged or may be."""
    start, end = month_bounds(month_of(now, get_settings().tz), get_settings().tz)
    t = topups.c
    total = conn.execute(
        select(func.coalesce(func.sum(t.amount_cents), 0)).where(
            t.account_id == account_id,
            t.status.in_(("pending", "processing", "succeeded")),
            t.created_at >= start,
            t.created_at < end,
        )
    ).scalar_one()
    return int(total)


@dataclass(frozen=True, slots=True)
class Topup:
    """One auto top-up. `amount`: Decimal USD charged; `credits`: Decimal USD credited."""

    id: int
    status: str
    amount: Decimal
    credits: Decimal
    attempts: int
    last_error: str | None
    created_at: datetime
    credited_at: datetime | None


def recent_topups(
    engine: Engine, viewer: Principal, *, account_id: str | None = None, limit: int = 20
) -> list[Topup]:
    """The viewer's account's latest top-ups (admins: `account_id`'s), newest first.
    Raises: PermissionDenied."""
    account_id = target_account(viewer, account_id)
    t = topups.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(topups)
            .where(t.account_id == account_id)
            .order_by(t.created_at.desc(), t.id.desc())
            .limit(limit)
        ).all()
    return [
        Topup(
            r.id,
            r.status,
            cents_to_usd(r.amount_cents),
            r.credits,
            r.attempts,
            r.last_error,
            r.created_at,
            r.credited_at,
        )  # fmt: skip
        for r in rows
    ]
