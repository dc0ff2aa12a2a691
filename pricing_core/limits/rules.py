"""Spending limits and budgets: what may refuse a request before it runs.

Per-operation limits (`spending_limits` rows):
- max input, output and total tokens per message;
- daily and monthly cost caps.

A row is scoped by (account_id, user_id, operation). `account_id = ""` is an
operator default, `user_id = ""` the whole account, `operation = "*"` every
operation. For one request, the limits that apply are, for the request's operation
and for "*" each:
- at account level: the account's row, field by field, falling back to the
  operator default's field (an account setting replaces the operator default);
- at user level: the user's own row (an extra, usually stricter, constraint).
A cost cap at account level counts the whole account's spend; at user level, the
user's. A cap on "*" counts all operations; on an operation, that operation's.

Monthly budgets (`budgets` rows, set on the budget page or `PUT /api/v1/budget`) of
the account (user_id "") and of the user; an account without a budget row gets
`PRICING_DEFAULT_MONTHLY_BUDGET` (blocking) if set. A budget refuses only when set
to block. Budget settings are read, validated and stored here (`read_budget`,
`parse_monthly_limit`, `store_budget_on`); `budgets` builds the dashboard on them.

Spend in a period = priced usage in the period's local calendar days (from the
`usage_daily` rollup) + every active hold (money already promised). Periods are
calendar days and months in `PRICING_TIMEZONE` (see `periods`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.audit import write_audit
from pricing_core.adapters.storage import (
    budgets,
    dialect_insert,
    holds,
    run_write,
    spending_limits,
    usage_daily,
)
from pricing_core.config import get_settings
from pricing_core.domain.errors import InvalidUsage, PricingError
from pricing_core.domain.money import ZERO, format_usd, round_nano, to_usd
from pricing_core.domain.periods import Period, day_period, month_period
from pricing_core.domain.usage_event import MAX_TOKENS

ALL_OPERATIONS = "*"
OPERATOR = ""  # account_id of operator defaults
WHOLE_ACCOUNT = ""  # user_id of account-wide rows
DEFAULT_THRESHOLDS: tuple[int, ...] = (50, 80, 100)
MAX_MONTHLY_BUDGET = Decimal("1000000")  # USD; anything above is a typo, not a budget
MAX_THRESHOLDS = 10


class LimitKind(StrEnum):
    MAX_INPUT_TOKENS = "max_input_tokens"
    MAX_OUTPUT_TOKENS = "max_output_tokens"
    MAX_TOTAL_TOKENS = "max_total_tokens"
    DAILY_COST_CAP = "daily_cost_cap"
    MONTHLY_COST_CAP = "monthly_cost_cap"
    MONTHLY_BUDGET = "monthly_budget"
    FREE_TIER = "free_tier_requests_per_day"


TOKEN_LIMITS = (LimitKind.MAX_INPUT_TOKENS, LimitKind.MAX_OUTPUT_TOKENS, LimitKind.MAX_TOTAL_TOKENS)
COST_CAPS = (LimitKind.DAILY_COST_CAP, LimitKind.MONTHLY_COST_CAP)


class LimitExceeded(PricingError):
    """A limit refused the request. The message names the limit, its scope and values.

    Attributes:
        limit: which limit (LimitKind).
        scope: e.g. "account 'acme'" or "user 'u1' of account 'acme'".
        operation: the operation the limit is for ("*" = all).
        value: the limit (int tokens / requests, or Decimal USD).
        current: what is already used in the period (tokens requested for token limits).
        requested: what this request would add.
        retry_after: seconds until the period resets, for period limits; else None.
    """

    def __init__(
        self,
        limit: LimitKind,
        *,
        scope: str,
        operation: str,
        value: int | Decimal,
        current: int | Decimal,
        requested: int | Decimal,
        retry_after: int | None = None,
    ) -> None:
        what = "" if operation == ALL_OPERATIONS else f" for operation {operation!r}"
        super().__init__(
            f"{limit} of {scope}{what} is {_shown(value)}: already used {_shown(current)}, "
            f"this request needs {_shown(requested)}"
        )
        self.limit = limit
        self.scope = scope
        self.operation = operation
        self.value = value
        self.current = current
        self.requested = requested
        self.retry_after = retry_after


def _shown(value: int | Decimal) -> str:
    """USD amounts as people read them; token and request counts with separators."""
    return format_usd(value) if isinstance(value, Decimal) else f"{value:,}"


class TokenLimitExceeded(LimitExceeded):
    """A per-message token limit (HTTP 403: this request can never pass as is)."""


class SpendLimitExceeded(LimitExceeded):
    """A cost cap, budget or free-tier allowance (HTTP 429: retry after the period)."""


@dataclass(frozen=True, slots=True)
class SpendingLimits:
    """One `spending_limits` row. Tokens per message; caps in Decimal USD; None = none."""

    account_id: str
    user_id: str
    operation: str
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_total_tokens: int | None = None
    daily_cost_cap: Decimal | None = None
    monthly_cost_cap: Decimal | None = None


_LIMIT_FIELDS = tuple(f.name for f in fields(SpendingLimits))[3:]


@dataclass(frozen=True, slots=True)
class Constraint:
    """One limit that applies to a request. `user_id` None = the whole account;
    `operation` "*" = all operations."""

    kind: LimitKind
    value: int | Decimal
    user_id: str | None
    operation: str


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


def _scope(account_id: str, user_id: str | None) -> str:
    if user_id:
        return f"user {user_id!r} of account {account_id!r}"
    return f"account {account_id!r}"


# ---------------------------------------------------------------- storing limits


def _token_limit(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS:
        raise InvalidUsage(f"{name} must be an integer from 1 to {MAX_TOKENS:,}, got {value!r}")
    return value


def _cap(name: str, value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = to_usd(value)
    except ValueError as exc:
        raise InvalidUsage(f"{name}: {exc}") from None
    if amount < 0 or amount > Decimal("1000000000") or amount != round_nano(amount):
        raise InvalidUsage(f"{name} must be 0 to 1,000,000,000 USD in whole nano-USD, got {value}")
    return amount


def set_limits(
    engine: Engine,
    limits: SpendingLimits,
    *,
    actor: str | None = None,
    now: datetime | None = None,
) -> SpendingLimits | None:
    """Store one limits row (replacing the previous one of the same scope). A row with
    every limit None is deleted.

    Args: limits: account_id "" = operator default, user_id "" = whole account,
        operation "*" = every operation. Tokens: positive ints; caps: Decimal USD >= 0.
    Returns: the stored row, or None if it was deleted.
    Raises: InvalidUsage.
    """
    checked = SpendingLimits(
        limits.account_id,
        limits.user_id,
        limits.operation,
        *(_token_limit(n, getattr(limits, n)) for n in _LIMIT_FIELDS[:3]),
        *(_cap(n, getattr(limits, n)) for n in _LIMIT_FIELDS[3:]),
    )
    for name in ("account_id", "user_id", "operation"):
        value = getattr(checked, name)
        if not isinstance(value, str) or len(value) > 64:
            raise InvalidUsage(f"{name} must be a string of at most 64 characters: {value!r:.80}")
    if checked.user_id and not checked.account_id:
        raise InvalidUsage("an operator default cannot be for one user")
    key = {
        "account_id": checked.account_id,
        "user_id": checked.user_id,
        "operation": checked.operation or ALL_OPERATIONS,
    }
    values = {n: getattr(checked, n) for n in _LIMIT_FIELDS}
    at = now or datetime.now(UTC)

    def work(conn: Connection) -> SpendingLimits | None:
        s = spending_limits.c
        conn.execute(delete(spending_limits).where(*(s[k] == v for k, v in key.items())))
        if all(v is None for v in values.values()):
            return None
        conn.execute(
            dialect_insert(conn, spending_limits).values(
                **key, **values, updated_by=actor, updated_at=at
            )
        )
        return SpendingLimits(**key, **values)

    return run_write(engine, work)


def limit_rows_on(
    conn: Connection, account_id: str, user_id: str | None, operation: str
) -> list[SpendingLimits]:
    """Every stored row that could apply to (account, user, operation)."""
    s = spending_limits.c
    rows = conn.execute(
        select(spending_limits).where(
            s.account_id.in_([OPERATOR, account_id]),
            s.user_id.in_([WHOLE_ACCOUNT, user_id or WHOLE_ACCOUNT]),
            s.operation.in_([ALL_OPERATIONS, operation]),
        )
    ).all()
    return [_limits_row(r) for r in rows]


def list_limits(engine: Engine, account_id: str | None = None) -> list[SpendingLimits]:
    """Stored limit rows (of one account plus the operator defaults, or all)."""
    stmt = select(spending_limits).order_by(
        spending_limits.c.account_id, spending_limits.c.user_id, spending_limits.c.operation
    )
    if account_id is not None:
        stmt = stmt.where(spending_limits.c.account_id.in_([OPERATOR, account_id]))
    with engine.connect() as conn:
        return [_limits_row(r) for r in conn.execute(stmt)]


def _limits_row(row: Any) -> SpendingLimits:
    return SpendingLimits(*(getattr(row, f.name) for f in fields(SpendingLimits)))


def effective_constraints(
    rows: Sequence[SpendingLimits], *, account_id: str, user_id: str | None, operation: str
) -> list[Constraint]:
    """The limits that apply to one request (pure; see the module docstring).

    Returns: constraints, for the operation before "*", account level before user level.
    """
    by_key = {(r.account_id, r.user_id, r.operation): r for r in rows}
    out: list[Constraint] = []
    for op in dict.fromkeys((operation, ALL_OPERATIONS)):
        operator_row = by_key.get((OPERATOR, WHOLE_ACCOUNT, op))
        account_row = by_key.get((account_id, WHOLE_ACCOUNT, op))
        for name in _LIMIT_FIELDS:
            value = getattr(account_row, name, None)
            if value is None:
                value = getattr(operator_row, name, None)
            if value is not None:
                out.append(Constraint(LimitKind(name), value, None, op))
        user_row = by_key.get((account_id, user_id, op)) if user_id else None
        for name in _LIMIT_FIELDS:
            value = getattr(user_row, name, None)
            if value is not None:
                out.append(Constraint(LimitKind(name), value, user_id, op))
    return out


# ---------------------------------------------------------------- budgets


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


# ---------------------------------------------------------------- spend


def spend_on(
    conn: Connection,
    *,
    account_id: str,
    period: Period,
    user_id: str | None = None,
    operation: str | None = None,
    include_holds: bool = True,
) -> Decimal:
    """Decimal USD spent in `period` (priced usage by local calendar day) plus, unless
    `include_holds` is False, every active hold, by account [, user] [, operation]."""
    d = usage_daily.c
    stmt = select(func.coalesce(func.sum(d.price), 0)).where(
        d.account_id == account_id, d.day >= period.first_day, d.day < period.end_day
    )
    if user_id:
        stmt = stmt.where(d.user_id == user_id)
    if operation and operation != ALL_OPERATIONS:
        stmt = stmt.where(d.operation == operation)
    total = _usd(conn.execute(stmt).scalar_one())
    if include_holds:
        total += held_on(conn, account_id=account_id, user_id=user_id, operation=operation)
    return total


def held_on(
    conn: Connection, *, account_id: str, user_id: str | None = None, operation: str | None = None
) -> Decimal:
    """Decimal USD in active holds of the account [, user] [, operation]."""
    h = holds.c
    stmt = select(func.coalesce(func.sum(h.amount), 0)).where(
        h.account_id == account_id, h.status == "active"
    )
    if user_id:
        stmt = stmt.where(h.user_id == user_id)
    if operation and operation != ALL_OPERATIONS:
        stmt = stmt.where(h.operation == operation)
    return _usd(conn.execute(stmt).scalar_one())


def requests_on(conn: Connection, *, account_id: str, user_id: str, period: Period) -> int:
    """Requests of `user_id` recorded in `period` plus its active holds."""
    d, h = usage_daily.c, holds.c
    recorded = conn.execute(
        select(func.coalesce(func.sum(d.requests), 0)).where(
            d.account_id == account_id,
            d.user_id == user_id,
            d.day >= period.first_day,
            d.day < period.end_day,
        )
    ).scalar_one()
    pending = conn.execute(
        select(func.count()).where(
            h.account_id == account_id, h.user_id == user_id, h.status == "active"
        )
    ).scalar_one()
    return int(recorded) + int(pending)


def _usd(value: Any) -> Decimal:
    # SUM over a NanoUSD column is converted by the column type: Decimal USD.
    if not isinstance(value, Decimal):
        raise TypeError(f"expected Decimal USD from the database, got {value!r}")
    return value


# ---------------------------------------------------------------- checks


def check_tokens(
    constraints: Sequence[Constraint],
    *,
    account_id: str,
    input_tokens: int,
    max_output_tokens: int,
) -> None:
    """Raises: TokenLimitExceeded naming the first token limit the request breaks."""
    asked = {
        LimitKind.MAX_INPUT_TOKENS: input_tokens,
        LimitKind.MAX_OUTPUT_TOKENS: max_output_tokens,
        LimitKind.MAX_TOTAL_TOKENS: input_tokens + max_output_tokens,
    }
    for c in constraints:
        if c.kind in asked and asked[c.kind] > c.value:
            raise TokenLimitExceeded(
                c.kind,
                scope=_scope(account_id, c.user_id),
                operation=c.operation,
                value=c.value,
                current=0,
                requested=asked[c.kind],
            )


def check_cost_caps(
    conn: Connection,
    constraints: Sequence[Constraint],
    *,
    account_id: str,
    estimate: Decimal,
    now: datetime,
) -> None:
    """Daily caps first, then monthly. Raises: SpendLimitExceeded when spend in the
    period plus `estimate` would exceed a cap."""
    tz = get_settings().tz
    for kind, period in (
        (LimitKind.DAILY_COST_CAP, day_period(now, tz)),
        (LimitKind.MONTHLY_COST_CAP, month_period(now, tz)),
    ):
        for c in constraints:
            if c.kind is not kind:
                continue
            spent = spend_on(
                conn,
                account_id=account_id,
                period=period,
                user_id=c.user_id,
                operation=c.operation,
            )
            if spent + estimate > c.value:
                raise SpendLimitExceeded(
                    kind,
                    scope=_scope(account_id, c.user_id),
                    operation=c.operation,
                    value=c.value,
                    current=spent,
                    requested=estimate,
                    retry_after=period.seconds_left(now),
                )


def check_budgets(
    conn: Connection,
    *,
    account_id: str,
    user_id: str | None,
    estimate: Decimal,
    now: datetime,
) -> None:
    """Raises: SpendLimitExceeded when a blocking monthly budget (the account's, then
    the user's) would be exceeded by this month's spend plus `estimate`."""
    period = month_period(now, get_settings().tz)
    for rule in budget_rules_on(conn, account_id, user_id):
        if not rule.block_at_limit:
            continue
        assert rule.monthly_limit is not None  # budget_rules_on keeps set budgets only
        spent = spend_on(conn, account_id=account_id, period=period, user_id=rule.user_id or None)
        if spent + estimate > rule.monthly_limit:
            raise SpendLimitExceeded(
                LimitKind.MONTHLY_BUDGET,
                scope=_scope(account_id, rule.user_id or None),
                operation=ALL_OPERATIONS,
                value=rule.monthly_limit,
                current=spent,
                requested=estimate,
                retry_after=period.seconds_left(now),
            )


def check_free_tier(conn: Connection, *, account_id: str, user_id: str, now: datetime) -> None:
    """Raises: SpendLimitExceeded when the anonymous session `user_id` has used its
    `free_tier_requests_per_day` today (local calendar day)."""
    allowance = get_settings().free_tier_requests_per_day
    period = day_period(now, get_settings().tz)
    used = requests_on(conn, account_id=account_id, user_id=user_id, period=period)
    if used + 1 > allowance:
        raise SpendLimitExceeded(
            LimitKind.FREE_TIER,
            scope=_scope(account_id, user_id),
            operation=ALL_OPERATIONS,
            value=allowance,
            current=used,
            requested=1,
            retry_after=period.seconds_left(now),
        )


# ---------------------------------------------------------------- status for pages / API


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A budget against this month's spend. Decimal USD.

    `spend` is priced usage this month; `held` the active holds; `crossed` the
    alert thresholds (percent) that spend has reached.
    """

    rule: Budget  # a set budget (monthly_limit is not None)
    period: str
    spend: Decimal
    held: Decimal
    crossed: tuple[int, ...]

    @property
    def remaining(self) -> Decimal:
        return max(ZERO, (self.rule.monthly_limit or ZERO) - self.spend - self.held)


def crossed_thresholds(
    spend: Decimal, limit: Decimal, thresholds: Sequence[int]
) -> tuple[int, ...]:
    """The thresholds (percent of `limit`) that `spend` has reached. Pure, exact."""
    if spend <= 0:
        return ()
    return tuple(t for t in thresholds if spend * 100 >= limit * t)


def _month_totals(
    conn: Connection, account_id: str, user_id: str, period: Period
) -> tuple[Decimal, Decimal]:
    """(priced usage in `period`, active holds) of the account (user_id "") or a user."""
    uid = user_id or None
    spend = spend_on(conn, account_id=account_id, period=period, user_id=uid, include_holds=False)
    return spend, held_on(conn, account_id=account_id, user_id=uid)


def budget_status(
    engine: Engine, account_id: str, user_id: str | None = None, *, now: datetime | None = None
) -> list[BudgetStatus]:
    """The account's budget (or the operator default) and the user's, against this
    calendar month's spend in the configured time zone."""
    period = month_period(now or datetime.now(UTC), get_settings().tz)
    out = []
    with engine.connect() as conn:
        for rule in budget_rules_on(conn, account_id, user_id):
            assert rule.monthly_limit is not None  # budget_rules_on keeps set budgets only
            spend, held = _month_totals(conn, account_id, rule.user_id, period)
            crossed = crossed_thresholds(spend, rule.monthly_limit, rule.thresholds)
            out.append(BudgetStatus(rule, period.label, spend, held, crossed))
    return out


# ---------------------------------------------------------------- storing budgets (API)


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


@dataclass(frozen=True, slots=True)
class BudgetReport:
    """One scope's budget (or none) against this calendar month. Decimal USD.

    `user_id` "" = the whole account. `monthly_limit` None = no budget (then
    `is_default` says whether the operator default applies instead: it is then the
    limit shown). `spend` is priced usage this month, `held` the active holds.
    """

    account_id: str
    user_id: str
    period: str
    monthly_limit: Decimal | None
    thresholds: tuple[int, ...]
    block: bool
    is_default: bool
    spend: Decimal
    held: Decimal
    crossed: tuple[int, ...]


def budget_report(
    engine: Engine, account_id: str, user_id: str = WHOLE_ACCOUNT, *, now: datetime | None = None
) -> BudgetReport:
    """The budget of the account (user_id "") or of one user, with this month's spend
    in the configured time zone."""
    period = month_period(now or datetime.now(UTC), get_settings().tz)
    with engine.connect() as conn:
        budget = read_budget(conn, account_id, user_id)
        spend, held = _month_totals(conn, account_id, user_id, period)
    limit = budget.monthly_limit
    return BudgetReport(
        account_id,
        user_id,
        period.label,
        limit,
        budget.thresholds,
        budget.block_at_limit,
        budget.is_default,
        spend,
        held,
        () if limit is None else crossed_thresholds(spend, limit, budget.thresholds),
    )
