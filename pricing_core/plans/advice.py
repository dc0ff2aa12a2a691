"""Plan advice for one account: its monthly usage history (read from the daily
rollups), the recommendation replaying it under every plan (`plans.recommend_plan`),
the current month's allowance and estimated bill, and the CLI's JSON.

Calendar months are taken in the configured time zone (`PRICING_TIMEZONE`). A month's
pay-as-you-go cost is what its messages cost at per-request prices, also for months the
account spent on a plan (the plan usage counters keep those messages' pay-as-you-go
value), so every plan is replayed against the same usage.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Engine,
    String,
    case,
    cast,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import accounts, usage_daily
from pricing_core.adapters.schema_rollups import first_usage_day
from pricing_core.catalog.price_book import PriceBook, get_price_book
from pricing_core.config import get_settings
from pricing_core.domain.errors import UnknownAccount
from pricing_core.domain.forecast import PACE_WINDOW_DAYS, complete_days
from pricing_core.domain.money import nanos_to_usd, usd_str
from pricing_core.domain.periods import local_moment, month_bounds, month_of, previous_months
from pricing_core.domain.plan_advice import Recommendation, recommend_plan
from pricing_core.domain.plans import (
    MonthlyCharge,
    MonthUsage,
    Plan,
    PlanError,
    monthly_charge,
    project_month,
    with_fee,
)
from pricing_core.domain.principal import Principal, target_account
from pricing_core.plans.plan_charges import counts_as_message, plan_usage_on
from pricing_core.plans.subscriptions import account_fees_on, list_plans_on, plan_on


@dataclass(frozen=True, slots=True)
class PlanAdvice:
    """Everything the plans page and the CLI show for one account.

    Attributes:
        current: the account's plan now (PAYG if none), with its own fee.
        plans: the plans on offer, with the account's own fees (None: "talk to us").
        history: the past months then the projected current month (MonthUsage).
        month_to_date: the current month's usage so far.
        recommendation: the replay of `history` under every plan.
        this_month: the current plan's charge for the month so far.
        estimated_bill: Decimal USD, the current plan's cost for the projected month
            (messages under the plan plus non-message requests); None while the
            account has fewer complete days of usage than the Overview's projection
            needs (`forecast.PACE_WINDOW_DAYS`), so the two pages agree.
        history_days: complete days of usage before today (`forecast.complete_days`).
    """

    account_id: str
    now: datetime
    current: Plan
    plans: tuple[Plan, ...]
    history: tuple[MonthUsage, ...]
    month_to_date: MonthUsage
    recommendation: Recommendation
    this_month: MonthlyCharge
    estimated_bill: Decimal | None
    history_days: int

    @property
    def allowance(self) -> int | None:
        """Included messages of the current plan (None: unlimited; 0 for pay-as-you-go)."""
        return self.current.included_messages

    @property
    def talk_to_us(self) -> tuple[Plan, ...]:
        return tuple(p for p in self.plans if not p.has_fee)


def monthly_usage_on(conn: Connection, account_id: str, months: list[str]) -> dict[str, MonthUsage]:
    """The account's usage per calendar month (consecutive `months`, oldest first),
    from `usage_daily` and the plan usage counters. Months without usage are zero.
    """
    tz = get_settings().tz
    first, _ = month_bounds(months[0], tz)
    _, last = month_bounds(months[-1], tz)
    book = get_price_book(conn.engine)
    d = usage_daily.c
    # "YYYY-MM" of the local day; constants inline, so PostgreSQL sees the same
    # expression in SELECT and GROUP BY
    month = func.substr(cast(d.day, String), literal_column("1"), literal_column("7"))
    # whether an operation is fixed-price (so not a message, by default) is taken at
    # each day's start and changes only where an operation price takes effect: rows
    # are summed per month and stretch between such days, not per day
    changes = [c for c in _price_change_days(book, tz) if first.date() < c < last.date()]
    keys = [month, d.operation, d.model]
    if changes:
        keys.append(case(*((d.day < c, k) for k, c in enumerate(changes)), else_=len(changes)))
    rows = conn.execute(
        select(
            month,
            func.min(d.day),
            d.operation,
            d.model,
            func.sum(d.requests),
            type_coerce(func.sum(d.price), BigInteger),
        )
        .where(d.account_id == account_id, d.day >= first.date(), d.day < last.date())
        .group_by(*keys)
    ).all()
    messages: dict[str, int] = defaultdict(int)
    charged: dict[str, int] = defaultdict(int)  # nano-USD
    other: dict[str, int] = defaultdict(int)
    for month_name, day, operation, model, requests, price in rows:
        fixed = book.operation_row(operation, local_moment(day, time(0), tz), model) is not None
        if counts_as_message(operation, fixed=fixed):
            messages[month_name] += int(requests)
            charged[month_name] += int(price or 0)
        else:
            other[month_name] += int(price or 0)
    on_plan = plan_usage_on(conn, account_id, months)
    out = {}
    for month_name in months:
        payg = nanos_to_usd(charged[month_name])
        counter: Any = on_plan.get(month_name)
        if counter is not None:  # replace the plan's charges by their payg value
            payg = payg - counter.overage + counter.payg_value
        out[month_name] = MonthUsage(
            month_name, messages[month_name], payg, nanos_to_usd(other[month_name])
        )
    return out


def _price_change_days(book: PriceBook, tz: ZoneInfo) -> list[date]:
    """The local days from whose start each operation price is in effect (its first
    whole day), sorted: the only days where a call's being fixed-price can change."""
    out = set()
    for rows in book.operations.values():
        for row in rows:
            day = row.effective_from.astimezone(tz).date()
            if local_moment(day, time(0), tz) < row.effective_from:
                day += timedelta(days=1)
            out.add(day)
    return sorted(out)


def advise_plan(
    engine: Engine,
    viewer: Principal,
    *,
    account_id: str | None = None,
    months: int | None = None,
    now: datetime | None = None,
) -> PlanAdvice:
    """Replay the account's last `months` calendar months (those since it was opened
    or first used)
    and the projected current month under every plan on offer; recommend the cheapest.

    Args:
        months: complete past months to replay (default: setting `plan_history_months`).
        now: the moment "this month" is taken at (default: now); the current month is
            projected from its usage so far (`plans.project_month`).
    Returns: PlanAdvice. Raises: PermissionDenied (a member naming another account
        in `account_id`; default: the viewer's own), UnknownAccount, PlanError.
    """
    account_id = target_account(viewer, account_id)
    at = (now or datetime.now(UTC)).astimezone(UTC)
    count = get_settings().plan_history_months if months is None else months
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 120:
        raise PlanError(f"months must be between 0 and 120, got {count}")
    tz = get_settings().tz
    current_month = month_of(at, tz)
    with engine.connect() as conn:
        # months before the account existed would compare plan fees against no usage;
        # imported history can be older than the account row, so its first usage counts
        found = conn.execute(
            select(accounts.c.created_at, first_usage_day(account_id)).where(
                accounts.c.id == account_id
            )
        ).first()
        if found is None:
            raise UnknownAccount(f"unknown account {account_id!r}")
        opened, used_since = found
        first = month_of(opened, tz)
        if used_since is not None:
            first = min(first, used_since.strftime("%Y-%m"))
        all_months = [m for m in previous_months(current_month, count) if m >= first] + [
            current_month
        ]
        usage = monthly_usage_on(conn, account_id, all_months)
        fees = account_fees_on(conn, account_id)
        offered = tuple(with_fee(p, fees.get(p.code)) for p in list_plans_on(conn, at=at))
        current = plan_on(conn, account_id, at)
    start, end = month_bounds(current_month, tz)
    mtd = usage[current_month]
    projected = project_month(mtd, month_start=start, month_end=end, now=at)
    history = tuple(usage[m] for m in all_months[:-1]) + (projected,)
    rec = recommend_plan(history, offered, current)
    days = complete_days(used_since, at.astimezone(tz).date())
    return PlanAdvice(
        account_id=account_id,
        now=at,
        current=current,
        plans=offered,
        history=history,
        month_to_date=mtd,
        recommendation=rec,
        this_month=monthly_charge(current, mtd.messages, mtd.payg_cost),
        estimated_bill=rec.months[-1].costs[current.code] if days >= PACE_WINDOW_DAYS else None,
        history_days=days,
    )


def recommendation_json(advice: PlanAdvice) -> dict[str, Any]:
    """The CLI's JSON object (amounts as decimal strings, plan codes lower case,
    months oldest first with the projected current month last)."""
    rec = advice.recommendation
    return {
        "account_id": advice.account_id,
        "current_plan": rec.current,
        "recommended_plan": rec.recommended,
        "savings_per_month_usd": usd_str(rec.savings_per_month),
        "months": [
            {
                "month": m.month,
                "projected": m.projected,
                "messages": m.messages,
                "costs_usd": {code: usd_str(cost) for code, cost in m.costs.items()},
            }
            for m in rec.months
        ],
    }
