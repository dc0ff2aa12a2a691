"""Every `/api/v1` route, called with one account's key and another account's ids,
answers not-found / permission refused and returns nothing of the other account.

`test_every_api_route_has_an_isolation_case` fails when a route is added without a
case here.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.applications import Starlette

from pricing_core.access.apikeys import create_api_key, reset_default_limiter
from pricing_core.api.http import routes
from pricing_core.api.routes import api_app
from pricing_core.domain.principal import Principal
from pricing_core.ledger.wallets import create_account, get_wallet
from pricing_core.limits.budgets import save_budget

BOB_MARKERS = ("bob-user", "bobchat", "Bob Bakery", "bob-req", "987.65", "4321")


@pytest.fixture
def api(engine):
    create_account(engine, "alice", name="Alice", user_id="alice-user", opening_credit=Decimal(5))
    create_account(
        engine, "bob", name="Bob Bakery", user_id="bob-user", opening_credit=Decimal("987.65")
    )
    save_budget(engine, Principal("bob-user", "bob"), monthly_limit="4321")
    reset_default_limiter()
    alice = {
        "Authorization": f"Bearer {create_api_key(engine, Principal('alice-user', 'alice')).secret}"
    }
    bob = {"Authorization": f"Bearer {create_api_key(engine, Principal('bob-user', 'bob')).secret}"}
    client = TestClient(Starlette(routes=routes()))
    # Bob's own activity: a hold and a recorded chat message.
    hold = client.post(
        "/api/v1/authorize",
        headers=bob,
        json={
            "request_id": "bob-req-1",
            "user_id": "bob-user",
            "model": "gpt-4o-mini",
            "estimated_input_tokens": 100,
            "max_output_tokens": 50,
            "chat_id": "bobchat-1",
        },
    )
    assert hold.status_code == 200, hold.text
    used = client.post(
        "/api/v1/usage",
        headers=bob,
        json={
            "request_id": "bob-req-2",
            "user_id": "bob-user",
            "model": "gpt-4o-mini",
            "chat_id": "bobchat-1",
            "input_tokens": 100,
            "output_tokens": 20,
        },
    )
    assert used.status_code in (200, 201), used.text
    yield client, alice, hold.json()["id"]
    client.close()


def _calls(bob_hold: str) -> dict[tuple[str, str], tuple[str, dict | None]]:
    """(method, route path) -> (URL with Bob's ids, JSON body aimed at Bob)."""
    return {
        ("POST", "/authorize"): (
            "/api/v1/authorize",
            {
                "request_id": "a1",
                "user_id": "bob-user",
                "model": "gpt-4o-mini",
                "estimated_input_tokens": 10,
                "max_output_tokens": 5,
            },
        ),
        ("POST", "/holds/{hold_id}/settle"): (
            f"/api/v1/holds/{bob_hold}/settle",
            {"input_tokens": 10, "output_tokens": 5},
        ),
        ("POST", "/holds/{hold_id}/release"): (f"/api/v1/holds/{bob_hold}/release", None),
        ("POST", "/usage"): (
            "/api/v1/usage",
            {
                "request_id": "a2",
                "user_id": "bob-user",
                "model": "gpt-4o-mini",
                "input_tokens": 10,
                "output_tokens": 5,
            },
        ),
        ("GET", "/usage"): ("/api/v1/usage?user_id=bob-user", None),
        ("GET", "/balance"): ("/api/v1/balance", None),
        ("GET", "/chats/{chat_id}/usage"): ("/api/v1/chats/bobchat-1/usage", None),
        ("GET", "/pricing/models"): ("/api/v1/pricing/models", None),
        ("POST", "/estimate"): (
            "/api/v1/estimate",
            {"model": "gpt-4o-mini", "prompt_tokens": 10, "max_output_tokens": 5},
        ),
        ("GET", "/budget"): ("/api/v1/budget?user_id=bob-user", None),
        ("PUT", "/budget"): ("/api/v1/budget", {"user_id": "bob-user", "monthly_limit": "1"}),
        ("GET", "/billing/invoices"): ("/api/v1/billing/invoices", None),
        ("GET", "/billing/methods"): ("/api/v1/billing/methods", None),
    }


# Routes that take no other account's id at all: they must still answer only about
# the key's own account (checked for Bob's markers like every other route).
NO_FOREIGN_IDS = {
    ("GET", "/balance"),
    ("GET", "/pricing/models"),
    ("POST", "/estimate"),
    ("GET", "/billing/invoices"),
    ("GET", "/billing/methods"),
}


def _api_routes() -> set[tuple[str, str]]:
    found = set()
    for route in api_app().routes:
        if isinstance(route, APIRoute):
            for method in route.methods:
                found.add((method, route.path))
    return found


def test_every_api_route_has_an_isolation_case():
    assert _api_routes() - set(_calls("h")) == set()


@pytest.mark.parametrize("route", sorted(_calls("h")), ids=lambda r: f"{r[0]} {r[1]}")
def test_a_key_aimed_at_another_accounts_ids_gets_nothing_of_it(api, engine, route):
    client, alice, bob_hold = api
    bob_before = get_wallet(engine, "bob")
    url, body = _calls(bob_hold)[route]
    response = client.request(route[0], url, headers=alice, json=body)
    text = response.text
    leaked = [m for m in BOB_MARKERS if m in text and m not in url and m not in str(body)]
    assert leaked == [], text
    if route in NO_FOREIGN_IDS:
        assert response.status_code == 200, text
        assert "bob" not in text.lower().replace("bob-", ""), text
    else:
        assert response.status_code in (403, 404) or (
            route == ("GET", "/usage")
            and response.status_code == 200
            and response.json().get("events", response.json().get("items")) == []
        ), (response.status_code, text)
    assert get_wallet(engine, "bob") == bob_before  # Bob's money untouched
