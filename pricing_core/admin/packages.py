"""Operators edit credit packs without Python: a pack is versioned, so an edit writes a
new version (and retires the old one) in one transaction with its audit row. A
checkout names the version it sold (`checkout_sessions.package_id`), so past and
open purchases keep their terms; only new purchases see the edit.

Contents are given in the display unit (`config.Settings.display_unit`: credits or
USD) and stored as exact Decimal USD of credit; the price is what Stripe charges, in
USD.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.engine import Connection

from pricing_core.adapters.audit import actor_of, audit_reason, write_audit
from pricing_core.adapters.schema_billing import credit_packages
from pricing_core.adapters.storage import run_write
from pricing_core.billing.packages import CreditPackage, _package
from pricing_core.config import get_settings
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.money import DisplayUnit, to_usd, usd_to_cents
from pricing_core.domain.principal import Principal, require_admin
from pricing_core.domain.usage_event import check_name

MAX_PACK_PRICE = Decimal(100_000)  # USD per purchase
MAX_PACK_CREDIT = Decimal(1_000_000)  # USD of credit per purchase


@dataclass(frozen=True, slots=True)
class PackTerms:
    """What a new pack version sells. `price`: USD charged; `credits`, `bonus`: in
    the display unit (credits, or USD of credit)."""

    name: str
    price: object
    credits: object
    bonus: object = 0
    popular: bool = False


def _amount(value: object, what: str, high: Decimal, *, positive: bool) -> Decimal:
    try:
        amount = to_usd(value)
    except ValueError as exc:
        raise InvalidUsage(f"{what}: {exc}") from None
    if amount < 0 or (positive and amount == 0) or amount > high:
        bound = "above" if positive else "at least"
        raise InvalidUsage(f"{what} must be {bound} 0 and at most {high:,}, got {amount}")
    return amount


def _checked(terms: PackTerms, unit: DisplayUnit) -> dict[str, Any]:
    name = terms.name.strip() if isinstance(terms.name, str) else ""
    if not 1 <= len(name) <= 200:
        raise InvalidUsage("a pack needs a name of 1-200 characters")
    price = _amount(terms.price, "price", MAX_PACK_PRICE, positive=True)
    try:
        cents = usd_to_cents(price)
        credits, bonus = (unit.to_usd(v) for v in (terms.credits, terms.bonus))
    except ValueError as exc:
        raise InvalidUsage(str(exc)) from None
    _amount(credits, f"credits ({unit.name})", MAX_PACK_CREDIT, positive=True)
    _amount(bonus, f"bonus ({unit.name})", MAX_PACK_CREDIT, positive=False)
    return {
        "name": name,
        "price_cents": cents,
        "credits": credits,
        "bonus": bonus,
        "popular": bool(terms.popular),
    }


def _latest(conn: Connection, code: str) -> CreditPackage | None:
    p = credit_packages.c
    row = conn.execute(
        select(credit_packages).where(p.code == code).order_by(p.version.desc()).limit(1)
    ).first()
    return None if row is None else _package(row)


def _view(package: CreditPackage | None) -> dict[str, Any] | None:
    if package is None:
        return None
    return {
        "id": package.id,
        "name": package.name,
        "price_cents": package.price_cents,
        "credits": package.credits,
        "bonus": package.bonus,
        "popular": package.popular,
        "active": package.active,
    }


def save_package(
    engine: Engine,
    principal: Principal,
    code: str,
    terms: PackTerms,
    *,
    reason: str,
    unit: DisplayUnit | None = None,
    now: datetime | None = None,
) -> CreditPackage:
    """Sell pack `code` on `terms` from now on: its next version (version 1 for a new
    code, placed last), active; the previous version is retired. One transaction with
    an audit row (action "package.save"); saving the same terms again changes nothing.
    `unit`: the unit of the terms' credits (default: the display unit).

    Returns: the active version. Raises: PermissionDenied, InvalidUsage.
    """
    require_admin(principal)
    check_name("pack code", code)
    values = _checked(terms, unit or get_settings().display_unit)
    text = audit_reason(reason)
    at = now or datetime.now(UTC)
    actor = actor_of(principal)

    def work(conn: Connection) -> CreditPackage:
        previous = _latest(conn, code)
        if (
            previous is not None
            and previous.active
            and all(getattr(previous, k) == v for k, v in values.items())
        ):
            return previous
        p = credit_packages.c
        if previous is None:
            last = conn.execute(select(func.max(p.sort_order))).scalar() or 0
            version, order, currency = 1, last + 10, "usd"
        else:
            version, order, currency = previous.version + 1, previous.sort_order, previous.currency
            conn.execute(update(credit_packages).where(p.code == code).values(active=False))
        if values["popular"]:  # one pack carries the badge
            conn.execute(update(credit_packages).values(popular=False))
        row = {
            "id": f"{code}-v{version}", "code": code, "version": version, "currency": currency,
            "active": True, "sort_order": order, "created_at": at, **values,
        }  # fmt: skip
        conn.execute(credit_packages.insert().values(**row))
        saved = _package(conn.execute(select(credit_packages).where(p.id == row["id"])).one())
        write_audit(
            conn, actor=actor, action="package.save", now=at, target=code,
            before=_view(previous), after=_view(saved), reason=text,
        )  # fmt: skip
        return saved

    return run_write(engine, work)


def retire_package(
    engine: Engine, principal: Principal, code: str, *, reason: str, now: datetime | None = None
) -> None:
    """Stop selling pack `code` (every version inactive), with an audit row (action
    "package.retire"). Raises: PermissionDenied, InvalidUsage (unknown or already retired)."""
    require_admin(principal)
    text = audit_reason(reason)
    at = now or datetime.now(UTC)

    def work(conn: Connection) -> None:
        previous = _latest(conn, code)
        if previous is None or not previous.active:
            raise InvalidUsage(f"no pack {code!r} is on sale")
        p = credit_packages.c
        conn.execute(update(credit_packages).where(p.code == code).values(active=False))
        write_audit(
            conn, actor=actor_of(principal), action="package.retire", now=at, target=code,
            before=_view(previous), after=None, reason=text,
        )  # fmt: skip

    run_write(engine, work)
