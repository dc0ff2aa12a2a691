"""Named sets of operator defaults for the spending limits (`pricing-core limits preset`).

A preset stores one `spending_limits` row for every operation ("*") and, for an
account, its monthly budget as a non-blocking alert (the cap does the refusing):

- `standard`: the source systems' documented defaults: per message 10,000 input,
  2,000 output and 12,000 total tokens; a $5.00 daily and a $100.00 monthly cost cap;
  an alert at 80 % of the month's $100.00.
- `off`: removes the scope's limits (and, for an account, its budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Engine

from pricing_core.domain.errors import InvalidUsage
from pricing_core.limits.budget_rules import save_budget_rule
from pricing_core.limits.rules import (
    ALL_OPERATIONS,
    OPERATOR,
    WHOLE_ACCOUNT,
    SpendingLimits,
    set_limits,
)


@dataclass(frozen=True, slots=True)
class LimitPreset:
    """Operator defaults: tokens per message, caps in Decimal USD, the budget alert in
    percent of the monthly cap (None: no budget). None = no such limit."""

    name: str
    description: str
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_total_tokens: int | None = None
    daily_cost_cap: Decimal | None = None
    monthly_cost_cap: Decimal | None = None
    alert_percent: int | None = None


PRESETS: dict[str, LimitPreset] = {
    p.name: p
    for p in (
        LimitPreset(
            "standard",
            "the source systems' defaults: 10,000 input / 2,000 output / 12,000 total "
            "tokens per message, $5.00 a day, $100.00 a month, alert at 80 %",
            max_input_tokens=10_000,
            max_output_tokens=2_000,
            max_total_tokens=12_000,
            daily_cost_cap=Decimal("5.00"),
            monthly_cost_cap=Decimal("100.00"),
            alert_percent=80,
        ),
        LimitPreset("off", "no limits and no budget for the scope"),
    )
}


def apply_preset(
    engine: Engine, name: str, *, account_id: str = OPERATOR, actor: str
) -> SpendingLimits | None:
    """Store preset `name` for the operator defaults (account_id "") or one account.

    For an account, the monthly budget is set to the monthly cap with the preset's
    alert (not blocking), or removed by `off`; operator defaults reach budgets only
    through `PRICING_DEFAULT_MONTHLY_BUDGET`.
    Returns: the stored limits row (None for `off`). Raises: InvalidUsage (unknown
    preset), UnknownAccount.
    """
    preset = PRESETS.get(name)
    if preset is None:
        raise InvalidUsage(f"unknown limits preset {name!r}; presets: {', '.join(PRESETS)}")
    stored = set_limits(
        engine,
        SpendingLimits(
            account_id,
            WHOLE_ACCOUNT,
            ALL_OPERATIONS,
            preset.max_input_tokens,
            preset.max_output_tokens,
            preset.max_total_tokens,
            preset.daily_cost_cap,
            preset.monthly_cost_cap,
        ),
        actor=actor,
    )
    if account_id != OPERATOR:
        alert = preset.alert_percent
        save_budget_rule(
            engine,
            account_id=account_id,
            user_id=WHOLE_ACCOUNT,
            monthly_limit=None if alert is None else preset.monthly_cost_cap,
            thresholds=(alert, 100) if alert else (100,),
            block=False,
            actor=actor,
        )
    return stored
