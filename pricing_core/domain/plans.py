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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from pricing_core.domain.errors import PricingError
from pricing_core.domain.forecast import project_month_end
from pricing_core.domain.money import ZERO, format_usd, format_usd_exact, round_nano
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
        messages: metered requests that count as messages (see the setting).
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


# ---------------------------------------------------------------- recommendation


class Outcome(StrEnum):
    SWITCH = "switch"  # another plan is strictly cheaper than the current one
    NO_CHANGE = "no_change"  # the current plan is (one of) the cheapest


@dataclass(frozen=True, slots=True)
class MonthCosts:
    """What each compared plan would have cost in one month (Decimal USD by code)."""

    month: str
    projected: bool
    messages: int
    costs: Mapping[str, Decimal] = field(hash=False)


@dataclass(frozen=True, slots=True)
class Recommendation:
    """The cheapest plan for a usage history and the savings against the current plan.

    Attributes:
        current, recommended: plan codes; equal when the outcome is NO_CHANGE.
        months: per month (oldest first, the projected month last), every compared
            plan's cost.
        totals: each compared plan's cost over the whole period.
        savings_by_month: current's cost minus recommended's, per month (same order).
        savings_total: their sum, Decimal USD (0 when nothing changes).
        savings_per_month: savings_total / number of months, rounded to the nano-USD.
        tied_with: other plans that cost exactly as much as the recommended one.
        not_compared: plans left out because they have no fee ("talk to us").
        sentence: the recommendation in words.
    """

    current: str
    recommended: str
    outcome: Outcome
    months: tuple[MonthCosts, ...]
    totals: Mapping[str, Decimal] = field(hash=False)
    savings_by_month: tuple[Decimal, ...]
    savings_total: Decimal
    savings_per_month: Decimal
    tied_with: tuple[str, ...]
    not_compared: tuple[str, ...]
    names: Mapping[str, str] = field(hash=False)
    sentence: str


def recommend_plan(
    history: Sequence[MonthUsage], plans: Sequence[Plan], current: Plan
) -> Recommendation:
    """Replay the usage history under every plan and pick the cheapest over the period.

    Args:
        history: the months to compare, oldest first; a projected current month, if
            any, comes last (see `project_month`).
        plans: the plans on offer, in display order (ties go to the earliest listed,
            unless the current plan is among the cheapest). Pay-as-you-go is always
            compared; plans without a fee are listed in `not_compared`.
        current: the account's plan now (PAYG if none); always compared.
    Returns: Recommendation. A switch is recommended only when another plan is
        strictly cheaper than the current one over the period.
    Raises: PlanError for an empty history, duplicate months or plan codes, or a
        current plan without a fee.
    """
    if not history:
        raise PlanError("no months of usage to compare")
    months = [u.month for u in history]
    if len(set(months)) != len(months):
        raise PlanError(f"history repeats a month: {months}")
    if not current.has_fee:
        raise PlanError(f"current plan {current.code!r} has no fee for this account")
    compared = [PAYG] + [p for p in plans if not p.is_payg and p.has_fee]
    if not any(p.code == current.code for p in compared):
        compared.append(current)
    compared = [current if p.code == current.code else p for p in compared]
    codes = [p.code for p in compared]
    if len(set(codes)) != len(codes):
        raise PlanError(f"plans repeat a code: {codes}")
    not_compared = tuple(p.code for p in plans if not p.has_fee and p.code != current.code)

    rows = tuple(
        MonthCosts(u.month, u.projected, u.messages, {p.code: month_cost(p, u) for p in compared})
        for u in history
    )
    totals = {code: sum((r.costs[code] for r in rows), ZERO) for code in codes}
    cheapest = min(totals.values())
    best = [code for code in codes if totals[code] == cheapest]
    recommended = current.code if current.code in best else best[0]
    outcome = Outcome.NO_CHANGE if recommended == current.code else Outcome.SWITCH
    by_month = tuple(r.costs[current.code] - r.costs[recommended] for r in rows)
    saved = totals[current.code] - totals[recommended]
    per_month = round_nano(saved / len(rows))
    names = {p.code: p.name for p in compared} | {p.code: p.name for p in plans}
    tied = tuple(code for code in best if code != recommended)
    return Recommendation(
        current=current.code,
        recommended=recommended,
        outcome=outcome,
        months=rows,
        totals=totals,
        savings_by_month=by_month,
        savings_total=saved,
        savings_per_month=per_month,
        tied_with=tied,
        not_compared=not_compared,
        names=names,
        sentence=_sentence(outcome, recommended, per_month, tied, history, names),
    )


def _sentence(
    outcome: Outcome,
    recommended: str,
    per_month: Decimal,
    tied: tuple[str, ...],
    history: Sequence[MonthUsage],
    names: Mapping[str, str],
) -> str:
    past = sum(1 for u in history if not u.projected)
    basis = f"your last {past} month{'s' if past != 1 else ''}" if past else ""
    if any(u.projected for u in history):
        basis = f"{basis} and this month's projection" if basis else "this month's projection"
    if outcome is Outcome.SWITCH:
        text = (
            f"Switch to {names[recommended]} and save {format_usd(per_month, total=True)}/month "
            f"(based on {basis})."
        )
    else:
        text = f"You are on the cheapest plan for your usage (based on {basis})."
    if tied:
        others = " and ".join(names[c] for c in tied)
        verb = "would" if outcome is Outcome.SWITCH else "would also"
        text += f" {others} {verb} cost exactly the same."
    return text


# ---------------------------------------------------------------- break-even view


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """Every plan's monthly cost at one message count (Decimal USD by plan code)."""

    messages: int
    costs: Mapping[str, Decimal] = field(hash=False)


def average_payg_price(history: Sequence[MonthUsage]) -> Decimal:
    """Decimal USD per message: the history's pay-as-you-go cost over its messages
    (0 without messages), rounded to the nano-USD."""
    messages = sum(u.messages for u in history)
    if not messages:
        return ZERO
    return round_nano(sum((u.payg_cost for u in history), ZERO) / messages)


def cost_curves(
    plans: Sequence[Plan], *, payg_price: Decimal, max_messages: int, points: int = 40
) -> tuple[CurvePoint, ...]:
    """Monthly cost as a function of messages per month, for every plan with a fee
    and pay-as-you-go at `payg_price` per message. Samples `points` evenly spaced
    counts from 0 to `max_messages` plus each plan's kinks (its allowance and where it
    reaches its cap), so a line chart through the points is exact.
    """
    if max_messages < 1 or points < 2:
        raise PlanError(f"need max_messages >= 1 and points >= 2, got {max_messages}, {points}")
    compared = [PAYG] + [p for p in plans if not p.is_payg and p.has_fee]
    counts = {round(max_messages * i / (points - 1)) for i in range(points)}
    for p in compared:
        if p.included_messages is not None and p.included_messages <= max_messages:
            counts.add(p.included_messages)
            if p.monthly_cap is not None and p.overage_rate > 0 and p.monthly_fee is not None:
                room = (p.monthly_cap - p.monthly_fee) / p.overage_rate
                kink = p.included_messages + int(room.to_integral_value(ROUND_HALF_EVEN))
                if kink <= max_messages:
                    counts.add(kink)
    return tuple(
        CurvePoint(
            n, {p.code: monthly_charge(p, n, round_nano(n * payg_price)).total for p in compared}
        )
        for n in sorted(counts)
    )


# ---------------------------------------------------------------- explanations


def explain_plan_charge(
    plan: Plan, *, included: bool, price: Decimal, payg_price: Decimal | None
) -> str:
    """The sentence that says why a message was charged what it was under a plan.

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
        text = f"included message: within {allowance}, charged {format_usd_exact(ZERO)}"
    else:
        text = f"overage: beyond {allowance}, {format_usd_exact(plan.overage_rate)} per message"
        if price != plan.overage_rate and plan.monthly_cap is not None:
            text += (
                f", limited by the {format_usd(plan.monthly_cap, total=True)} monthly cap: "
                f"charged {format_usd_exact(price)}"
            )
    if payg_price is not None:
        text += f" (pay-as-you-go price {format_usd_exact(payg_price)})"
    return text


def with_fee(plan: Plan, fee: Decimal | None) -> Plan:
    """The plan with an account's own fee (custom plans); unchanged when fee is None."""
    return plan if fee is None else replace(plan, monthly_fee=fee)
