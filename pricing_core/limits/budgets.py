"""Monthly budgets and alert thresholds.

A budget caps what an account (user_id "") or one of its users spends per calendar
month in the configured time zone. Spend is the sum of the month's usage prices
from the daily rollups. Thresholds are percents of the budget (default 50/80/100);
when spend reaches one, a row in `budget_alerts` remembers it for the month, so the
dashboard keeps showing the banner until the month rolls over even if the budget
is raised. With `block_at_limit`, `limits.checks.check_budgets` refuses requests once the
budget is used up.

The settings themselves (`Budget`, `read_budget`, the parsers, storing a row) are
`budget_rules`', and the spend queries `spend`'s. This module is the one status of a
budget (`BudgetStatus`) for the dashboard and the API, with the viewer's permission,
the alerts already recorded, and the audited save of the account's budget.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.audit import actor_of, write_audit
from pricing_core.adapters.schema import accounts, budget_alerts
from pricing_core.adapters.storage import run_write
from pricing_core.config import get_settings
from pricing_core.domain.errors import InvalidUsage, UnknownAccount
from pricing_core.domain.money import usd_str
from pricing_core.domain.periods import month_period
from pricing_core.domain.principal import Principal, require_account
from pricing_core.limits.alerts import record_alerts_on
from pricing_core.limits.budget_rules import (
    Budget,
    crossed_thresholds,
    parse_monthly_limit,
    parse_thresholds,
    read_budget,
    store_budget_on,
)
from pricing_core.limits.rules import DEFAULT_THRESHOLDS, MAX_MONTHLY_BUDGET
from pricing_core.limits.rules import WHOLE_ACCOUNT as ACCOUNT_WIDE
from pricing_core.limits.spend import held_on, spend_on


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A budget against this month's spend. Decimal USD.

    Attributes:
        budget: the settings (the account's, the operator's default, or a user's).
        period: the month, "YYYY-MM" in the configured time zone.
        spend: priced usage this month (rollups); `held`: active holds.
        crossed: thresholds reached this month (now, or, for the dashboard, recorded
            earlier this month).
    """

    budget: Budget
    period: str
    spend: Decimal
    held: Decimal
    crossed: tuple[int, ...]

    @property
    def percent_used(self) -> Decimal | None:
        """spend / limit x 100, rounded to 0.1, or None without a budget."""
        limit = self.budget.monthly_limit
        return None if limit is None else (self.spend * 100 / limit).quantize(Decimal("0.1"))

    @property
    def remaining(self) -> Decimal | None:
        """limit - spend (may be negative), or None without a budget."""
        limit = self.budget.monthly_limit
        return None if limit is None else limit - self.spend

    @property
    def blocked(self) -> bool:
        """The budget blocks requests and is used up."""
        limit = self.budget.monthly_limit
        return limit is not None and self.budget.block_at_limit and self.spend >= limit

    @property
    def meter_percent(self) -> int:
        """percent_used as a whole percent clamped to 0..100 (for a progress bar)."""
        if self.percent_used is None:
            return 0
        return max(0, min(100, int(self.percent_used)))


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
    conn: Connection,
    account_id: str,
    *,
    now: datetime,
    user_id: str = ACCOUNT_WIDE,
    recorded: bool = True,
) -> BudgetStatus:
    """The budget status inside an open connection (see `budget_status`).

    `recorded`: count thresholds whose alerts were already stored this month as
    crossed (the dashboard's banner stays until the month ends)."""
    budget = read_budget(conn, account_id, user_id)
    month = month_period(now, get_settings().tz)
    uid = user_id or None
    spend = spend_on(conn, account_id=account_id, period=month, user_id=uid, include_holds=False)
    held = held_on(conn, account_id=account_id, user_id=uid)
    crossed = set(crossed_thresholds(budget.monthly_limit, budget.thresholds, spend))
    if budget.is_set and recorded:
        crossed |= _recorded_thresholds(conn, account_id, user_id, month.label)
    return BudgetStatus(budget, month.label, spend, held, tuple(sorted(crossed)))


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


def budget_report(
    engine: Engine, account_id: str, user_id: str = ACCOUNT_WIDE, *, now: datetime | None = None
) -> BudgetStatus:
    """The budget of the account (user_id "") or of one user with this month's spend,
    as `GET /api/v1/budget` shows it: thresholds crossed by the spend itself, not the
    alerts recorded earlier. The caller has checked the API key's account."""
    with engine.connect() as conn:
        at = now or datetime.now(UTC)
        return status_on(conn, account_id, now=at, user_id=user_id, recorded=False)


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
    "budget_report",
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
