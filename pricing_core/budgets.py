"""Monthly budgets and alert thresholds.

A budget caps what an account (user_id "") or one of its users spends per calendar
month in the configured time zone. Spend is the sum of the month's usage prices
from the daily rollups. Thresholds are percents of the budget (default 50/80/100);
when spend reaches one, a row in `budget_alerts` remembers it for the month, so the
dashboard keeps showing the banner until the month rolls over even if the budget
is raised. With `block_at_limit`, the API refuses requests once the budget is used
up: it reads the same settings through `read_budget` and `spend_in_month`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.engine import Connection

from .auth import Principal, require_account
from .config import get_settings
from .errors import InvalidUsage, UnknownAccount
from .money import ZERO, to_usd, usd_str
from .storage import (
    accounts,
    audit_log,
    budget_alerts,
    budgets,
    dialect_insert,
    run_write,
    usage_daily,
)

ACCOUNT_WIDE = ""  # budgets.user_id for a budget over the whole account
DEFAULT_THRESHOLDS: tuple[int, ...] = (50, 80, 100)
MAX_MONTHLY_BUDGET = Decimal("1000000")  # USD; anything above is a typo, not a budget
MAX_THRESHOLDS = 10


@dataclass(frozen=True, slots=True)
class Budget:
    """An account's (or user's) budget settings. `monthly_limit`: Decimal USD or None
    (no budget). `thresholds`: ascending percents in 1..100."""

    account_id: str
    user_id: str
    monthly_limit: Decimal | None
    thresholds: tuple[int, ...]
    block_at_limit: bool
    updated_by: str | None = None
    updated_at: datetime | None = None
    is_default: bool = False  # the operator's default budget (setting), not the account's

    @property
    def is_set(self) -> bool:
        return self.monthly_limit is not None


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """This month's spend against the budget.

    Attributes:
        period: the month, "YYYY-MM" in the configured time zone.
        spend: Decimal USD spent this month (usage prices, rollups).
        percent_used: spend / limit x 100, rounded to 0.1, or None without a budget.
        remaining: limit - spend (may be negative), or None without a budget.
        crossed: thresholds reached this month (now, or recorded earlier this month).
        blocked: the budget blocks requests and is used up.
    """

    budget: Budget
    period: str
    spend: Decimal
    percent_used: Decimal | None
    remaining: Decimal | None
    crossed: tuple[int, ...]
    blocked: bool

    @property
    def meter_percent(self) -> int:
        """percent_used as a whole percent clamped to 0..100 (for a progress bar)."""
        if self.percent_used is None:
            return 0
        return max(0, min(100, int(self.percent_used)))


# ---------------------------------------------------------------- validation (pure)


def parse_monthly_limit(value: object) -> Decimal | None:
    """A budget amount from user input: None/"" = no budget.

    Returns: Decimal USD. Raises: InvalidUsage for garbage, floats, zero or negative
    amounts, fractions of a cent, or more than MAX_MONTHLY_BUDGET.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = value.strip().lstrip("$").replace(",", "") if isinstance(value, str) else value
    try:
        amount = to_usd(text)
    except ValueError as exc:
        raise InvalidUsage(f"monthly budget: {exc}") from None
    if amount <= 0:
        raise InvalidUsage(f"monthly budget must be positive, got {amount}")
    if amount > MAX_MONTHLY_BUDGET:
        raise InvalidUsage(
            f"monthly budget {amount} USD is above the maximum of {MAX_MONTHLY_BUDGET} USD"
        )
    if amount != amount.quantize(Decimal("0.01")):
        raise InvalidUsage(f"monthly budget must be whole cents, got {amount}")
    return amount.quantize(Decimal("0.01"))


def parse_thresholds(value: str | Iterable[object]) -> tuple[int, ...]:
    """Alert thresholds from "50, 80, 100" or a list of integers.

    Returns: ascending unique percents. Raises: InvalidUsage for non-integers, values
    outside 1..100, none at all, or more than MAX_THRESHOLDS.
    """
    items: list[object] = (
        [p for p in re.split(r"[,\s;]+", value.replace("%", "")) if p]
        if isinstance(value, str)
        else list(value)
    )
    percents: set[int] = set()
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise InvalidUsage(f"threshold must be a whole percent, got {item!r:.40}")
        if isinstance(item, str) and not re.fullmatch(r"[+-]?\d{1,6}", item.strip()):
            raise InvalidUsage(f"threshold must be a whole percent, got {item!r:.40}")
        percent = int(item)
        if not 1 <= percent <= 100:
            raise InvalidUsage(f"threshold must be between 1 and 100 %, got {percent}")
        percents.add(percent)
    if not percents:
        raise InvalidUsage("give at least one alert threshold (1..100 %)")
    if len(percents) > MAX_THRESHOLDS:
        raise InvalidUsage(f"at most {MAX_THRESHOLDS} thresholds, got {len(percents)}")
    return tuple(sorted(percents))


def crossed_thresholds(
    limit: Decimal | None, thresholds: Iterable[int], spend: Decimal
) -> tuple[int, ...]:
    """Thresholds (percents) that `spend` has reached: spend >= limit x t / 100. Exact."""
    if limit is None or limit <= 0:
        return ()
    return tuple(t for t in thresholds if spend * 100 >= limit * t)


# ---------------------------------------------------------------- reads (reusable in transactions)


def month_of(now: datetime) -> tuple[date, date, str]:
    """(first day, last day, "YYYY-MM") of `now`'s month in the configured time zone."""
    today = now.astimezone(get_settings().tz).date()
    first = today.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1), f"{first:%Y-%m}"


def read_budget(conn: Connection, account_id: str, user_id: str = ACCOUNT_WIDE) -> Budget:
    """The budget settings of an account (or one of its users).

    Without a stored row, the account-wide budget is the operator's default
    (`PRICING_DEFAULT_MONTHLY_BUDGET`, blocking at 100 %, as `limits` enforces it) or
    none. Usable inside any transaction.
    """
    row = conn.execute(
        select(budgets).where(budgets.c.account_id == account_id, budgets.c.user_id == user_id)
    ).first()
    if row is None:
        default = get_settings().default_monthly_budget if user_id == ACCOUNT_WIDE else None
        if default is not None:
            return Budget(account_id, user_id, default, DEFAULT_THRESHOLDS, True, is_default=True)
        return Budget(account_id, user_id, None, DEFAULT_THRESHOLDS, False)
    return Budget(
        account_id,
        user_id,
        row.monthly_limit,
        parse_thresholds(row.thresholds),
        bool(row.block_at_limit),
        row.updated_by,
        row.updated_at,
    )


def spend_in_month(
    conn: Connection, account_id: str, *, now: datetime, user_id: str = ACCOUNT_WIDE
) -> Decimal:
    """Decimal USD of usage prices in `now`'s month (configured time zone), from the
    daily rollups; `user_id` "" = the whole account."""
    first, last, _ = month_of(now)
    d = usage_daily.c
    query = select(func.coalesce(func.sum(d.price), 0)).where(
        d.account_id == account_id, d.day >= first, d.day <= last
    )
    if user_id != ACCOUNT_WIDE:
        query = query.where(d.user_id == user_id)
    total = conn.execute(query).scalar_one()
    return total if isinstance(total, Decimal) else ZERO


def status_on(
    conn: Connection, account_id: str, *, now: datetime, user_id: str = ACCOUNT_WIDE
) -> BudgetStatus:
    """The budget status inside an open connection (see `budget_status`)."""
    budget = read_budget(conn, account_id, user_id)
    spend = spend_in_month(conn, account_id, now=now, user_id=user_id)
    _, _, period = month_of(now)
    crossed = set(crossed_thresholds(budget.monthly_limit, budget.thresholds, spend))
    recorded = conn.execute(
        select(budget_alerts.c.threshold).where(
            budget_alerts.c.account_id == account_id,
            budget_alerts.c.user_id == user_id,
            budget_alerts.c.period == period,
        )
    ).scalars()
    if budget.is_set:
        crossed |= set(recorded)
    limit = budget.monthly_limit
    return BudgetStatus(
        budget=budget,
        period=period,
        spend=spend,
        percent_used=None if limit is None else (spend * 100 / limit).quantize(Decimal("0.1")),
        remaining=None if limit is None else limit - spend,
        crossed=tuple(sorted(crossed)),
        blocked=bool(limit is not None and budget.block_at_limit and spend >= limit),
    )


def budget_status(
    engine: Engine, viewer: Principal, *, account_id: str | None = None, now: datetime | None = None
) -> BudgetStatus:
    """This month's spend against the account-wide budget of the viewer's account.

    Raises: PermissionDenied for another account.
    """
    target = account_id or viewer.account_id
    require_account(viewer, target)
    with engine.connect() as conn:
        return status_on(conn, target, now=now or datetime.now(UTC))


# ---------------------------------------------------------------- writes


def record_budget_alerts(
    engine: Engine, viewer: Principal, *, account_id: str | None = None, now: datetime | None = None
) -> BudgetStatus:
    """Remember every threshold reached this month in `budget_alerts` (once each,
    through `alerts.record_alerts_on`, which the API also calls after usage) and
    return the status. The dashboard calls this for its banner.
    """
    from .alerts import record_alerts_on

    target = account_id or viewer.account_id
    require_account(viewer, target)
    at = now or datetime.now(UTC)
    with engine.connect() as conn:
        status = status_on(conn, target, now=at)
        recorded = set(
            conn.execute(
                select(budget_alerts.c.threshold).where(
                    budget_alerts.c.account_id == target,
                    budget_alerts.c.user_id == ACCOUNT_WIDE,
                    budget_alerts.c.period == status.period,
                )
            ).scalars()
        )
    if (
        set(crossed_thresholds(status.budget.monthly_limit, status.budget.thresholds, status.spend))
        - recorded
    ):
        run_write(
            engine, lambda conn: record_alerts_on(conn, account_id=target, user_id=None, now=at)
        )
    return status


def save_budget(
    engine: Engine,
    viewer: Principal,
    *,
    monthly_limit: object,
    thresholds: str | Iterable[object] = DEFAULT_THRESHOLDS,
    block_at_limit: bool = False,
    account_id: str | None = None,
    now: datetime | None = None,
) -> Budget:
    """Validate and store the account-wide budget, with an audit-log row, in one
    transaction. Invalid input raises before anything is written.

    Args:
        monthly_limit: USD as text, int or Decimal; None or "" removes the budget.
        thresholds: percents, "50, 80, 100" or a list of integers.
    Returns: the stored Budget. Raises: InvalidUsage, PermissionDenied, UnknownAccount.
    """
    target = account_id or viewer.account_id
    require_account(viewer, target)
    limit = parse_monthly_limit(monthly_limit)
    percents = parse_thresholds(thresholds)
    if not isinstance(block_at_limit, bool):
        raise InvalidUsage(f"block_at_limit must be true or false, got {block_at_limit!r:.40}")
    at = now or datetime.now(UTC)
    actor = viewer.email or viewer.user_id
    values = dict(
        monthly_limit=limit,
        thresholds=",".join(str(p) for p in percents),
        block_at_limit=block_at_limit,
        updated_by=actor,
        updated_at=at,
    )

    def work(conn: Connection) -> Budget:
        if conn.execute(select(accounts.c.id).where(accounts.c.id == target)).first() is None:
            raise UnknownAccount(f"unknown account {target!r}")
        before = read_budget(conn, target)
        stmt = dialect_insert(conn, budgets).values(
            account_id=target, user_id=ACCOUNT_WIDE, **values
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[budgets.c.account_id, budgets.c.user_id], set_=values
            )
        )
        conn.execute(
            insert(audit_log).values(
                account_id=target,
                actor=actor,
                action="budget.update",
                target=target,
                before=_as_json(before),
                after=_as_json(Budget(target, ACCOUNT_WIDE, limit, percents, block_at_limit)),
                created_at=at,
            )
        )
        return Budget(target, ACCOUNT_WIDE, limit, percents, block_at_limit, actor, at)

    return run_write(engine, work)


def _as_json(budget: Budget) -> dict[str, object]:
    return {
        "monthly_limit_usd": None
        if budget.monthly_limit is None
        else usd_str(budget.monthly_limit),
        "thresholds": list(budget.thresholds),
        "block_at_limit": budget.block_at_limit,
    }


__all__ = [
    "ACCOUNT_WIDE",
    "DEFAULT_THRESHOLDS",
    "Budget",
    "BudgetStatus",
    "budget_status",
    "crossed_thresholds",
    "month_of",
    "parse_monthly_limit",
    "parse_thresholds",
    "read_budget",
    "record_budget_alerts",
    "save_budget",
    "spend_in_month",
    "status_on",
]
