"""Data isolation in `pricing_core`: every user-facing function, given another
account's ids by a member, answers not-found or a permission error and nothing of
the other account; every admin function refuses members.

`test_every_function_taking_a_principal_has_an_isolation_case` keeps the list whole:
a new public function that takes the viewer must get a case here (or be listed as
admin-only), or the suite fails.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import pkgutil
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

import pricing_core
from pricing_core import analytics
from pricing_core.access import apikeys, teams
from pricing_core.access.apikeys import UnknownApiKey, create_api_key
from pricing_core.analytics import explore
from pricing_core.billing import autotopup, checkout, customers, fulfilment, invoices, packages
from pricing_core.config import get_settings
from pricing_core.domain.errors import PermissionDenied, PricingError, UnknownAccount
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger import wallets as ledger
from pricing_core.ledger.wallets import create_account
from pricing_core.limits import budgets
from pricing_core.metering.record import record_usage
from pricing_core.plans import advice as plan_advice
from pricing_core.plans import billing as plan_billing
from pricing_core.plans import records

ALICE = Principal("alice", "alice", email="alice@example.com")
BOB_MARK = "bobsecretchat"  # appears in Bob's chat ids and request ids only
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DAY = T0.date()


def _event(account: str, n: int, chat: str) -> UsageEvent:
    return UsageEvent(
        request_id=f"{chat}-req-{n}",
        account_id=account,
        user_id=account,
        chat_id=chat,
        operation="chat_message",
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=1000 + n,
        output_tokens=200,
        created_at=T0 + timedelta(minutes=n),
    )


@pytest.fixture
def world(engine, monkeypatch):
    """Alice and Bob, each with usage in one chat, a purchase, a budget and an API key."""
    monkeypatch.setenv("PRICING_DEMO", "on")
    get_settings.cache_clear()
    create_account(
        engine,
        "alice",
        name="Alice",
        email="alice@example.com",
        opening_credit=Decimal(5),
        now=T0 - timedelta(days=1),
    )
    create_account(
        engine,
        "bob",
        name="Bob Bakery",
        email="bob@example.com",
        opening_credit=Decimal("777.77"),
        now=T0 - timedelta(days=1),
    )
    for n in range(3):
        record_usage(engine, _event("alice", n, "alice-chat"))
        record_usage(engine, _event("bob", n, f"{BOB_MARK}-1"))
    bob = Principal("bob", "bob", email="bob@example.com")
    package = packages.list_packages(engine)[0]
    bob_purchase = checkout.simulate_purchase(
        engine, bob, package_id=package.id, idempotency_key="b1"
    )
    budgets.save_budget(engine, bob, monthly_limit="321", thresholds="50,90")
    bob_key = create_api_key(engine, bob, name="bob backend")
    return {
        "engine": engine,
        "bob_chat": f"{BOB_MARK}-1",
        "bob_session": bob_purchase.session_id,
        "bob_key": bob_key.id,
        "package": package.id,
    }


REFUSED = (PermissionDenied, UnknownAccount, UnknownApiKey)


def _cases(w: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    """One call per user-facing function: Alice (a member) aimed at Bob's ids."""
    e = w["engine"]
    return {
        "analytics.overview": lambda: analytics.overview(e, ALICE, account_id="bob"),
        "analytics.list_chats": lambda: analytics.list_chats(e, ALICE, account_id="bob"),
        "analytics.count_chats": lambda: analytics.count_chats(e, ALICE, account_id="bob"),
        "analytics.chat_detail": lambda: analytics.chat_detail(
            e, ALICE, w["bob_chat"], account_id="bob"
        ),
        "analytics.usage_range": lambda: analytics.usage_range(e, ALICE, account_id="bob"),
        "analytics.usage_report": lambda: analytics.usage_report(
            e, ALICE, start=DAY, end=DAY, account_id="bob"
        ),
        "analytics.usage_events_csv": lambda: analytics.usage_events_csv(
            e, ALICE, start=DAY, end=DAY, account_id="bob"
        ),
        "analytics.ledger_span": lambda: analytics.ledger_span(e, ALICE, account_id="bob"),
        "analytics.ledger_view": lambda: analytics.ledger_view(e, ALICE, account_id="bob"),
        "analytics.ledger_csv": lambda: analytics.ledger_csv(e, ALICE, account_id="bob"),
        "analytics.usage_entries_of_day": lambda: analytics.usage_entries_of_day(
            e, ALICE, day=DAY, account_id="bob"
        ),
        "limits.budgets.budget_status": lambda: budgets.budget_status(e, ALICE, account_id="bob"),
        "limits.budgets.save_budget": lambda: budgets.save_budget(
            e, ALICE, monthly_limit="1", account_id="bob"
        ),
        "limits.budgets.record_budget_alerts": lambda: budgets.record_budget_alerts(
            e, ALICE, account_id="bob"
        ),
        "billing.checkout.list_purchases": lambda: checkout.list_purchases(
            e, ALICE, account_id="bob"
        ),
        "billing.autotopup.get_auto_topup": lambda: autotopup.get_auto_topup(
            e, ALICE, account_id="bob"
        ),
        "billing.autotopup.configure_auto_topup": lambda: autotopup.configure_auto_topup(
            e,
            ALICE,
            enabled=True,
            threshold="1",
            monthly_max="50",
            amount="10",
            account_id="bob",
        ),
        "billing.autotopup.recent_topups": lambda: autotopup.recent_topups(
            e, ALICE, account_id="bob"
        ),
        "billing.customers.list_payment_methods": lambda: customers.list_payment_methods(
            e, ALICE, account_id="bob"
        ),
        "billing.invoices.list_invoices": lambda: invoices.list_invoices(
            e, ALICE, account_id="bob"
        ),
        "plans.records.list_billing_records": lambda: records.list_billing_records(
            e, ALICE, account_id="bob"
        ),
        "plans.records.get_billing_record": lambda: records.get_billing_record(
            e, ALICE, "2026-01", account_id="bob"
        ),
        "billing.checkout.create_checkout": lambda: checkout.create_checkout(
            e, ALICE, package_id=w["package"], account_id="bob"
        ),
        "billing.checkout.simulate_purchase": lambda: checkout.simulate_purchase(
            e, ALICE, package_id=w["package"], account_id="bob", idempotency_key="x"
        ),
        "billing.fulfilment.fulfil_checkout": lambda: fulfilment.fulfil_checkout(
            e, w["bob_session"], viewer=ALICE
        ),
        "ledger.wallets.wallet_for": lambda: ledger.wallet_for(e, ALICE, account_id="bob"),
        "plans.advice.advise_plan": lambda: plan_advice.advise_plan(e, ALICE, account_id="bob"),
        "plans.billing.request_plan_change": lambda: plan_billing.request_plan_change(
            e, ALICE, "starter", account_id="bob"
        ),
        "plans.billing.confirm_plan_checkout": lambda: plan_billing.confirm_plan_checkout(
            e, ALICE, "cs_test_bob", account_id="bob"
        ),
        "access.apikeys.create_api_key": lambda: apikeys.create_api_key(e, ALICE, account_id="bob"),
        "access.apikeys.list_api_keys": lambda: apikeys.list_api_keys(e, ALICE, account_id="bob"),
        "access.apikeys.revoke_api_key": lambda: apikeys.revoke_api_key(e, ALICE, w["bob_key"]),
        "access.teams.list_members": lambda: teams.list_members(e, ALICE, "bob"),
        "analytics.explore.explore": lambda: explore.explore(
            e, ALICE, explore.Question(DAY, DAY), account_id="bob"
        ),
        "analytics.explore.bar_events": lambda: explore.bar_events(
            e, ALICE, explore.Question(DAY, DAY), explore.Bar(DAY, "gpt-4o"), account_id="bob"
        ),
        "analytics.explore.dimension_values": lambda: explore.dimension_values(
            e, ALICE, start=DAY, end=DAY, account_id="bob"
        ),
    }


# Same-account calls that must return nothing of Bob's although they name his ids.
QUIET_CASES = {
    "analytics.chat_detail (own account, Bob's chat id)": lambda w: analytics.chat_detail(
        w["engine"], ALICE, w["bob_chat"]
    ),
    "analytics.list_chats (search Bob's chat id)": lambda w: analytics.list_chats(
        w["engine"], ALICE, search=BOB_MARK
    ),
    "analytics.count_chats (search Bob's chat id)": lambda w: analytics.count_chats(
        w["engine"], ALICE, search=BOB_MARK
    ),
}

# Functions that take the principal and are for admins only.
ADMIN_ONLY = {
    "analytics.accounts.search_accounts",
    "analytics.accounts.account_summary",
    "analytics.accounts.account_holds",
    "analytics.accounts.account_ledger",
    "analytics.accounts.account_usage",
    "admin.accounts.adjust_balance",
    "admin.accounts.set_balance",
    "admin.grants.bulk_grant",
    "analytics.revenue.revenue_report",
    "analytics.revenue.revenue_breakdown",
    "analytics.revenue.revenue_series",
    "analytics.revenue.liability",
    "analytics.revenue.top_accounts",
    "analytics.revenue.usage_span",
    "analytics.sales.package_sales",
    "analytics.sales.revenue_by_plan",
    "adapters.audit.list_audit",
    "analytics.prices.catalog_staleness",
    "analytics.prices.operation_price_list",
    "analytics.prices.price_book",
    "analytics.prices.price_history",
    "admin.reprice.reprice_preview",
    "admin.prices.set_model_price",
    "admin.prices.set_operation_price",
    "admin.integrity.integrity_report",
    "admin.integrity.ledger_check",
    "admin.integrity.stripe_reconciliation",
    "admin.integrity.rollout_report",
    "admin.integrity.provider_shape_report",
    "admin.catalog.add_custom_model",
    "admin.catalog.custom_model_list",
    "admin.catalog.load_catalog_file",
    "admin.catalog.catalog_status",
    "admin.catalog.price_unpriced",
    "admin.reprice.apply_reprice",
    "admin.provider_bills.import_bill",
    "admin.provider_bills.reconcile",
    "notify.deliver.notification_log",
    "analytics.spend_watch.high_cost_accounts",
    "analytics.spend_watch.spend_anomalies",
    "analytics.spend_watch.unpriced_queue",
    "adapters.counters.counter_totals",
    "access.teams.create_team_account",
    "access.teams.invite_user",
    "access.teams.set_user_role",
    "admin.packages.save_package",
    "admin.packages.retire_package",
    "admin.plans.publish_plan",
    "admin.plans.set_enterprise_fee",
    "admin.presets.apply_credit_preset",
    "admin.presets.apply_credit_prices",
    "billing.invoices.all_invoices",
    "plans.records.all_billing_records",
    "analytics.payments.payment_metrics",
}
# Helpers that take a principal but read nothing.
NOT_QUERIES = {
    "domain.principal.require_admin",
    "domain.principal.require_account",
    "domain.principal.target_account",
    "adapters.audit.actor_of",
    "admin.accounts.audit_balance_change",  # inside an admin write, after require_admin
    # the viewer's own notification choices: no other account's id can be named
    "notify.preferences.member_kinds",
    "notify.preferences.preferences",
    "notify.preferences.set_preference",
    "notify.preferences.low_balance_line",
    "notify.preferences.set_low_balance_line",
    "analytics.explore.available_groups",  # which choices to offer: reads nothing
    "access.apikeys.key_id_of",  # the id inside a key's own principal
    # public prices and the viewer's own account's plans: no other account can be named
    "analytics.public_prices.price_list",
    # a Stripe portal session for the viewer's own account: no other account can be named
    "billing.customers.manage_methods_url",
    "billing.customers.add_card_url",
}


def _bob_markers() -> list[str]:
    return [BOB_MARK, "Bob Bakery", "bob@example.com", "777.77", "321"]


@pytest.mark.parametrize(
    "name",
    sorted(
        _cases({"engine": None, "bob_chat": "", "bob_session": "", "bob_key": "", "package": ""})
    ),
)
def test_a_member_aiming_a_user_facing_function_at_another_account_is_refused(world, name):
    call = _cases(world)[name]
    try:
        result = call()
    except REFUSED as exc:
        message = str(exc)
        assert not any(m in message for m in ("Bob Bakery", "bob@example.com", "777.77")), message
        return
    except PricingError as exc:  # any other refusal must still name nothing of Bob's
        pytest.fail(f"{name} raised {type(exc).__name__}: {exc} instead of a refusal")
    pytest.fail(f"{name} returned {result!r} for another account's ids")


@pytest.mark.parametrize("name", sorted(QUIET_CASES))
def test_a_member_naming_another_accounts_ids_in_their_own_account_finds_nothing(world, name):
    result = QUIET_CASES[name](world)
    text = repr(result) if not hasattr(result, "to_csv") else result.to_csv()
    assert result is None or not any(m in text for m in _bob_markers()), text


def test_nothing_of_the_other_account_was_changed_by_the_refused_calls(world):
    engine = world["engine"]
    bob = Principal("bob", "bob")
    before = (ledger.get_wallet(engine, "bob"), analytics.ledger_view(engine, bob).rows.to_csv())
    for call in _cases(world).values():
        with contextlib.suppress(PricingError):
            call()
    assert (
        ledger.get_wallet(engine, "bob"),
        analytics.ledger_view(engine, bob).rows.to_csv(),
    ) == before
    assert [k.active for k in apikeys.list_api_keys(engine, bob)] == [True]
    assert budgets.budget_status(engine, bob).budget.monthly_limit == Decimal(321)
    assert BOB_MARK not in analytics.list_chats(engine, ALICE).to_csv()


def _resolve(name: str) -> Callable[..., Any]:
    module_name, fn_name = name.rsplit(".", 1)
    return getattr(importlib.import_module(f"pricing_core.{module_name}"), fn_name)


def _qualified(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__name__}"


def _functions_taking_a_principal() -> set[str]:
    """Every public function of pricing_core (all modules and subpackages) with a
    `viewer` or `principal` parameter, by the module that defines it."""
    found = set()
    for info in pkgutil.walk_packages(pricing_core.__path__, "pricing_core."):
        if info.name.startswith("pricing_core.cli"):
            continue
        module = importlib.import_module(info.name)
        for name, fn in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != info.name:
                continue
            params = inspect.signature(fn).parameters
            if any(p in params for p in ("viewer", "principal")):
                found.add(_qualified(fn))
    return found


def test_every_function_taking_a_principal_has_an_isolation_case():
    cases = set(
        _cases({"engine": None, "bob_chat": "", "bob_session": "", "bob_key": "", "package": ""})
    )
    known = {_qualified(_resolve(n)) for n in cases | ADMIN_ONLY | NOT_QUERIES}
    missing = _functions_taking_a_principal() - known
    assert missing == set(), "add an isolation case (or ADMIN_ONLY) for these"


@pytest.mark.parametrize("name", sorted(ADMIN_ONLY))
def test_every_admin_function_refuses_a_member(world, name):
    fn = _resolve(name)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for pname, p in inspect.signature(fn).parameters.items():
        value: Any = (
            world["engine"]
            if pname == "engine"
            else ALICE
            if pname in ("viewer", "principal")
            else "bob"
        )
        if pname in ("start", "end"):
            value = DAY
        if p.default is not inspect.Parameter.empty:
            continue
        if p.kind is inspect.Parameter.KEYWORD_ONLY:
            kwargs[pname] = value
        else:
            args.append(value)
    with pytest.raises(PermissionDenied):
        fn(*args, **kwargs)
    assert date.today()  # the call above raised before doing anything
