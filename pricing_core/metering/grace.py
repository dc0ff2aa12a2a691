"""What budget enforcement would refuse for an account still in its grace period
(`limits.rollout`): the banner on every page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Engine

from pricing_core.config import get_settings
from pricing_core.domain.errors import InsufficientBalance
from pricing_core.domain.rollout import Stage
from pricing_core.ledger.wallets import get_wallet_on
from pricing_core.limits.checks import check_budgets, check_cost_caps
from pricing_core.limits.rollout import enforcement_on
from pricing_core.limits.rules import (
    ALL_OPERATIONS,
    LimitExceeded,
    effective_constraints,
    limit_rows_on,
)

SMALLEST_REQUEST = Decimal("0.000000001")  # USD: what any request adds at least


@dataclass(frozen=True, slots=True)
class GraceStatus:
    """An account in its enforcement grace period: when enforcement starts, and what it
    would refuse now (sentences; empty when nothing would be refused)."""

    ends_at: datetime
    would_refuse: tuple[str, ...]


def grace_status(
    engine: Engine, account_id: str, *, now: datetime | None = None
) -> GraceStatus | None:
    """The account's grace period, or None when it is not in one. Would-be refusals
    are found by the authorization checks themselves (cost caps and blocking budgets
    of the whole account, then the available balance), for the smallest request."""
    at = now or datetime.now(UTC)
    with engine.connect() as conn:
        current, ends = enforcement_on(conn, account_id, now=at)
        if current is not Stage.GRACE or ends is None:
            return None
        reasons: list[str] = []
        constraints = effective_constraints(
            limit_rows_on(conn, account_id, None, ALL_OPERATIONS),
            account_id=account_id,
            user_id=account_id,
            operation=ALL_OPERATIONS,
        )
        for check in (
            lambda: check_cost_caps(
                conn, constraints, account_id=account_id, estimate=SMALLEST_REQUEST, now=at
            ),
            lambda: check_budgets(
                conn, account_id=account_id, user_id=None, estimate=SMALLEST_REQUEST, now=at
            ),
        ):
            try:
                check()
            except LimitExceeded as exc:
                reasons.append(str(exc))
        wallet = get_wallet_on(conn, account_id)
        minimum = get_settings().minimum_balance_usd
        if wallet.available < minimum:
            reasons.append(
                str(InsufficientBalance(account_id, wallet.available, minimum))
                + f" (the minimum balance is {get_settings().display_unit.format(minimum)})"
            )
    return GraceStatus(ends, tuple(reasons))
