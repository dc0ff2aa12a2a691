"""Operators edit plans without Python: a new version of a plan's terms (fee,
included messages, overage rate, monthly cap) from an `effective_from` on (current
subscribers keep theirs), and an account's own fee for a custom plan (Enterprise).
Both are audited (`plans.subscriptions.publish_plan_version`,
`plans.switching.set_account_fee`); this module checks the admin and parses input.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Engine

from pricing_core.adapters.audit import actor_of
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.money import to_usd
from pricing_core.domain.plans import Plan, PlanError
from pricing_core.domain.principal import Principal, require_admin
from pricing_core.plans.subscriptions import publish_plan_version
from pricing_core.plans.switching import set_account_fee


def _optional_usd(value: object, what: str) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return to_usd(value)
    except ValueError as exc:
        raise InvalidUsage(f"{what}: {exc}") from None


def publish_plan(
    engine: Engine,
    principal: Principal,
    code: str,
    *,
    name: str,
    monthly_fee: object,
    included_messages: int | None,
    overage_rate: object,
    monthly_cap: object = None,
    reason: str,
    effective_from: datetime | None = None,
) -> Plan:
    """Publish the next version of plan `code` with these terms (USD amounts as
    strings or Decimal; a fee of None or "" is a custom fee, "talk to us"; included
    messages None = unlimited; cap None = no cap), on offer from `effective_from`
    (default now). Returns: the published Plan. Raises: PermissionDenied, InvalidUsage,
    PlanError."""
    require_admin(principal)
    rate = _optional_usd(overage_rate, "overage rate")
    plan = Plan(
        code=code,
        name=name,
        monthly_fee=_optional_usd(monthly_fee, "monthly fee"),
        included_messages=included_messages,
        overage_rate=Decimal(0) if rate is None else rate,
        monthly_cap=_optional_usd(monthly_cap, "monthly cap"),
    )
    if plan.is_payg:
        raise PlanError("pay-as-you-go has no terms to publish")
    return publish_plan_version(
        engine, plan, actor=actor_of(principal), reason=reason, effective_from=effective_from
    )


def set_enterprise_fee(
    engine: Engine, principal: Principal, account_id: str, plan_code: str, fee: object, *,
    reason: str,
) -> Decimal:  # fmt: skip
    """An account's own monthly fee for a plan (e.g. Enterprise), audited.
    Returns: Decimal USD. Raises: PermissionDenied, PlanError, UnknownPlan,
    UnknownAccount."""
    require_admin(principal)
    return set_account_fee(
        engine, account_id, plan_code, fee, actor=actor_of(principal), reason=reason
    )
