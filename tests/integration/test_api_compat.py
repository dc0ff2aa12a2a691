"""A client written to the source systems' paths (`/api/...`), not ours: JSON from every
route, values equal to `/api/v1`'s and to independent sums, the source's 402 fields."""

from __future__ import annotations

from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette

from pricing_core.access.apikeys import create_api_key, reset_default_limiter
from pricing_core.api.compat import create_compat_app
from pricing_core.api.http import routes
from pricing_core.domain.principal import Principal
from pricing_core.ledger.wallets import create_account
from tests.prices import openai_price as price


@pytest.fixture
def client(engine):
    """(client of the whole HTTP surface, acct-1's key headers, acct-2's: an empty wallet)."""
    create_account(engine, "acct-1", name="Shop", user_id="user-1", opening_credit=Decimal("2"))
    create_account(engine, "acct-2", name="Empty", user_id="user-2", opening_credit=Decimal("0"))
    reset_default_limiter()
    one = create_api_key(engine, Principal("user-1", "acct-1")).secret
    two = create_api_key(engine, Principal("user-2", "acct-2")).secret
    with TestClient(Starlette(routes=routes())) as http:
        yield http, {"Authorization": f"Bearer {one}"}, {"Authorization": f"Bearer {two}"}


def record(http, key, request_id: str, input_tokens: int, output_tokens: int) -> None:
    body = {
        "request_id": request_id,
        "user_id": "user-1",
        "model": "gpt-4o-mini",
        "chat_id": "chat-7",
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
    }
    assert http.post("/api/v1/usage", json=body, headers=key).status_code == 201


def test_every_source_path_answers_json_equal_to_api_v1(client):
    http, key, _ = client
    record(http, key, "m1", 1200, 300)
    record(http, key, "m2", 800, 50)
    spent = price("gpt-4o-mini", 1200, 300) + price("gpt-4o-mini", 800, 50)

    balance = http.get("/api/balance", headers=key).json()
    ours = http.get("/api/v1/balance", headers=key).json()
    assert balance == {
        "balance": ours["balance"],
        "currency": "USD",
        "held": ours["held"],
        "available": ours["available"],
        "status": "ok",
    }
    assert Decimal(balance["balance"]) == Decimal(2) - spent

    chat = http.get("/api/usage/chat/chat-7", headers=key).json()
    v1_chat = http.get("/api/v1/chats/chat-7/usage", headers=key).json()
    assert (chat["chatId"], chat["messageCount"], chat["totalCost"]) == (
        "chat-7",
        2,
        v1_chat["cost"],
    )
    assert Decimal(chat["totalCost"]) == spent
    assert (chat["inputTokens"], chat["outputTokens"]) == (2000, 350)
    assert [(m["requestId"], Decimal(m["cost"])) for m in chat["messages"]] == [
        ("m2", price("gpt-4o-mini", 800, 50)),
        ("m1", price("gpt-4o-mini", 1200, 300)),
    ]

    models = http.get("/api/pricing/models?provider=openai", headers=key).json()
    v1_models = http.get(
        "/api/v1/pricing/models?provider=openai&model=gpt-4o-mini&limit=200", headers=key
    ).json()
    mini = next(m for m in models["models"] if m["model"] == "gpt-4o-mini")
    v1_mini = next(m for m in v1_models["items"] if m["model"] == "gpt-4o-mini")
    assert (mini["inputPrice"], mini["outputPrice"]) == (v1_mini["input_mtok"], "0.75")
    assert Decimal(mini["inputPrice"]) == Decimal("0.15") * Decimal("1.25")
    assert models["total"] == len(models["models"]) > 20

    estimate = http.get(
        "/api/pricing/estimate?model=gpt-4o&inputTokens=1000&maxOutputTokens=500", headers=key
    ).json()
    v1_estimate = http.post(
        "/api/v1/estimate",
        json={"model": "gpt-4o", "prompt_tokens": 1000, "max_output_tokens": 500},
        headers=key,
    ).json()
    assert estimate["estimatedCost"] == v1_estimate["price"]
    assert Decimal(estimate["estimatedCost"]) == price("gpt-4o", 1000, 500)
    assert (estimate["inputTokens"], estimate["maxOutputTokens"]) == (1000, 500)

    status = http.get("/api/budget/status", headers=key).json()
    assert (status["status"], status["monthlyLimit"]) == ("no_budget", None)
    limited = http.put(
        "/api/budget/limit", json={"monthlyLimit": "0.01", "alertThreshold": 80}, headers=key
    )
    assert limited.status_code == 200, limited.text
    v1_budget = http.get("/api/v1/budget", headers=key).json()
    assert v1_budget["monthly_limit"] == "0.01" and v1_budget["thresholds"] == [80, 100]
    assert v1_budget["block_at_limit"] is True
    status = http.get("/api/budget/status", headers=key).json()
    assert status["currentSpend"] == v1_budget["spend"] and Decimal(status["currentSpend"]) == spent
    used = spent * 100 / Decimal("0.01")
    assert status["percentUsed"] == str(used.quantize(Decimal("0.1")).normalize())
    expected = "exceeded" if used >= 100 else "warning" if used >= 80 else "ok"
    assert (status["alertThreshold"], status["status"]) == (80, expected)
    assert Decimal(status["remaining"]) == Decimal("0.01") - spent

    other = http.get("/api/usage/chat/chat-7", headers=client[2])  # another account's key
    assert other.status_code == 404 and "m1" not in other.text

    usage = http.get("/api/budget/usage", headers=key).json()
    assert usage["currentSpend"] == status["currentSpend"]
    assert Decimal(usage["todaySpend"]) == spent  # both recorded today


def test_an_empty_balance_is_402_with_the_source_fields(client):
    http, _, empty = client
    refused = http.get(
        "/api/pricing/estimate?model=gpt-4o-mini&inputTokens=100&maxOutputTokens=100",
        headers=empty,
    )
    assert refused.status_code == 402
    body = refused.json()
    assert body["error"] == "insufficient_balance"
    assert body["balance"] == "0" and "balance" in body["message"]
    assert http.get("/api/balance", headers=empty).json()["status"] == "critical"


def test_billing_routes_list_documents_and_methods_and_payment_opens_checkout(client, fake_stripe):
    http, key, _ = client
    documents = http.get("/api/billing/invoices", headers=key)
    assert documents.status_code == 200, documents.text
    assert documents.json() == {"statements": [], "invoices": []}  # nothing bought yet
    methods = http.get("/api/billing/methods", headers=key)
    assert methods.json() == {"paymentMethods": [], "autoTopup": None}
    started = http.post("/api/billing/payment", json={"packageId": "popular-v1"}, headers=key)
    assert started.status_code == 200, started.text
    body = started.json()
    assert body["sessionId"].startswith("cs_") and body["url"].startswith("http")
    unknown = http.post("/api/billing/payment", json={"packageId": "nope"}, headers=key)
    assert unknown.status_code == 404


def test_the_source_paths_need_a_key_and_are_documented_under_their_own_tag(client):
    http, _, _ = client
    assert http.get("/api/balance").status_code == 401
    document = http.get("/api/openapi.json").json()
    paths = document["paths"]
    assert set(paths) == {
        "/balance",
        "/usage/chat/{chatId}",
        "/pricing/models",
        "/pricing/estimate",
        "/budget/status",
        "/budget/limit",
        "/budget/usage",
        "/billing/invoices",
        "/billing/payment",
        "/billing/methods",
    }
    assert all(op["tags"] == ["compatibility"] for p in paths.values() for op in p.values())
    document.pop("servers", None)
    assert document == create_compat_app().openapi()
