"""Plans on the imported real trace (Azure LLM inference 2023, code requests): for
several accounts, heavy to light, two of them on plans while the trace was recorded,
the recommendation's per-month costs equal an independent recomputation from the
exported usage events (genai-prices x markup per event, the issue's plan table).

The trace is read from `../shared/data/azure-llm-inference-2023/` (never copied
into the project); without it the test skips, saying so.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN
from decimal import Decimal as D

import pytest
from genai_prices import Usage, calc_price

from pricing_core.analytics.exports import ExportFormat, export_usage
from pricing_core.domain.principal import Principal
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account
from pricing_core.metering.importers import DEFAULT_MODEL_MIX, import_azure_trace
from pricing_core.metering.trace import (
    TraceMapping,
    account_id_for,
    find_trace_dir,
    parse_model_mix,
)
from pricing_core.plans.advice import advise_plan
from pricing_core.plans.subscriptions import SubscriptionSource
from pricing_core.plans.switching import switch_plan

TRACE = find_trace_dir()
pytestmark = pytest.mark.skipif(
    TRACE is None, reason="the Azure trace is not at ../shared/data/azure-llm-inference-2023/"
)
BEFORE = datetime(2023, 1, 1, tzinfo=UTC)
MONTH_END = datetime(2023, 12, 1, tzinfo=UTC)  # November is complete
MID_MONTH = datetime(2023, 11, 16, 19, 30, tzinfo=UTC)  # just after the trace's hour
PLANS = {  # the table: fee, included messages, overage per message, cap
    "starter": (D("5"), 1000, D("0.00015"), D("50")),
    "professional": (D("15"), 10_000, D("0.00010"), D("200")),
}
ON_PLAN = {account_id_for(1): "professional", account_id_for(2): "starter"}
ACCOUNTS = [account_id_for(k) for k in (1, 2, 4, 12)]


@pytest.fixture
def trace(engine):
    for account, plan in ON_PLAN.items():
        create_account(engine, account, name=account, now=BEFORE)
        switch_plan(engine, account, plan, source=SubscriptionSource.ADMIN, now=BEFORE)
    mapping = TraceMapping(
        operation="code_completion", seed=5, users=12, models=parse_model_mix(DEFAULT_MODEL_MIX)
    )
    summary = import_azure_trace(
        engine,
        TRACE / "AzureLLMInferenceTrace_code.csv",
        mapping,
        allow_overdraft=True,
        now=MONTH_END,
    )
    with (TRACE / "AzureLLMInferenceTrace_code.csv").open(newline="") as handle:
        requests = sum(1 for row in csv.reader(handle) if row) - 1  # minus the header
    assert summary.imported == summary.rows == requests
    assert verify_ledger(engine).ok
    out = io.StringIO()
    export_usage(engine, out, ExportFormat.JSONL)
    return engine, [json.loads(line) for line in out.getvalue().splitlines()]


def payg_price(row: dict) -> D:
    """What the event costs pay-as-you-go: genai-prices x the default markup 1.25,
    rounded once half-even to the nano-USD."""
    at = datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))
    usage = Usage(input_tokens=row["input_tokens"], output_tokens=row["output_tokens"])
    exact = calc_price(
        usage, row["model"], provider_id=row["provider"], genai_request_timestamp=at
    ).total_price
    return (exact * D("1.25")).quantize(D("1e-9"), ROUND_HALF_EVEN)


def plan_cost(plan: str, messages: int) -> D:
    fee, included, rate, cap = PLANS[plan]
    return min(fee + max(0, messages - included) * rate, cap)


def by_month(rows: list[dict], account: str) -> tuple[dict, dict]:
    messages, payg = defaultdict(int), defaultdict(D)
    for row in rows:
        if row["account_id"] == account:
            month = row["created_at"][:7]  # UTC, the default PRICING_TIMEZONE
            messages[month] += 1
            payg[month] += payg_price(row)
    return messages, payg


def expected_costs(messages: int, payg: D) -> dict[str, D]:
    return {"payg": payg} | {plan: plan_cost(plan, messages) for plan in PLANS}


def test_per_month_costs_on_the_real_trace_equal_a_recomputation_from_the_export(trace):
    """One import per back end; past months, then the current month projected."""
    engine, rows = trace
    assert {r["account_id"] for r in rows} >= set(ACCOUNTS)
    for account in ACCOUNTS:
        messages, payg = by_month(rows, account)
        assert set(messages) == {"2023-11"}  # the trace is one hour of 2023-11-16
        advice = advise_plan(engine, Principal(account, account), months=2, now=MONTH_END)
        got = [
            (m.month, m.projected, m.messages, dict(m.costs)) for m in advice.recommendation.months
        ]
        # accounts opened in January have October in the comparison; the importer's
        # accounts exist since their first usage (November), not before
        earlier = [("2023-10", False, 0, expected_costs(0, D(0)))] if account in ON_PLAN else []
        assert got == [
            *earlier,
            (
                "2023-11",
                False,
                messages["2023-11"],
                expected_costs(messages["2023-11"], payg["2023-11"]),
            ),
            ("2023-12", True, 0, expected_costs(0, D(0))),
        ], account
        if account not in ON_PLAN:  # what pay-as-you-go accounts were actually charged
            charged = sum(D(r["price_usd"]) for r in rows if r["account_id"] == account)
            assert charged == payg["2023-11"]
        totals = {c: sum(m[3][c] for m in got) for c in got[0][3]}
        assert advice.recommendation.totals[advice.recommendation.recommended] == min(
            totals.values()
        )
        current = ON_PLAN.get(account, "payg")
        rec = advice.recommendation
        print(account, current, messages["2023-11"], payg["2023-11"], rec.recommended, rec.sentence)
        assert advice.recommendation.current == current
        assert advice.recommendation.savings_total == totals[current] - min(totals.values())

    # and the current month, seen just after the trace's hour, projected at its run rate
    elapsed_hours, month_hours = D(15 * 24) + D("19.5"), D(30 * 24)
    for account in ACCOUNTS:
        messages, payg = by_month(rows, account)
        n = (messages["2023-11"] * month_hours / elapsed_hours).to_integral_value(ROUND_HALF_EVEN)
        cost = (payg["2023-11"] * month_hours / elapsed_hours).quantize(D("1e-9"), ROUND_HALF_EVEN)
        advice = advise_plan(engine, Principal(account, account), months=1, now=MID_MONTH)
        projected = advice.recommendation.months[-1]
        assert (projected.month, projected.projected, projected.messages) == ("2023-11", True, n)
        assert dict(projected.costs) == expected_costs(int(n), cost)
