"""Every admin function of pricing_core refuses a member (the role is checked in
pricing_core, not only by hiding pages), and writes nothing."""

from __future__ import annotations

import inspect
import json
from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa

from pricing_core.adapters import audit, counters
from pricing_core.admin import accounts as admin_accounts
from pricing_core.admin import catalog, grants, provider_bills, reprice
from pricing_core.admin import integrity as admin_integrity
from pricing_core.admin import prices as admin_prices
from pricing_core.analytics import accounts as account_views
from pricing_core.analytics import prices as price_views
from pricing_core.analytics import revenue as admin_revenue
from pricing_core.analytics import sales as admin_sales
from pricing_core.analytics import spend_watch as admin_usage
from pricing_core.domain.errors import PermissionDenied
from tests.admin_support import ADMIN, MEMBER, seed_small

D1, D2 = date(2025, 3, 1), date(2025, 3, 5)
CHANGE = admin_prices.PriceChange("openai", "gpt-4o", Decimal(2))
CATALOG = json.dumps([{"id": "openai", "name": "OpenAI", "api_pattern": "x", "models": [
    {"id": "gpt-4o", "match": {"equals": "gpt-4o"},
     "prices": {"input_mtok": "2.5", "output_mtok": "10"}}]}])  # fmt: skip
ARGS: dict[str, dict] = {
    "revenue_report": {"start": D1, "end": D2},
    "revenue_breakdown": {"start": D1, "end": D2, "by": "model"},
    "revenue_series": {"start": D1, "end": D2, "granularity": "day", "by": "model"},
    "liability": {},
    "package_sales": {"start": D1, "end": D2},
    "revenue_by_plan": {"start": D1, "end": D2},
    "top_accounts": {"start": D1, "end": D2},
    "usage_span": {},
    "search_accounts": {"query": "a"},
    "account_summary": {"account_id": "alice"},
    "account_holds": {"account_id": "alice"},
    "account_ledger": {"account_id": "alice"},
    "account_usage": {"account_id": "alice", "start": D1, "end": D2},
    "adjust_balance": {"account_id": "alice", "amount": "1", "reason": "r", "idempotency_key": "k"},
    "set_balance": {"account_id": "alice", "target": "1", "reason": "r", "idempotency_key": "k"},
    "bulk_grant": {"targets": ["alice"], "amount": "1", "reason": "r", "batch_key": "b"},
    "price_book": {},
    "set_model_price": {"change": CHANGE, "effective_from": None, "reason": "r"},
    "operation_price_list": {},
    "set_operation_price": {
        "operation": "x",
        "price": "1",
        "provider_cost": "0",
        "effective_from": None,
        "reason": "r",
    },
    "reprice_preview": {"changes": [CHANGE]},
    "price_history": {},
    "catalog_staleness": {},
    "high_cost_accounts": {"as_of": D2},
    "spend_anomalies": {"as_of": D2},
    "unpriced_queue": {},
    "integrity_report": {},
    "ledger_check": {},
    "rollout_report": {},
    "stripe_reconciliation": {"since": None},
    "list_audit": {},
    "counter_totals": {"since": D1, "until": D2},
    "add_custom_model": {
        "provider": "acme", "model": "acme-1", "input_mtok": "1", "output_mtok": "2",
        "reason": "r",
    },
    "custom_model_list": {},
    "load_catalog_file": {"text": CATALOG, "source": "test"},
    "catalog_status": {},
    "price_unpriced": {},
    "apply_reprice": {"changes": [CHANGE], "reason": "r"},
    "import_bill": {
        "provider": "openai", "fmt": provider_bills.BillFormat.CSV,
        "text": "date,model,cost_usd\n2025-03-01,gpt-4o,1\n", "source": "test",
    },
    "reconcile": {"provider": "openai", "start": D1, "end": D2},
    "provider_shape_report": {},
}  # fmt: skip
MODULES = [
    admin_revenue,
    admin_sales,
    admin_accounts,
    account_views,
    grants,
    admin_prices,
    price_views,
    reprice,
    admin_usage,
    admin_integrity,
    audit,
    counters,
    catalog,
    provider_bills,
]


def admin_functions() -> dict[str, object]:
    found = {}
    for module in MODULES:
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            params = list(inspect.signature(fn).parameters)[:2]
            public = fn.__module__ == module.__name__ and not name.startswith("_")
            if public and params == ["engine", "principal"]:
                found[name] = fn
    return found


def test_every_admin_function_is_covered_by_the_permission_test():
    assert set(admin_functions()) == set(ARGS)


def snapshot(engine) -> tuple:
    with engine.connect() as conn:
        return tuple(
            conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
            for table in ("ledger_entries", "audit_log", "model_prices", "operation_prices")
        )


@pytest.mark.parametrize("name", sorted(ARGS))
def test_a_member_calling_an_admin_function_gets_a_permission_error(
    name, sqlite_url, monkeypatch, request
):
    from pricing_core.adapters import storage
    from pricing_core.config import get_settings

    if name == "stripe_reconciliation":
        request.getfixturevalue("fake_stripe")  # the admin's call needs a Stripe to ask
    monkeypatch.setenv("PRICING_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    engine = storage.make_engine(sqlite_url)
    seed_small(engine)
    before = snapshot(engine)
    fn = admin_functions()[name]
    with pytest.raises(PermissionDenied, match="not an admin"):
        fn(engine, MEMBER, **ARGS[name])
    assert snapshot(engine) == before
    fn(engine, ADMIN, **ARGS[name])  # the same call works for an admin
    engine.dispose()
