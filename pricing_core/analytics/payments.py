"""Payment metrics for admins: per local day, the card payments that succeeded and
failed (Checkout purchases and auto top-up attempts), the success rate, declines,
top-ups credited, and refunds.

Sources: `checkout_sessions` (not simulated; `complete` by `fulfilled_at`, `failed` by
`updated_at`), `topup_attempts` (succeeded, declined, requires_action; an `error` is
Stripe being unreachable, not a payment), `topups` credited (`credited_at`), and the
ledger's `refund` entries. These tables grow with payments, not with usage.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import Engine, select

from pricing_core.adapters.schema import IS_CASH, ledger_entries
from pricing_core.adapters.schema_billing import checkout_sessions
from pricing_core.adapters.schema_payments import topup_attempts, topups
from pricing_core.config import get_settings
from pricing_core.domain.money import ZERO
from pricing_core.domain.periods import check_range, local_day, utc_bounds
from pricing_core.domain.principal import Principal, require_admin
from pricing_core.ledger.wallets import EntryKind


@dataclass(frozen=True, slots=True)
class PaymentDay:
    """One local day. `success_rate`: succeeded / (succeeded + failed) in percent
    (Decimal, 1 place), None without payments. `refunded`: Decimal USD of credit
    taken back (positive)."""

    day: date
    succeeded: int
    failed: int
    declines: int  # failed top-up attempts (declined or needing the card owner)
    topups: int  # auto top-ups credited
    refunds: int
    refunded: Decimal

    @property
    def success_rate(self) -> Decimal | None:
        return success_rate(self.succeeded, self.failed)


def success_rate(succeeded: int, failed: int) -> Decimal | None:
    """100 * succeeded / (succeeded + failed), a Decimal percent to 1 place
    (half-even); None for 0/0."""
    attempts = succeeded + failed
    if not attempts:
        return None
    return (Decimal(100 * succeeded) / attempts).quantize(Decimal("0.1"), ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class PaymentMetrics:
    days: list[PaymentDay]

    def total(self, name: str) -> int:
        return sum(getattr(d, name) for d in self.days)

    @property
    def success_rate(self) -> Decimal | None:
        return success_rate(self.total("succeeded"), self.total("failed"))

    @property
    def refunded(self) -> Decimal:
        return sum((d.refunded for d in self.days), ZERO)


def payment_metrics(engine: Engine, viewer: Principal, start: date, end: date) -> PaymentMetrics:
    """Every local day in [start, end] (inclusive), oldest first.
    Raises: PermissionDenied (admins only), InvalidUsage (bad range)."""
    require_admin(viewer)
    check_range(start, end)
    tz = get_settings().tz
    lo, hi = utc_bounds(start, end, tz)
    counts: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    refunded: dict[date, Decimal] = defaultdict(Decimal)
    cs, a, t, le = checkout_sessions.c, topup_attempts.c, topups.c, ledger_entries.c
    with engine.connect() as conn:
        for at in conn.execute(
            select(cs.fulfilled_at).where(
                cs.simulated.is_(False), cs.fulfilled_at >= lo, cs.fulfilled_at < hi
            )
        ).scalars():
            counts["succeeded"][local_day(at, tz)] += 1
        for at in conn.execute(
            select(cs.updated_at).where(
                cs.simulated.is_(False), cs.status == "failed", cs.updated_at >= lo,
                cs.updated_at < hi,
            )
        ).scalars():  # fmt: skip
            counts["failed"][local_day(at, tz)] += 1
        for at, outcome in conn.execute(
            select(a.created_at, a.outcome).where(a.created_at >= lo, a.created_at < hi)
        ):
            if outcome == "succeeded":
                counts["succeeded"][local_day(at, tz)] += 1
            elif outcome in ("declined", "requires_action"):
                counts["failed"][local_day(at, tz)] += 1
                counts["declines"][local_day(at, tz)] += 1
        for at in conn.execute(
            select(t.credited_at).where(t.credited_at >= lo, t.credited_at < hi)
        ).scalars():
            counts["topups"][local_day(at, tz)] += 1
        for at, amount in conn.execute(
            select(le.created_at, le.amount).where(
                IS_CASH,  # the cash index's own condition, which SQLite's planner needs
                le.kind == str(EntryKind.REFUND),
                le.created_at >= lo,
                le.created_at < hi,
            )
        ):
            counts["refunds"][local_day(at, tz)] += 1
            refunded[local_day(at, tz)] -= amount
    days = []
    day = start
    while day <= end:
        days.append(
            PaymentDay(
                day, counts["succeeded"][day], counts["failed"][day], counts["declines"][day],
                counts["topups"][day], counts["refunds"][day], refunded[day],
            )
        )  # fmt: skip
        day = date.fromordinal(day.toordinal() + 1)
    return PaymentMetrics(days)
