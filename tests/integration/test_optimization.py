"""Cost optimization under budget pressure: a cheaper model and trimmed output instead
of a refusal (`enforce`), or as a suggestion (`suggest`); the charge names the
substitution; concurrent requests never spend more than the budget."""

from __future__ import annotations

import json
import threading
from collections import Counter
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from starlette.applications import Starlette

from pricing_core.access.apikeys import create_api_key, reset_default_limiter
from pricing_core.adapters.schema import ledger_entries, usage_events
from pricing_core.api.http import routes
from pricing_core.config import get_settings
from pricing_core.domain.principal import Principal
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account
from pricing_core.limits.budget_rules import save_budget_rule
from pricing_core.limits.rules import SpendLimitExceeded
from pricing_core.metering.authorize import authorize_request
from pricing_core.metering.settle import settle
from tests.prices import openai_price as price

BUDGET = Decimal("0.10")
IN, OUT_MAX, OUT_ACTUAL = 2000, 1000, 300


def optimizing(monkeypatch, mode: str) -> None:
    monkeypatch.setenv("PRICING_OPTIMIZATION", mode)
    monkeypatch.setenv("PRICING_OPTIMIZATION_FALLBACKS", json.dumps({"*": ["gpt-4o-mini"]}))
    get_settings.cache_clear()


def budgeted(engine, limit: Decimal = BUDGET, *, block: bool = True) -> None:
    create_account(engine, "acct", name="Acme", user_id="acct", opening_credit=Decimal(5))
    save_budget_rule(
        engine, account_id="acct", user_id="", monthly_limit=limit, thresholds=(80, 100),
        block=block, actor="test",
    )  # fmt: skip


def ask(engine, request_id: str, **kw):
    fields = dict(model="gpt-4o", estimated_input_tokens=IN, max_output_tokens=OUT_MAX) | kw
    return authorize_request(
        engine, account_id="acct", user_id="acct", request_id=request_id, **fields
    )


def spent(engine) -> Decimal:
    with engine.connect() as conn:
        total = conn.execute(
            select(func.sum(ledger_entries.c.amount)).where(ledger_entries.c.kind == "usage")
        ).scalar_one()
    return -(total or Decimal(0))


@pytest.mark.postgres
def test_enforce_keeps_200_concurrent_requests_within_the_budget(pg_engine, monkeypatch):
    optimizing(monkeypatch, "enforce")
    budgeted(pg_engine)
    tally: Counter[str] = Counter()
    charged: list[tuple[str, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        try:
            for k in range(25):
                try:
                    decided = ask(pg_engine, f"r-{index}-{k}")
                except SpendLimitExceeded:
                    with lock:
                        tally["refused"] += 1
                    continue
                hold = decided.hold
                output = min(OUT_ACTUAL, hold.max_output_tokens or 0)
                settle(pg_engine, hold, input_tokens=IN, output_tokens=output)
                with lock:
                    tally["substituted" if hold.substituted_for else hold.model] += 1
                    tally["trimmed"] += (hold.max_output_tokens or 0) < OUT_MAX
                    charged.append((hold.model or "", output))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[:3]
    print(tally)
    assert sum(tally[k] for k in ("refused", "substituted", "gpt-4o")) == 200
    assert tally["gpt-4o"] >= 1 and tally["substituted"] >= 1 and tally["trimmed"] >= 1
    total = spent(pg_engine)
    assert total == sum(price(model, IN, out) for model, out in charged)  # independent
    assert total <= BUDGET
    assert verify_ledger(pg_engine).ok
    with pg_engine.connect() as conn:
        substituted = conn.execute(
            select(usage_events.c.metadata).where(usage_events.c.model == "gpt-4o-mini")
        ).all()
    assert len(substituted) == tally["substituted"]
    assert all(m == {"substituted_for": "gpt-4o"} for (m,) in substituted)


def test_enforce_holds_a_cheaper_model_and_the_charge_says_so(engine, monkeypatch):
    optimizing(monkeypatch, "enforce")
    budgeted(engine, Decimal("0.01"))  # below one gpt-4o call (~$0.019 at most)
    decided = ask(engine, "r1")
    hold = decided.hold
    assert (hold.model, hold.substituted_for, hold.max_output_tokens) == (
        "gpt-4o-mini",
        "gpt-4o",
        OUT_MAX,
    )
    assert hold.amount == price("gpt-4o-mini", IN, OUT_MAX) == decided.suggestion.price
    result = settle(engine, hold, input_tokens=IN, output_tokens=OUT_ACTUAL)
    assert result.usage.price == price("gpt-4o-mini", IN, OUT_ACTUAL)
    assert result.usage.explanation.startswith("gpt-4o-mini instead of gpt-4o (budget pressure")
    assert verify_ledger(engine).ok


def test_suggest_refuses_with_a_fit_and_trims_the_output_when_no_model_fits(engine, monkeypatch):
    optimizing(monkeypatch, "suggest")
    budgeted(engine, Decimal("0.01"))
    with pytest.raises(SpendLimitExceeded) as refused:
        ask(engine, "r1", max_output_tokens=20_000)  # even gpt-4o-mini needs ~$0.015
    fit = refused.value.suggestion
    assert fit.model == "gpt-4o-mini" and fit.max_output_tokens < 20_000
    assert price("gpt-4o-mini", IN, fit.max_output_tokens) == fit.price <= Decimal("0.01")
    assert price("gpt-4o-mini", IN, fit.max_output_tokens + 1) > Decimal("0.01")  # the most


def test_the_api_shows_the_suggestion_on_a_429_and_the_substitution_on_a_hold(engine, monkeypatch):
    budgeted(engine, Decimal("0.01"))
    reset_default_limiter()
    key = {"Authorization": f"Bearer {create_api_key(engine, Principal('acct', 'acct')).secret}"}
    body = {
        "request_id": "a1", "user_id": "acct", "model": "gpt-4o",
        "estimated_input_tokens": IN, "max_output_tokens": OUT_MAX,
    }  # fmt: skip
    with TestClient(Starlette(routes=routes())) as http:
        optimizing(monkeypatch, "suggest")
        refused = http.post("/api/v1/authorize", json=body, headers=key)
        assert refused.status_code == 429
        assert refused.json()["suggestion"]["model"] == "gpt-4o-mini"
        optimizing(monkeypatch, "enforce")
        held = http.post("/api/v1/authorize", json=body, headers=key)
        assert held.status_code == 200, held.text
        answer = held.json()
        assert (answer["model"], answer["substituted_for"]) == ("gpt-4o-mini", "gpt-4o")
        assert Decimal(answer["amount"]) == price("gpt-4o-mini", IN, OUT_MAX)
        optimizing(monkeypatch, "off")
        plain = http.post("/api/v1/authorize", json=body | {"request_id": "a2"}, headers=key)
        assert plain.status_code == 429 and plain.json()["suggestion"] is None


def test_past_an_alert_the_hold_comes_with_a_cheaper_fit(engine, monkeypatch):
    optimizing(monkeypatch, "suggest")
    budgeted(engine, Decimal("0.05"), block=False)
    for k in range(4):  # $0.01 each: 80 % of $0.05 after the fourth
        decided = ask(engine, f"w{k}")
        assert decided.suggestion is None  # below the alert threshold
        settle(engine, decided.hold, input_tokens=IN, output_tokens=OUT_ACTUAL)
    assert spent(engine) == 4 * price("gpt-4o", IN, OUT_ACTUAL) >= Decimal("0.04")
    decided = ask(engine, "w4")
    assert decided.hold.model == "gpt-4o"  # not refused, not substituted: a suggestion only
    assert decided.suggestion is not None and decided.suggestion.model == "gpt-4o-mini"
