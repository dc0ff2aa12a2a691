"""Which plan is cheapest (pure): each month of an account's usage replayed under
every plan, the recommendation in a sentence, and the break-even curves. Exact
Decimal USD."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from pricing_core.domain.money import ZERO, format_money, round_nano
from pricing_core.domain.plans import PAYG, MonthUsage, Plan, PlanError, month_cost, monthly_charge

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
            f"Switch to {names[recommended]} and save {format_money(per_month)}/month "
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
