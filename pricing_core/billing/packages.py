"""Credit packages: what a buyer can buy (price, credit, bonus), read from the
`credit_packages` table. Amounts: Decimal USD."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema_billing import credit_packages
from pricing_core.domain.errors import PricingError
from pricing_core.domain.money import DisplayUnit, cents_to_usd


class UnknownPackage(PricingError):
    """No (active) credit package has this id."""


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


def package_on(conn: Connection, package_id: str) -> CreditPackage:
    """One package version by id, inside `conn`. Raises: UnknownPackage."""
    row = conn.execute(select(credit_packages).where(credit_packages.c.id == package_id)).first()
    if row is None:
        raise UnknownPackage(f"unknown credit package {package_id!r}")
    return _package(row)


def get_package(engine: Engine, package_id: str) -> CreditPackage:
    """One package version by id. Raises: UnknownPackage."""
    with engine.connect() as conn:
        return package_on(conn, package_id)


# ---------------------------------------------------------------- offers


@dataclass(frozen=True, slots=True)
class PackageOffer:
    """A pack as a buyer compares it, in the display unit.

    `credit`: credit received (credits + bonus) in the unit, exact. `per_unit`: USD
    paid per credit (per $1 of credit in USD), half-even to 6 places. `saving_pct`:
    what the pack saves per unit against the first pack on offer, whole percent
    (half-even); None for the first pack and for packs that save nothing.
    """

    package: CreditPackage
    credit: Decimal
    per_unit: Decimal
    saving_pct: Decimal | None


PER_UNIT_PLACES = Decimal("0.000001")


def package_offers(packages: list[CreditPackage], unit: DisplayUnit) -> list[PackageOffer]:
    """The packs on offer (`list_packages`, in display order) with their price per
    unit and saving against the first pack."""
    offers = []
    base: Decimal | None = None
    for package in packages:
        credit = unit.amount(package.total_credit)
        exact = package.price / credit
        saving = None
        if base is None:
            base = exact
        elif exact < base:
            saving = ((1 - exact / base) * 100).quantize(Decimal(1), ROUND_HALF_EVEN)
        per_unit = exact.quantize(PER_UNIT_PLACES, ROUND_HALF_EVEN).normalize()
        offers.append(PackageOffer(package, credit, per_unit, saving))
    return offers
