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

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import accounts, spending_limits, users
from pricing_core.adapters.storage import dialect_insert, run_write
from pricing_core.domain.errors import InvalidUsage, PricingError, UnknownAccount
from pricing_core.domain.money import format_money, round_nano, to_usd
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
        # a cheaper way to run that fits (`metering.optimize.Suggestion`), when
        # PRICING_OPTIMIZATION is on
        self.suggestion: object | None = None


def _shown(value: int | Decimal) -> str:
    """USD amounts as people read them; token and request counts with separators."""
    return format_money(value) if isinstance(value, Decimal) else f"{value:,}"


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


def scope_label(account_id: str, user_id: str | None) -> str:
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
        _token_limit("max_input_tokens", limits.max_input_tokens),
        _token_limit("max_output_tokens", limits.max_output_tokens),
        _token_limit("max_total_tokens", limits.max_total_tokens),
        _cap("daily_cost_cap", limits.daily_cost_cap),
        _cap("monthly_cost_cap", limits.monthly_cost_cap),
    )
    for name in ("account_id", "user_id", "operation"):
        value = getattr(checked, name)
        if not isinstance(value, str) or len(value) > 64:
            raise InvalidUsage(f"{name} must be a string of at most 64 characters: {value!r:.80}")
    if checked.user_id and not checked.account_id:
        raise InvalidUsage("an operator default cannot be for one user")
    key: dict[str, Any] = {
        "account_id": checked.account_id,
        "user_id": checked.user_id,
        "operation": checked.operation or ALL_OPERATIONS,
    }
    values: dict[str, Any] = {n: getattr(checked, n) for n in _LIMIT_FIELDS}
    at = now or datetime.now(UTC)

    def work(conn: Connection) -> SpendingLimits | None:
        _check_scope(conn, checked.account_id, checked.user_id)
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


def _check_scope(conn: Connection, account_id: str, user_id: str) -> None:
    """Raises: UnknownAccount, InvalidUsage (a user not of the account): limits for
    an id that does not exist would silently never apply."""
    if account_id == OPERATOR:
        return
    if conn.execute(select(accounts.c.id).where(accounts.c.id == account_id)).first() is None:
        raise UnknownAccount(f"unknown account {account_id!r}")
    if user_id != WHOLE_ACCOUNT and (
        conn.execute(
            select(users.c.id).where(users.c.id == user_id, users.c.account_id == account_id)
        ).first()
        is None
    ):
        raise InvalidUsage(f"no user {user_id!r} on account {account_id!r}")


def describe_limits(row: SpendingLimits) -> str:
    """One stored row for people: its scope, then each limit set, e.g.
    "account acme, every user, operation *: max input 10,000 tokens; daily cap $5.00"."""
    account = "operator default" if row.account_id == OPERATOR else f"account {row.account_id}"
    user = "every user" if row.user_id == WHOLE_ACCOUNT else f"user {row.user_id}"
    parts = [
        f"{name.replace('_', ' ').removesuffix(' tokens')} {value:,} tokens"
        for name in ("max_input_tokens", "max_output_tokens", "max_total_tokens")
        if (value := getattr(row, name)) is not None
    ] + [
        f"{name.replace('_cost_cap', '')} cap {format_money(value)}"
        for name in ("daily_cost_cap", "monthly_cost_cap")
        if (value := getattr(row, name)) is not None
    ]
    return f"{account}, {user}, operation {row.operation}: " + "; ".join(parts)


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
