"""The checks that may refuse a request before it runs: token limits, cost caps,
budgets set to block, and the anonymous free tier (see `limits.rules`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy.engine import Connection

from pricing_core.config import get_settings
from pricing_core.domain.periods import day_period, month_period
from pricing_core.limits.budget_rules import budget_rules_on
from pricing_core.limits.rules import (
    ALL_OPERATIONS,
    Constraint,
    LimitKind,
    SpendLimitExceeded,
    TokenLimitExceeded,
    scope_label,
)
from pricing_core.limits.spend import requests_on, spend_on


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
                scope=scope_label(account_id, c.user_id),
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
                    scope=scope_label(account_id, c.user_id),
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
                scope=scope_label(account_id, rule.user_id or None),
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
            scope=scope_label(account_id, user_id),
            operation=ALL_OPERATIONS,
            value=allowance,
            current=used,
            requested=1,
            retry_after=period.seconds_left(now),
        )
