"""The REST API's rules on both back ends: status codes and bodies, key scoping,
idempotent usage, expired holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from fastapi.testclient import TestClient
from genai_prices import Usage, calc_price
from starlette.applications import Starlette

from pricing_core.access.apikeys import create_api_key, reset_default_limiter, revoke_api_key
from pricing_core.api.http import routes
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account, get_wallet
from pricing_core.limits.rules import SpendingLimits, set_limits
from pricing_core.metering.authorize import authorize
from pricing_core.metering.record import record_usage


def price(input_tokens: int, output_tokens: int) -> Decimal:
    exact = calc_price(
        Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        "gpt-4o-mini",
        provider_id="openai",
        genai_request_timestamp=datetime.now(UTC),
    ).total_price
    return (exact * Decimal("1.25")).quantize(Decimal("1e-9"), ROUND_HALF_EVEN)


@pytest.fixture
def api(engine):
    """(client for the whole HTTP surface, headers of acct-1's key, headers of acct-2's key)."""
    create_account(engine, "acct-1", name="Shop", user_id="user-1", opening_credit=Decimal("2"))
    create_account(engine, "acct-2", name="Other", user_id="other-1", opening_credit=Decimal("2"))
    reset_default_limiter()
    one = create_api_key(engine, Principal("user-1", "acct-1")).secret
    two = create_api_key(engine, Principal("other-1", "acct-2")).secret
    client = TestClient(Starlette(routes=routes()))
    yield client, {"Authorization": f"Bearer {one}"}, {"Authorization": f"Bearer {two}"}
    client.close()


def authorize_body(request_id: str = "r1", **kw) -> dict:
    body = {
        "request_id": request_id,
        "user_id": "user-1",
        "model": "gpt-4o-mini",
        "estimated_input_tokens": 1000,
        "max_output_tokens": 500,
    }
    body.update(kw)
    return body


def usage_body(request_id: str = "u1", **kw) -> dict:
    body = {
        "request_id": request_id,
        "user_id": "user-1",
        "model": "gpt-4o-mini",
        "chat_id": "chat-1",
        "input_tokens": 1200,
        "output_tokens": 300,
    }
    body.update(kw)
    return body


def test_authorize_then_settle_over_http_charges_the_actual_price(api, engine):
    client, key, _ = api
    hold = client.post("/api/v1/authorize", json=authorize_body(), headers=key)
    assert hold.status_code == 200
    assert hold.json()["amount"] == str(price(1000, 500).normalize())
    assert hold.json()["status"] == "active"
    settled = client.post(
        f"/api/v1/holds/{hold.json()['id']}/settle",
        json={"input_tokens": 800, "output_tokens": 100},
        headers=key,
    )
    assert settled.status_code == 200
    body = settled.json()
    assert body["usage"]["price"] == str(price(800, 100).normalize())
    assert body["hold"]["status"] == "settled" and body["exceeded_hold"] is False
    balance = client.get("/api/v1/balance", headers=key).json()
    left = str((Decimal("2") - price(800, 100)).normalize())
    assert balance == {
        "account_id": "acct-1",
        "currency": "USD",
        "balance": left,
        "held": "0",
        "available": left,
    }


def test_insufficient_balance_is_402_with_balance_and_required(api):
    client, key, _ = api
    response = client.post(
        "/api/v1/authorize",
        headers=key,
        json=authorize_body(estimated_input_tokens=20_000_000, max_output_tokens=100_000),
    )
    assert response.status_code == 402
    body = response.json()
    assert body["error"] == "insufficient_balance"
    assert (body["balance"], body["available"]) == ("2", "2")
    assert body["required"] == str(price(20_000_000, 100_000).normalize())
    assert Decimal(body["required"]) > 2


def test_a_token_limit_is_403_and_a_cost_cap_is_429_each_naming_the_limit(api, engine):
    client, key, _ = api
    set_limits(engine, SpendingLimits("acct-1", "", "chat_message", max_output_tokens=100))
    forbidden = client.post("/api/v1/authorize", json=authorize_body(), headers=key)
    assert forbidden.status_code == 403
    assert forbidden.json()["error"] == "limit_exceeded"
    assert forbidden.json()["limit"] == "max_output_tokens"
    assert (forbidden.json()["value"], forbidden.json()["requested"]) == ("100", "500")

    set_limits(engine, SpendingLimits("acct-1", "", "*", daily_cost_cap=Decimal("0.0001")))
    capped = client.post(
        "/api/v1/authorize", json=authorize_body(max_output_tokens=50), headers=key
    )
    assert capped.status_code == 429
    assert capped.json()["limit"] == "daily_cost_cap" and capped.json()["value"] == "0.0001"
    assert 0 < int(capped.headers["Retry-After"]) <= 25 * 3600
    assert capped.json()["retry_after"] == int(capped.headers["Retry-After"])


def test_a_blocking_budget_set_over_http_is_enforced_with_429(api):
    client, key, _ = api
    budget = {"monthly_limit": "0.01", "thresholds": [50, 100], "block_at_limit": True}
    put = client.put("/api/v1/budget", headers=key, json=budget)
    assert put.status_code == 200 and put.json()["monthly_limit"] == "0.01"
    assert (
        client.post(
            "/api/v1/usage", json=usage_body(input_tokens=40_000, output_tokens=16_000), headers=key
        ).status_code
        == 201
    )
    refused = client.post("/api/v1/authorize", json=authorize_body(), headers=key)
    assert refused.status_code == 429 and refused.json()["limit"] == "monthly_budget"
    budget = client.get("/api/v1/budget", headers=key).json()
    assert budget["spend"] == str(price(40_000, 16_000).normalize())
    assert budget["crossed"] == [50, 100]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (authorize_body(estimated_input_tokens=1.5), ["body", "estimated_input_tokens"]),
        (authorize_body(max_output_tokens=-1), ["body", "max_output_tokens"]),
        (authorize_body(max_output_tokens="10"), ["body", "max_output_tokens"]),
        ({k: v for k, v in authorize_body().items() if k != "model"}, ["body", "model"]),
        (authorize_body(request_id="bad\x00id"), ["body", "request_id"]),
        (authorize_body(surprise=1), ["body", "surprise"]),
    ],
)
def test_invalid_requests_are_422_with_field_details(api, body, loc):
    client, key, _ = api
    response = client.post("/api/v1/authorize", json=body, headers=key)
    assert response.status_code == 422
    assert loc in [d["loc"] for d in response.json()["detail"]]
    assert response.json()["error"] == "validation_error"


def test_an_unknown_model_is_404_like_a_providers_own_api(api):
    client, key, _ = api
    for route, body in [
        ("/api/v1/authorize", authorize_body(model="no-such-model")),
        (
            "/api/v1/estimate",
            {"model": "no-such-model", "prompt_tokens": 1, "max_output_tokens": 1},
        ),
    ]:
        response = client.post(route, json=body, headers=key)
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "unknown_model"
        assert "no-such-model" in response.json()["message"]


def test_an_unknown_model_is_never_recorded_at_zero(api, engine):
    client, key, _ = api
    response = client.post(
        "/api/v1/usage", json=usage_body(model="no-such-model", provider="openai"), headers=key
    )
    assert response.status_code == 404 and response.json()["error"] == "unknown_model"
    assert verify_ledger(engine).events == 0


def test_money_given_as_a_number_is_refused(api):
    client, key, _ = api
    response = client.put(
        "/api/v1/budget", headers=key, json={"monthly_limit": 10.5, "block_at_limit": True}
    )
    assert response.status_code == 422
    assert ["body", "monthly_limit"] in [d["loc"] for d in response.json()["detail"]]


def test_a_key_cannot_see_another_accounts_chat_hold_or_user(api, engine):
    client, key_one, key_two = api
    assert client.post("/api/v1/usage", json=usage_body(), headers=key_one).status_code == 201
    mine = client.get("/api/v1/chats/chat-1/usage", headers=key_one)
    assert mine.status_code == 200 and mine.json()["requests"] == 1
    theirs = client.get("/api/v1/chats/chat-1/usage", headers=key_two)
    assert theirs.status_code == 404 and theirs.json()["error"] == "not_found"
    assert client.get("/api/v1/usage", headers=key_two).json()["items"] == []

    hold = client.post("/api/v1/authorize", json=authorize_body(), headers=key_one).json()
    for action in ("settle", "release"):
        response = client.post(
            f"/api/v1/holds/{hold['id']}/{action}",
            headers=key_two,
            json={"input_tokens": 1, "output_tokens": 1},
        )
        assert response.status_code == 404
    assert get_wallet(engine, "acct-1").held == Decimal(hold["amount"])
    as_other = client.post(
        "/api/v1/authorize", json=authorize_body("r9", user_id="user-1"), headers=key_two
    )
    assert as_other.status_code == 404 and "user-1" in as_other.json()["message"]


def test_a_replayed_usage_post_is_charged_once(api, engine):
    client, key, _ = api
    first = client.post("/api/v1/usage", json=usage_body(), headers=key)
    again = client.post("/api/v1/usage", json=usage_body(), headers=key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["replayed"] is True
    assert again.json()["event_id"] == first.json()["event_id"]
    assert get_wallet(engine, "acct-1").balance == Decimal("2") - price(1200, 300)
    changed = client.post("/api/v1/usage", json=usage_body(output_tokens=301), headers=key)
    assert changed.status_code == 409 and changed.json()["error"] == "duplicate_request"
    assert verify_ledger(engine).ok


def test_settling_an_expired_hold_is_409_and_its_money_is_free_again(api, engine):
    client, key, _ = api
    stale = authorize(
        engine,
        account_id="acct-1",
        user_id="user-1",
        model="gpt-4o-mini",
        estimated_input_tokens=1000,
        max_output_tokens=500,
        request_id="old",
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    response = client.post(
        f"/api/v1/holds/{stale.id}/settle",
        headers=key,
        json={"input_tokens": 10, "output_tokens": 10},
    )
    assert response.status_code == 409 and response.json()["error"] == "hold_not_active"
    assert "expired" in response.json()["message"]
    assert get_wallet(engine, "acct-1").held == 0
    released = client.post(f"/api/v1/holds/{stale.id}/release", headers=key)
    assert released.status_code == 409
    assert verify_ledger(engine).ok and verify_ledger(engine).events == 0


def test_usage_lists_page_newest_first_and_filter(api):
    client, key, _ = api
    for i in range(5):
        client.post(
            "/api/v1/usage",
            headers=key,
            json=usage_body(f"u{i}", chat_id="chat-a" if i % 2 else "chat-b"),
        )
    page = client.get("/api/v1/usage?limit=2", headers=key).json()
    assert [e["request_id"] for e in page["items"]] == ["u4", "u3"]
    rest = client.get(f"/api/v1/usage?limit=10&cursor={page['next_cursor']}", headers=key).json()
    assert [e["request_id"] for e in rest["items"]] == ["u2", "u1", "u0"]
    assert rest["next_cursor"] is None
    only_a = client.get("/api/v1/usage?chat_id=chat-a", headers=key).json()["items"]
    assert [e["request_id"] for e in only_a] == ["u3", "u1"]
    future = client.get("/api/v1/usage?since=2999-01-01T00:00:00Z", headers=key).json()
    assert future["items"] == []
    assert client.get("/api/v1/usage?sincee=2020-01-01T00:00:00Z", headers=key).status_code == 422
    assert client.get("/api/v1/usage?since=2020-01-01T00:00:00", headers=key).status_code == 422


def test_anonymous_sessions_are_recorded_free_and_limited(api, engine, monkeypatch):
    from pricing_core.config import get_settings

    monkeypatch.setenv("PRICING_FREE_TIER_REQUESTS_PER_DAY", "1")
    get_settings.cache_clear()
    client, key, _ = api
    body = authorize_body("a1", user_id=None, anonymous_session_id="s-1")
    hold = client.post(
        "/api/v1/authorize", json={k: v for k, v in body.items() if v is not None}, headers=key
    ).json()
    assert hold["amount"] == "0" and hold["user_id"] == "anon:s-1"
    client.post(
        f"/api/v1/holds/{hold['id']}/settle",
        headers=key,
        json={"input_tokens": 10, "output_tokens": 10},
    )
    body["request_id"] = "a2"
    refused = client.post(
        "/api/v1/authorize", headers=key, json={k: v for k, v in body.items() if v is not None}
    )
    assert refused.status_code == 429 and refused.json()["limit"] == "free_tier_requests_per_day"
    assert get_wallet(engine, "acct-1").balance == Decimal("2")


def test_missing_unknown_and_revoked_keys_are_401(api, engine):
    client, key, _ = api
    assert client.get("/api/v1/balance").status_code == 401
    bad = client.get("/api/v1/balance", headers={"Authorization": "Bearer pck_" + "x" * 43})
    assert bad.status_code == 401 and bad.headers["WWW-Authenticate"] == "Bearer"
    owner = Principal("user-1", "acct-1")
    created = create_api_key(engine, owner)
    headers = {"Authorization": f"Bearer {created.secret}"}
    assert client.get("/api/v1/balance", headers=headers).status_code == 200
    revoke_api_key(engine, owner, created.id)
    assert client.get("/api/v1/balance", headers=headers).status_code == 401


def test_estimates_and_model_prices_are_decimal_strings(api):
    client, key, _ = api
    est = client.post(
        "/api/v1/estimate",
        headers=key,
        json={"model": "gpt-4o-mini", "prompt_text": "a" * 400, "max_output_tokens": 50},
    ).json()
    assert est["input_tokens"] == 100 and est["method"].startswith("heuristic")
    assert est["price"] == str(price(100, 50).normalize())
    models = client.get(
        "/api/v1/pricing/models?provider=openai&model=gpt-4o-mini", headers=key
    ).json()
    row = next(m for m in models["items"] if m["model"] == "gpt-4o-mini")
    assert (row["input_mtok"], row["output_mtok"], row["markup"]) == ("0.1875", "0.75", "1.25")


def test_a_path_with_an_encoded_newline_gets_a_json_answer(api):
    client, key, _ = api
    response = client.get("/api/v1/chats/a%0Ab/usage", headers=key)
    assert response.status_code in (404, 422)
    assert response.headers["content-type"] == "application/json"


def test_recording_old_usage_with_a_timestamp(api, engine):
    client, key, _ = api
    at = "2025-03-01T10:00:00+01:00"
    response = client.post("/api/v1/usage", json=usage_body(created_at=at), headers=key)
    assert response.status_code == 201
    [event] = client.get("/api/v1/usage", headers=key).json()["items"]
    assert event["created_at"].startswith("2025-03-01T09:00:00")
    record_usage(
        engine,
        UsageEvent(
            request_id="py",
            account_id="acct-1",
            user_id="user-1",
            operation="chat_message",
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=1,
            output_tokens=1,
        ),
    )
    assert len(client.get("/api/v1/usage", headers=key).json()["items"]) == 2


def test_usage_posted_with_a_service_tier_and_cache_writes_is_priced_for_them(api, engine):
    client, key, _ = api
    body = usage_body(
        "tier-1", model="claude-3-5-sonnet", provider="anthropic", input_tokens=3100,
        output_tokens=300, cached_tokens=2000, cache_write_tokens=1000, service_tier="batch",
        created_at="2025-06-02T12:00:00+00:00",
    )  # fmt: skip
    done = client.post("/api/v1/usage", json=body, headers=key)
    assert done.status_code == 201, done.text
    # Claude 3.5 Sonnet: $3 input, $0.30 cache read, $3.75 cache write, $15 output; the
    # catalog has no batch rate for it then, so the providers' 50% batch discount applies
    listed = (100 * Decimal(3) + 2000 * Decimal("0.30") + 1000 * Decimal("3.75")
              + 300 * Decimal(15)) / 10**6  # fmt: skip
    assert Decimal(done.json()["provider_cost"]) == listed / 2
    assert Decimal(done.json()["price"]) == (listed / 2 * Decimal("1.25")).quantize(
        Decimal("1e-9"), ROUND_HALF_EVEN
    )
    assert done.json()["explanation"].startswith("batch tier")
    bad = client.post("/api/v1/usage", json=usage_body("tier-2", service_tier="turbo"), headers=key)
    assert bad.status_code == 422
    too_many = usage_body("tier-3", input_tokens=10, cached_tokens=6, cache_write_tokens=6)
    assert client.post("/api/v1/usage", json=too_many, headers=key).status_code == 422
    assert verify_ledger(engine).ok
