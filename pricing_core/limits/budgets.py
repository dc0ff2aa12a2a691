"""Monthly budgets and alert thresholds.

A budget caps what an account (user_id "") or one of its users spends per calendar
month in the configured time zone. Spend is the sum of the month's usage prices
from the daily rollups. Thresholds are percents of the budget (default 50/80/100);
when spend reaches one, a row in `budget_alerts` remembers it for the month, so the
dashboard keeps showing the banner until the month rolls over even if the budget
is raised. With `block_at_limit`, `limits.check_budgets` refuses requests once the
budget is used up.

The settings themselves (`Budget`, `read_budget`, the parsers, storing a row) and
the spend queries are `limits`', shared with the API; this module adds what the
dashboard needs: the viewer's permission, this month's status with the alerts
already recorded, and the audited save of the account's budget.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.audit import actor_of, write_audit
from pricing_core.adapters.storage import accounts, budget_alerts, run_write
from pricing_core.config import get_settings
from pricing_core.domain.errors import InvalidUsage, UnknownAccount
from pricing_core.domain.money import usd_str
from pricing_core.domain.periods import month_period
from pricing_core.domain.principal import Principal, require_account
from pricing_core.limits import rules as limits
from pricing_core.limits.alerts import record_alerts_on
from pricing_core.limits.rules import (
    DEFAULT_THRESHOLDS,
    MAX_MONTHLY_BUDGET,
    Budget,
    parse_monthly_limit,
    parse_thresholds,
    read_budget,
    spend_on,
    store_budget_on,
)
from pricing_core.limits.rules import WHOLE_ACCOUNT as ACCOUNT_WIDE


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


def crossed_thresholds(
    limit: Decimal | None, thresholds: Iterable[int], spend: Decimal
) -> tuple[int, ...]:
    """Thresholds (percents) that `spend` has reached: spend >= limit x t / 100. Exact.
    No budget (None, or not positive): none."""
    if limit is None or limit <= 0:
        return ()
    return limits.crossed_thresholds(spend, limit, tuple(thresholds))


# ---------------------------------------------------------------- reads (reusable in transactions)


def spend_in_month(
    conn: Connection, account_id: str, *, now: datetime, user_id: str = ACCOUNT_WIDE
) -> Decimal:
    """Decimal USD of usage prices in `now`'s month (configured time zone), from the
    daily rollups; `user_id` "" = the whole account."""
    period = month_period(now, get_settings().tz)
    return spend_on(
        conn, account_id=account_id, period=period, user_id=user_id, include_holds=False
    )


def _recorded_thresholds(conn: Connection, account_id: str, user_id: str, period: str) -> set[int]:
    """The thresholds whose alerts `budget_alerts` already holds for the month."""
    a = budget_alerts.c
    return set(
        conn.execute(
            select(a.threshold).where(
                a.account_id == account_id, a.user_id == user_id, a.period == period
            )
        ).scalars()
    )


def status_on(
    conn: Connection, account_id: str, *, now: datetime, user_id: str = ACCOUNT_WIDE
) -> BudgetStatus:
    """The budget status inside an open connection (see `budget_status`)."""
    budget = read_budget(conn, account_id, user_id)
    month = month_period(now, get_settings().tz)
    spend = spend_on(
        conn, account_id=account_id, period=month, user_id=user_id, include_holds=False
    )
    crossed = set(crossed_thresholds(budget.monthly_limit, budget.thresholds, spend))
    if budget.is_set:
        crossed |= _recorded_thresholds(conn, account_id, user_id, month.label)
    limit = budget.monthly_limit
    return BudgetStatus(
        budget=budget,
        period=month.label,
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

    target = account_id or viewer.account_id
    require_account(viewer, target)
    at = now or datetime.now(UTC)
    with engine.connect() as conn:
        status = status_on(conn, target, now=at)
        recorded = _recorded_thresholds(conn, target, ACCOUNT_WIDE, status.period)
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
    actor = actor_of(viewer)
    budget = Budget(target, ACCOUNT_WIDE, limit, percents, block_at_limit)

    def work(conn: Connection) -> Budget:
        if conn.execute(select(accounts.c.id).where(accounts.c.id == target)).first() is None:
            raise UnknownAccount(f"unknown account {target!r}")
        before = read_budget(conn, target)
        store_budget_on(conn, budget, actor=actor, now=at)
        write_audit(
            conn,
            actor=actor,
            action="budget.update",
            now=at,
            account_id=target,
            target=target,
            before=_as_json(before),
            after=_as_json(budget),
        )
        return replace(budget, updated_by=actor, updated_at=at)

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
    "MAX_MONTHLY_BUDGET",
    "Budget",
    "BudgetStatus",
    "budget_status",
    "crossed_thresholds",
    "parse_monthly_limit",
    "parse_thresholds",
    "read_budget",
    "record_budget_alerts",
    "save_budget",
    "spend_in_month",
    "status_on",
]
