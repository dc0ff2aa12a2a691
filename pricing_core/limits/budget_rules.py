"""Budget settings: the monthly limit and alert thresholds of an account (user_id "")
or one of its users, read, validated and stored in one place (the budget page and
`PUT /api/v1/budget` both store through here). Unset, an account gets
`PRICING_DEFAULT_MONTHLY_BUDGET` (blocking) if set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.audit import write_audit
from pricing_core.adapters.schema import budgets
from pricing_core.adapters.storage import dialect_insert, run_write
from pricing_core.config import get_settings
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.money import to_usd
from pricing_core.limits.rules import (
    DEFAULT_THRESHOLDS,
    MAX_MONTHLY_BUDGET,
    MAX_THRESHOLDS,
    WHOLE_ACCOUNT,
)


@dataclass(frozen=True, slots=True)
class Budget:
    """An account's (user_id "") or user's budget settings. `monthly_limit`: Decimal
    USD or None (no budget). `thresholds`: ascending percents in 1..100."""

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


def crossed_thresholds(
    limit: Decimal | None, thresholds: Iterable[int], spend: Decimal
) -> tuple[int, ...]:
    """The thresholds (percents of `limit`) that `spend` has reached:
    spend x 100 >= limit x t. Exact. No budget (None, or not positive): none."""
    if limit is None or limit <= 0 or spend <= 0:
        return ()
    return tuple(t for t in thresholds if spend * 100 >= limit * t)


def parse_monthly_limit(value: object, *, name: str = "monthly budget") -> Decimal | None:
    """A budget amount from user input: None/"" = no budget. `name` starts the messages.

    Returns: Decimal USD, whole cents. Raises: InvalidUsage for garbage, floats, zero
    or negative amounts, fractions of a cent, or more than MAX_MONTHLY_BUDGET.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = value.strip().lstrip("$").replace(",", "") if isinstance(value, str) else value
    try:
        amount = to_usd(text)
    except ValueError as exc:
        raise InvalidUsage(f"{name}: {exc}") from None
    if amount <= 0:
        raise InvalidUsage(f"{name} must be positive, got {amount}")
    if amount > MAX_MONTHLY_BUDGET:
        raise InvalidUsage(f"{name} {amount} USD is above the maximum of {MAX_MONTHLY_BUDGET} USD")
    if amount != amount.quantize(Decimal("0.01")):
        raise InvalidUsage(f"{name} must be whole cents, got {amount}")
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
        if isinstance(item, str) and not re.fullmatch(r"[+-]?[0-9]{1,6}", item.strip()):
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


def _stored_thresholds(text: str) -> tuple[int, ...]:
    # Written by store_budget_on ("50,80,100"); an unreadable row keeps the defaults
    # rather than refusing every request of the account.
    try:
        return tuple(sorted({int(p) for p in text.split(",") if p.strip()}))
    except ValueError:
        return DEFAULT_THRESHOLDS


def _budget(account_id: str, user_id: str, row: Any) -> Budget:
    if row is None:
        default = get_settings().default_monthly_budget if user_id == WHOLE_ACCOUNT else None
        if default is not None:
            return Budget(account_id, user_id, default, DEFAULT_THRESHOLDS, True, is_default=True)
        return Budget(account_id, user_id, None, DEFAULT_THRESHOLDS, False)
    return Budget(
        account_id,
        user_id,
        row.monthly_limit,
        _stored_thresholds(row.thresholds),
        bool(row.block_at_limit),
        row.updated_by,
        row.updated_at,
    )


def read_budgets_on(conn: Connection, account_id: str, user_ids: Sequence[str]) -> list[Budget]:
    """The budget settings of each of `user_ids` ("" = the whole account), in order,
    in one query. Without a stored row, the account-wide budget is the operator's
    default (`PRICING_DEFAULT_MONTHLY_BUDGET`, blocking at 100 %) or none; a user's
    is none."""
    b = budgets.c
    rows = {
        r.user_id: r
        for r in conn.execute(
            select(budgets).where(b.account_id == account_id, b.user_id.in_(list(user_ids)))
        )
    }
    return [_budget(account_id, uid, rows.get(uid)) for uid in user_ids]


def read_budget(conn: Connection, account_id: str, user_id: str = WHOLE_ACCOUNT) -> Budget:
    """The budget settings of an account (or one of its users); see `read_budgets_on`."""
    return read_budgets_on(conn, account_id, [user_id])[0]


def budget_rules_on(conn: Connection, account_id: str, user_id: str | None) -> list[Budget]:
    """The monthly budgets that apply to a request of `user_id` on `account_id`: the
    account's (or the operator's default budget) and the user's, when set."""
    wanted = [WHOLE_ACCOUNT] + ([user_id] if user_id else [])
    return [budget for budget in read_budgets_on(conn, account_id, wanted) if budget.is_set]


def store_budget_on(
    conn: Connection, budget: Budget, *, actor: str | None, now: datetime
) -> dict[str, Any]:
    """Insert or replace `budget`'s row inside `conn`'s transaction (validate first:
    `parse_monthly_limit`, `parse_thresholds`). Returns: the column values written."""
    values = {
        "monthly_limit": budget.monthly_limit,
        "thresholds": ",".join(str(p) for p in budget.thresholds),
        "block_at_limit": budget.block_at_limit,
        "updated_by": actor,
        "updated_at": now,
    }
    b = budgets.c
    stmt = dialect_insert(conn, budgets).values(
        account_id=budget.account_id, user_id=budget.user_id, **values
    )
    conn.execute(stmt.on_conflict_do_update(index_elements=[b.account_id, b.user_id], set_=values))
    return values


def save_budget_rule(
    engine: Engine,
    *,
    account_id: str,
    user_id: str,
    monthly_limit: Decimal | None,
    thresholds: Sequence[int],
    block: bool,
    actor: str,
    now: datetime | None = None,
) -> None:
    """Store the monthly budget of an account (user_id "") or of one of its users,
    with an audit row, in one transaction (`PUT /api/v1/budget`).

    Args: monthly_limit: Decimal USD, positive, whole cents, at most 1,000,000; None
        removes the budget. thresholds: 1 to 10 percents in 1..100.
    Raises: InvalidUsage (nothing written).
    """
    budget = Budget(
        account_id,
        user_id,
        parse_monthly_limit(monthly_limit, name="monthly_limit"),
        parse_thresholds(thresholds),
        bool(block),
    )
    at = now or datetime.now(UTC)

    def work(conn: Connection) -> None:
        b = budgets.c
        before = conn.execute(
            select(b.monthly_limit, b.thresholds, b.block_at_limit).where(
                b.account_id == account_id, b.user_id == user_id
            )
        ).first()
        values = store_budget_on(conn, budget, actor=actor, now=at)
        write_audit(
            conn,
            actor=actor,
            action="budget.update",
            now=at,
            account_id=account_id,
            target=user_id or account_id,
            before=dict(before._mapping) if before is not None else None,
            after={k: values[k] for k in ("monthly_limit", "thresholds", "block_at_limit")},
        )

    run_write(engine, work)
