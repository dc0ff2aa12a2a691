"""Plans at metering time: whether a usage event counts as a plan message, what it
costs under the account's plan (included, overage, cap), counting it, and the
explanation of a stored plan charge."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import wallets
from pricing_core.adapters.schema_billing import plan_usage
from pricing_core.adapters.storage import dialect_insert
from pricing_core.config import get_settings
from pricing_core.domain.costing import ChargeBasis, Quote
from pricing_core.domain.money import ZERO
from pricing_core.domain.periods import month_of
from pricing_core.domain.plans import (
    PlanError,
    explain_plan_charge,
    with_fee,
)
from pricing_core.plans.subscriptions import PLAN_TAG, account_fees_on, get_plan_on, plan_on

# ---------------------------------------------------------------- metering


def counts_as_message(operation: str, *, fixed: bool) -> bool:
    """Whether a priced call of `operation` counts as a plan message: an operation
    listed in the setting `plan_message_operations`; with the setting empty, any
    token-priced call (`fixed`: the call has a fixed price per unit), so an image or
    a video is never a free "message"."""
    names = get_settings().message_operations
    return not fixed if names is None else operation in names


def plan_may_apply(quote: Quote, operation: str) -> bool:
    """Whether an account's plan could change this quote: a priced (pay-as-you-go or
    fixed) event that counts as a plan message (`counts_as_message`)."""
    return quote.basis in (ChargeBasis.PAYG, ChargeBasis.FIXED) and counts_as_message(
        operation, fixed=quote.basis is ChargeBasis.FIXED
    )


@dataclass(frozen=True, slots=True)
class PlanCharge:
    """A plan's decision about one message: the quote to charge (basis INCLUDED or
    OVERAGE) and what to add to the month's counter once the charge is written."""

    quote: Quote
    account_id: str
    month: str
    payg_price: Decimal


def decide_plan_charge_on(
    conn: Connection, *, account_id: str, operation: str, created_at: datetime, quote: Quote
) -> PlanCharge | None:
    """Let the account's plan decide a metered message's charge. Called by
    `record.record_on` inside its write transaction, before anything is written;
    writes nothing itself (see `count_plan_message_on`).

    Pay-as-you-go accounts, non-message operations and unpriced or free events get
    None (keep the quote). On a plan (the one in effect at `created_at`), the message
    is the month's next one (calendar month in the configured zone): within the
    included messages it costs 0 (basis INCLUDED), beyond them the overage rate,
    limited so fee + overage never exceeds the monthly cap (basis OVERAGE).
    The account's wallet row is locked first, so concurrent messages are counted
    one after the other (SQLite: the write transaction already is exclusive).
    Returns: PlanCharge or None; the quote's `price_version` gains
    ";plan:<code>@<version>" and its explanation says which case applied.
    """
    if not plan_may_apply(quote, operation):
        return None
    plan = plan_on(conn, account_id, created_at)
    if plan.is_payg:
        return None
    conn.execute(
        select(wallets.c.account_id).where(wallets.c.account_id == account_id).with_for_update()
    )
    month = month_of(created_at, get_settings().tz)
    u = plan_usage.c
    row = conn.execute(
        select(u.plan_messages, u.overage).where(u.account_id == account_id, u.month == month)
    ).first()
    counted = (row.plan_messages if row else 0) + 1
    overage_so_far = row.overage if row else ZERO
    included = plan.included_messages is None or counted <= plan.included_messages
    price = ZERO
    if not included:
        price = plan.overage_rate
        if plan.monthly_cap is not None:
            room = plan.monthly_cap - (plan.monthly_fee or ZERO) - overage_so_far
            price = max(ZERO, min(price, room))
    decided = replace(
        quote,
        price=price,
        basis=ChargeBasis.INCLUDED if included else ChargeBasis.OVERAGE,
        price_version=f"{quote.price_version}{PLAN_TAG}{plan.key}",
        explanation=explain_plan_charge(
            plan,
            included=included,
            price=price,
            payg_price=quote.price,
            unit=get_settings().display_unit,
        ),  # fmt: skip
    )
    return PlanCharge(decided, account_id, month, quote.price)


def count_plan_message_on(conn: Connection, charge: PlanCharge) -> None:
    """Add a decided message to its month's counter (same transaction, after the
    charge was written, so a refused event is never counted)."""
    stmt = dialect_insert(conn, plan_usage).values(
        account_id=charge.account_id,
        month=charge.month,
        plan_messages=1,
        overage=charge.quote.price,
        payg_value=charge.payg_price,
    )
    u = plan_usage.c
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[u.account_id, u.month],
            set_={
                "plan_messages": u.plan_messages + 1,
                "overage": u.overage + stmt.excluded.overage,
                "payg_value": u.payg_value + stmt.excluded.payg_value,
            },
        )
    )


def explain_plan_event(conn: Connection, row: Any, payg_price: Decimal | None) -> str | None:
    """Re-derive the explanation of a stored INCLUDED/OVERAGE event from the plan
    version named in its `price_version` (None if it names none)."""
    version_text = row.price_version or ""
    if PLAN_TAG not in version_text:
        return None
    code, _, version = version_text.rsplit(PLAN_TAG, 1)[1].partition("@")
    try:
        plan = with_fee(
            get_plan_on(conn, code, int(version)), account_fees_on(conn, row.account_id).get(code)
        )
    except (PlanError, ValueError):
        return None
    return explain_plan_charge(
        plan,
        included=row.charge_basis == ChargeBasis.INCLUDED,
        price=row.price,
        payg_price=payg_price,
        unit=get_settings().display_unit,
    )


def plan_usage_on(conn: Connection, account_id: str, months: list[str]) -> dict[str, Any]:
    """The plan usage counters (plan_messages, overage, payg_value) by month."""
    u = plan_usage.c
    return {
        r.month: r
        for r in conn.execute(
            select(plan_usage).where(u.account_id == account_id, u.month.in_(months))
        )
    }


def plan_messages_count(conn: Connection, account_id: str, month: str) -> int:
    """Messages counted against a plan's allowance in `month` (0 if none)."""
    value = conn.execute(
        select(func.coalesce(plan_usage.c.plan_messages, 0)).where(
            plan_usage.c.account_id == account_id, plan_usage.c.month == month
        )
    ).scalar_one_or_none()
    return int(value or 0)
