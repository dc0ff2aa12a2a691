"""Plans (pure): a month's charge under a plan, and which plan is cheapest for a
given usage history, with the savings. No database, no clock.

A plan has a monthly fee, included messages per month, an overage rate per message
beyond them and an optional cap on the month's total. Pay-as-you-go is the pseudo-plan
`PAYG`: no fee, and each message costs its own per-request price.

Money is exact `Decimal` USD; the only rounding is `money.round_nano` (half-even to the
nano-USD) on amounts that are not already whole nano-USD (projections, averages).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from pricing_core.domain.errors import PricingError
from pricing_core.domain.forecast import project_month_end
from pricing_core.domain.money import USD, ZERO, DisplayUnit, round_nano
from pricing_core.domain.periods import MONTH_PATTERN

PAYG_CODE = "payg"
MAX_USD = Decimal(10**9)  # bound on fees, caps and a month's cost (the DB holds 9.2e9 USD)
MAX_RATE = Decimal(1000)  # USD per message
MAX_MESSAGES = 10**12  # per month
_CODE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class PlanError(PricingError):
    """A plan is malformed, has no fee for this account, or a history is unusable."""


@dataclass(frozen=True, slots=True)
class Plan:
    """One version of a plan.

    Attributes:
        code: lower-case identifier ("starter"); `(code, version)` is immutable:
            a price change is a new version, never an edit.
        name: shown to people ("Starter").
        version: 1, 2, ...
        monthly_fee: USD per month; None = custom ("talk to us": admins set it per account).
        included_messages: messages per month charged 0; None = unlimited.
        overage_rate: USD per message beyond the included messages.
        monthly_cap: USD, the most a month can cost (fee + overage); None = no cap.
    """

    code: str
    name: str
    version: int = 1
    monthly_fee: Decimal | None = ZERO
    included_messages: int | None = 0
    overage_rate: Decimal = ZERO
    monthly_cap: Decimal | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not _CODE.match(self.code):
            raise PlanError(f"plan code must be lower-case letters, digits, _ or -: {self.code!r}")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise PlanError(f"plan version must be a positive integer, got {self.version!r}")
        for name in ("monthly_fee", "overage_rate", "monthly_cap"):
            value = getattr(self, name)
            if value is None and name != "overage_rate":
                continue
            bound = MAX_RATE if name == "overage_rate" else MAX_USD
            if not isinstance(value, Decimal) or not value.is_finite() or not 0 <= value <= bound:
                raise PlanError(
                    f"{name} of plan {self.code!r} must be a Decimal from 0 to {bound}, "
                    f"got {value!r}"
                )
            if value != round_nano(value):
                raise PlanError(f"{name} of plan {self.code!r} is finer than a nano-USD: {value}")
        included = self.included_messages
        if included is not None and (
            isinstance(included, bool)
            or not isinstance(included, int)
            or not 0 <= included <= MAX_MESSAGES
        ):
            raise PlanError(
                f"included_messages of plan {self.code!r} must be an integer >= 0, got {included!r}"
            )
        if (
            self.monthly_cap is not None
            and self.monthly_fee is not None
            and self.monthly_cap < self.monthly_fee
        ):
            raise PlanError(
                f"monthly cap {self.monthly_cap} of plan {self.code!r} is below its fee "
                f"{self.monthly_fee}"
            )

    @property
    def is_payg(self) -> bool:
        return self.code == PAYG_CODE

    @property
    def has_fee(self) -> bool:
        """False for a custom plan whose fee nobody has set ("talk to us")."""
        return self.monthly_fee is not None

    @property
    def key(self) -> str:
        """The immutable identity of this version, e.g. "starter@1"."""
        return f"{self.code}@{self.version}"


PAYG = Plan(code=PAYG_CODE, name="Pay as you go", monthly_fee=ZERO, included_messages=0)


@dataclass(frozen=True, slots=True)
class MonthlyCharge:
    """What one month costs under one plan. Decimal USD; `base + overage == total`.

    For pay-as-you-go, `base` is 0 and `overage` is the month's per-request prices
    (every message is metered). `overage_messages` are the messages beyond the
    allowance; `uncapped_total` is fee + overage before the cap; `capped` says the
    cap lowered the total.
    """

    plan_code: str
    messages: int
    base: Decimal
    overage: Decimal
    total: Decimal
    overage_messages: int
    uncapped_total: Decimal
    capped: bool


def _check_count(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MESSAGES:
        raise PlanError(f"{what} must be an integer from 0 to {MAX_MESSAGES:,}, got {value!r}")


def _check_cost(what: str, value: object) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or not 0 <= value <= MAX_USD:
        raise PlanError(f"{what} must be a Decimal from 0 to {MAX_USD} USD, got {value!r}")


def monthly_charge(plan: Plan, messages: int, payg_cost: Decimal) -> MonthlyCharge:
    """The month's charge for `messages` messages under `plan`.

    Args:
        plan: the plan (PAYG for pay-as-you-go).
        messages: the month's messages, >= 0.
        payg_cost: Decimal USD, the sum of those messages' per-request prices
            (used by pay-as-you-go; plans charge by message count).
    Returns: MonthlyCharge with the cap applied.
    Raises: PlanError for negative inputs or a custom plan without a fee.
    """
    _check_count("messages", messages)
    _check_cost("payg_cost", payg_cost)
    if plan.is_payg:
        cost = round_nano(payg_cost)
        return MonthlyCharge(plan.code, messages, ZERO, cost, cost, messages, cost, False)
    if plan.monthly_fee is None:
        raise PlanError(f"plan {plan.code!r} has no fee for this account: talk to us")
    beyond = 0 if plan.included_messages is None else max(0, messages - plan.included_messages)
    overage = round_nano(beyond * plan.overage_rate)
    uncapped = plan.monthly_fee + overage
    capped = plan.monthly_cap is not None and uncapped > plan.monthly_cap
    total = plan.monthly_cap if capped else uncapped
    assert total is not None
    return MonthlyCharge(
        plan.code,
        messages,
        plan.monthly_fee,
        total - plan.monthly_fee,
        total,
        beyond,
        uncapped,
        capped,
    )


# ---------------------------------------------------------------- history


@dataclass(frozen=True, slots=True)
class MonthUsage:
    """One calendar month of an account's usage.

    Attributes:
        month: "YYYY-MM" in the configured time zone.
        messages: metered requests that count as messages (`plan_charges.counts_as_message`).
        payg_cost: Decimal USD, those messages at their pay-as-you-go prices.
        other_cost: Decimal USD, metered requests that are not messages; they are
            charged pay-as-you-go under every plan.
        projected: True for the current month projected to its end.
    """

    month: str
    messages: int
    payg_cost: Decimal
    other_cost: Decimal = ZERO
    projected: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.month, str) or not MONTH_PATTERN.match(self.month):
            raise PlanError(f"month must be YYYY-MM, got {self.month!r}")
        _check_count(f"messages of {self.month}", self.messages)
        _check_cost(f"payg_cost of {self.month}", self.payg_cost)
        _check_cost(f"other_cost of {self.month}", self.other_cost)


def month_cost(plan: Plan, usage: MonthUsage) -> Decimal:
    """Decimal USD: the plan's charge for the month's messages plus the non-message
    requests at their pay-as-you-go prices."""
    return monthly_charge(plan, usage.messages, usage.payg_cost).total + usage.other_cost


def project_month(
    month_to_date: MonthUsage, *, month_start: datetime, month_end: datetime, now: datetime
) -> MonthUsage:
    """The current month projected to its end from its month-to-date usage
    (`forecast.project_month_end`, linear run rate, over at least the month's first
    day). Messages round half-even to a whole message, amounts once to the nano-USD.
    Returns: MonthUsage(projected=True).
    """

    # Extrapolate from at least one day, so a month's first minutes don't explode.
    taken = max(now, min(month_start + timedelta(days=1), month_end))

    def ahead(value: Decimal | int) -> Decimal:
        return project_month_end(value, month_start=month_start, month_end=month_end, now=taken)

    return MonthUsage(
        month=month_to_date.month,
        messages=int(ahead(month_to_date.messages).to_integral_value(ROUND_HALF_EVEN)),
        payg_cost=round_nano(ahead(month_to_date.payg_cost)),
        other_cost=round_nano(ahead(month_to_date.other_cost)),
        projected=True,
    )


# ---------------------------------------------------------------- explanations


def explain_plan_charge(
    plan: Plan,
    *,
    included: bool,
    price: Decimal,
    payg_price: Decimal | None,
    unit: DisplayUnit = USD,
) -> str:
    """The sentence that says why a message was charged what it was under a plan, with
    amounts in `unit` (USD or credits).

    Args:
        included: True if the message was inside the month's included messages.
        price: Decimal USD charged to the wallet (0 when included; the overage rate,
            or less where the monthly cap was reached).
        payg_price: Decimal USD the message costs pay-as-you-go, if known.
    """
    if plan.included_messages is None:
        allowance = f"unlimited messages a month in {plan.name}"
    else:
        allowance = f"the {plan.included_messages:,} messages a month included in {plan.name}"
    if included:
        text = f"included message: within {allowance}, charged {unit.format(ZERO)}"
    else:
        text = f"overage: beyond {allowance}, {unit.rate(plan.overage_rate, 'message')}"
        if price != plan.overage_rate and plan.monthly_cap is not None:
            text += (
                f", limited by the {unit.format(plan.monthly_cap)} monthly cap: "
                f"charged {unit.exact(price)}"
            )
    if payg_price is not None:
        text += f" (pay-as-you-go price {unit.exact(payg_price)})"
    return text


def with_fee(plan: Plan, fee: Decimal | None) -> Plan:
    """The plan with an account's own fee (custom plans); unchanged when fee is None."""
    return plan if fee is None else replace(plan, monthly_fee=fee)
