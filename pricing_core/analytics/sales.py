"""Cash in from customers: credit pack sales (Stripe Checkout), refunds and disputes,
and plan fees; plus usage revenue by plan.

Cash is what customers paid, in USD, not the credit it bought (a $4.99 pack credits
$5). It is read from the ledger, dated by the entry: a pack sale is the `purchase`
entry of a Checkout Session, counted at the session's `amount_cents`; a refund or a
dispute is the `refund` entry that took the credit back, converted back to cash at
the session's own rate (`amount_cents` per USD of credit + bonus) and rounded
half-even to the cent (the credit taken back is the refunded share of the credit, so
this gives back the refunded cents); a `reversal` of one (refund cancelled, dispute
won) adds it back. A `purchase` or `refund` entry with no Checkout Session (a sale
recorded by hand) counts its own amount.

Plan fees are collected by Stripe per subscription; this product does not record
Stripe invoices, so a plan fee counts as cash in at the start of each monthly billing
cycle of a subscription set through Stripe or by an admin (the anniversary of its
start, while it lasts), at the plan version's fee or the account's own fee. Demo
switches are free and count nothing.

Usage revenue by plan attributes each account-day of the rollups to the plan the
account was on at the end of that local day (plan switches take effect at once; a
mid-day switch moves that whole day).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import Engine, and_, func, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import IS_CASH, account_daily, ledger_entries
from pricing_core.adapters.schema_billing import (
    checkout_sessions,
    credit_packages,
    plan_account_fees,
    plans,
    subscriptions,
)
from pricing_core.adapters.schema_payments import topups
from pricing_core.adapters.warehouse import Warehouse
from pricing_core.analytics import warehouse
from pricing_core.analytics.account_ranges import account_totals
from pricing_core.config import get_settings
from pricing_core.domain.money import ZERO, cents_to_usd, nanos_to_usd
from pricing_core.domain.periods import add_months, check_range, local_day, utc_bounds
from pricing_core.domain.principal import Principal, require_admin
from pricing_core.ledger.wallets import EntryKind

CENT = Decimal("0.01")
PAID_SOURCES = ("stripe", "admin")  # subscription sources whose fees are collected


@dataclass(frozen=True, slots=True)
class CashMovement:
    """One dated movement of cash. USD, signed (refunds < 0)."""

    at: datetime
    amount: Decimal
    kind: str  # pack | refund | plan_fee
    label: str  # package or plan name


def _session_rates(conn: Connection, ids: set[str]) -> dict[str, tuple[int, Decimal, str]]:
    """session id -> (amount_cents, credit + bonus, package name)."""
    if not ids:
        return {}
    cs, cp = checkout_sessions.c, credit_packages.c
    rows = conn.execute(
        select(cs.id, cs.amount_cents, cs.credits, cs.bonus, cp.name)
        .select_from(checkout_sessions.outerjoin(credit_packages, cp.id == cs.package_id))
        .where(cs.id.in_(sorted(ids)))
    ).all()
    return {r.id: (int(r.amount_cents), r.credits + r.bonus, r.name or "?") for r in rows}


def _topup_rates(conn: Connection, refs: set[str]) -> dict[str, tuple[int, Decimal, str]]:
    """payment intent id -> (amount_cents, credit, "Auto top-up") of auto top-ups."""
    if not refs:
        return {}
    t = topups.c
    rows = conn.execute(
        select(t.payment_intent, t.amount_cents, t.credits).where(
            t.payment_intent.in_(sorted(refs))
        )
    ).all()
    return {r.payment_intent: (int(r.amount_cents), r.credits, "Auto top-up") for r in rows}


def pack_movements(conn: Connection, lo: datetime, hi: datetime) -> list[CashMovement]:
    """Credit sales and their refunds in [lo, hi), from the ledger.

    A `purchase` entry of a Checkout Session or an auto top-up counts its price (cash paid),
    any other `purchase` entry its amount (a sale recorded by hand). A `refund` entry
    of a session counts its credit converted back at the session's rate, any other
    its amount; a `reversal` of a session's refund or dispute adds that back.
    """
    le = ledger_entries.c
    rows = conn.execute(
        select(le.created_at, le.amount, le.reference, le.kind).where(
            IS_CASH,  # the cash index's own condition (`adapters.schema`)
            le.created_at >= lo,
            le.created_at < hi,
        )
    ).all()
    refs = {r.reference for r in rows if r.reference}
    rates = _session_rates(conn, refs) | _topup_rates(conn, refs)
    out = []
    for r in rows:
        session = rates.get(r.reference) if r.reference else None
        if r.kind == EntryKind.PURCHASE:
            if session is None:
                out.append(CashMovement(r.created_at, r.amount, "pack", "recorded by hand"))
            else:
                out.append(CashMovement(r.created_at, cents_to_usd(session[0]), "pack", session[2]))
            continue
        if session is None:
            if r.kind == EntryKind.REFUND:
                out.append(CashMovement(r.created_at, r.amount, "refund", "recorded by hand"))
            continue  # a reversal of something else (not a sale)
        cents, credit, name = session
        if credit:
            cash = (r.amount * cents / credit / 100).quantize(CENT, rounding=ROUND_HALF_EVEN)
            out.append(CashMovement(r.created_at, cash, "refund", name))
    return out


def plan_fee_movements(conn: Connection, lo: datetime, hi: datetime) -> list[CashMovement]:
    """Plan fees due at the start of each monthly cycle of paid subscriptions in [lo, hi)."""
    s, p, f = subscriptions.c, plans.c, plan_account_fees.c
    rows = conn.execute(
        select(
            s.account_id,
            s.plan_code,
            s.started_at,
            s.ended_at,
            p.name,
            p.monthly_fee,
            f.monthly_fee.label("account_fee"),
        )  # fmt: skip
        .select_from(
            subscriptions.join(
                plans, and_(p.code == s.plan_code, p.version == s.plan_version)
            ).outerjoin(
                plan_account_fees, and_(f.account_id == s.account_id, f.plan_code == s.plan_code)
            )
        )
        .where(s.source.in_(PAID_SOURCES), s.started_at < hi)
    ).all()
    out = []
    for r in rows:
        fee = r.account_fee if r.account_fee is not None else r.monthly_fee
        if not fee:
            continue
        end = min(hi, r.ended_at) if r.ended_at else hi
        k = 0
        while (cycle := add_months(r.started_at, k)) < end:
            if cycle >= lo:
                out.append(CashMovement(cycle, fee, "plan_fee", r.name))
            k += 1
    return out


def cash_by_day(engine: Engine, start: date, end: date) -> dict[date, Decimal]:
    """Cash in per local day over [start, end] (no role check: callers check it)."""
    tz = get_settings().tz
    lo, hi = utc_bounds(start, end, tz)
    out: dict[date, Decimal] = defaultdict(lambda: ZERO)
    with engine.connect() as conn:
        for m in pack_movements(conn, lo, hi) + plan_fee_movements(conn, lo, hi):
            out[local_day(m.at, tz)] += m.amount
    return out


@dataclass(frozen=True, slots=True)
class PackageSales:
    """One package's sales over a range. USD of cash."""

    package: str
    sold: int
    sales: Decimal
    refunded: Decimal  # <= 0

    @property
    def net(self) -> Decimal:
        return self.sales + self.refunded


def package_sales(
    engine: Engine, principal: Principal, *, start: date, end: date
) -> list[PackageSales]:
    """Packs sold (fulfilled Checkout Sessions), cash received and refunded per package
    over [start, end] (local days), by net cash. Raises: PermissionDenied, InvalidUsage.
    """
    require_admin(principal)
    check_range(start, end)
    lo, hi = utc_bounds(start, end, get_settings().tz)
    sold: dict[str, int] = defaultdict(int)
    sales: dict[str, Decimal] = defaultdict(lambda: ZERO)
    refunded: dict[str, Decimal] = defaultdict(lambda: ZERO)
    with engine.connect() as conn:
        for m in pack_movements(conn, lo, hi):
            if m.kind == "pack":
                sold[m.label] += 1
                sales[m.label] += m.amount
            else:
                refunded[m.label] += m.amount
    names = set(sales) | set(refunded)
    rows = [PackageSales(n, sold[n], sales[n], refunded[n]) for n in names]
    return sorted(rows, key=lambda r: (-r.net, r.package))


@dataclass(frozen=True, slots=True)
class PlanRevenue:
    """Usage revenue and plan fees of one plan over a range. USD."""

    plan: str
    accounts: int
    usage_revenue: Decimal
    provider_cost: Decimal
    plan_fees: Decimal

    @property
    def margin(self) -> Decimal:
        return self.usage_revenue + self.plan_fees - self.provider_cost


def _plan_intervals(conn: Connection) -> dict[str, list[tuple[datetime, datetime | None, str]]]:
    s, p = subscriptions.c, plans.c
    out: dict[str, list[tuple[datetime, datetime | None, str]]] = defaultdict(list)
    for r in conn.execute(
        select(s.account_id, s.started_at, s.ended_at, p.name)
        .select_from(
            subscriptions.join(plans, and_(p.code == s.plan_code, p.version == s.plan_version))
        )
        .order_by(s.account_id, s.started_at, s.id)
    ):
        out[r.account_id].append((r.started_at, r.ended_at, r.name))
    return out


PAYG_NAME = "Pay as you go"


def _plan_at(intervals: list[tuple[datetime, datetime | None, str]], at: datetime) -> str:
    name = PAYG_NAME
    for started, ended, plan in intervals:
        if started <= at and (ended is None or ended > at):
            name = plan
    return name


def revenue_by_plan(
    engine: Engine, principal: Principal, *, start: date, end: date
) -> list[PlanRevenue]:
    """Usage revenue, provider cost and plan fees per plan over [start, end] (see the
    module docstring for how days are attributed), by revenue.
    Raises: PermissionDenied, InvalidUsage. Sources: account_monthly and account_daily
    (`account_ranges`), subscriptions.
    """
    require_admin(principal)
    check_range(start, end)
    tz = get_settings().tz
    d = account_daily.c
    revenue: dict[str, Decimal] = defaultdict(lambda: ZERO)
    cost: dict[str, Decimal] = defaultdict(lambda: ZERO)
    members: dict[str, set[str]] = defaultdict(set)
    lo, hi = utc_bounds(start, end, tz)
    in_range = and_(d.day >= start, d.day <= end)
    wh = warehouse.configured()
    per_day: Iterable[Any]  # (account_id, day, price, provider_cost)
    with engine.connect() as conn:
        intervals = _plan_intervals(conn)
        subscribed = sorted(intervals)
        # Accounts that never subscribed are pay-as-you-go on every day: summed in
        # the database, so the Python loop below only walks the plan subscribers.
        if wh is not None:
            payg_only, price, provider_cost, per_day = _plan_split(
                engine, wh, start, end, subscribed
            )
        else:
            totals = account_totals(start, end, sums=("price", "provider_cost"))
            payg_only, price, provider_cost = conn.execute(
                select(
                    func.count(), func.sum(totals.c.price), func.sum(totals.c.provider_cost)
                ).where(totals.c.account_id.not_in(subscribed))
            ).one()
            per_day = conn.execute(
                select(d.account_id, d.day, func.sum(d.price), func.sum(d.provider_cost))
                .where(in_range, d.account_id.in_(subscribed))
                .group_by(d.account_id, d.day)
            )
        if payg_only:
            revenue[PAYG_NAME] += price or ZERO
            cost[PAYG_NAME] += provider_cost or ZERO
        for account_id, day, price, provider_cost in per_day:
            end_of_day = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz).astimezone(
                UTC
            )
            plan = _plan_at(intervals[account_id], end_of_day - timedelta(microseconds=1))
            revenue[plan] += price or ZERO
            cost[plan] += provider_cost or ZERO
            members[plan].add(account_id)
        fees: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for m in plan_fee_movements(conn, lo, hi):
            fees[m.label] += m.amount
    names = set(revenue) | set(fees)
    accounts = {n: len(members[n]) + (payg_only if n == PAYG_NAME else 0) for n in names}
    rows = [PlanRevenue(n, accounts[n], revenue[n], cost[n], fees[n]) for n in names]
    return sorted(rows, key=lambda r: (-(r.usage_revenue + r.plan_fees), r.plan))


def _plan_split(
    engine: Engine, wh: Warehouse, start: date, end: date, subscribed: list[str]
) -> tuple[int, Decimal, Decimal, list[tuple[str, date, Decimal, Decimal]]]:
    """`revenue_by_plan`'s two reads summed by the warehouse: the pay-as-you-go-only
    accounts' count, price and provider cost, and each subscriber's (account, day,
    price, provider cost)."""
    payg = warehouse.rollup_frame(
        engine, wh, table="account_daily", group=["account_id"], start=start, end=end,
        accounts=subscribed, excluding=True,
    )  # fmt: skip
    subscribers = warehouse.rollup_frame(
        engine, wh, table="account_daily", group=["account_id", "day"], start=start, end=end,
        accounts=subscribed,
    )  # fmt: skip
    return (
        len(payg),
        nanos_to_usd(int(payg["price"].sum())),
        nanos_to_usd(int(payg["provider_cost"].sum())),
        [
            (a, day, nanos_to_usd(int(p)), nanos_to_usd(int(c)))
            for a, day, p, c in subscribers[
                ["account_id", "day", "price", "provider_cost"]
            ].itertuples(index=False, name=None)
        ],
    )
