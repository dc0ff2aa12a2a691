"""Regression tests for what the adversarial run found (issue 15), one group per
finding: length limits that match the columns, instants at the edges of the range,
JSON for every error, counters that count, a bounded webhook body, a Stripe session
nobody knows, a conflicting settle, and the OpenAPI document's Allow header."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request

from pricing_core.access.apikeys import create_api_key, reset_default_limiter
from pricing_core.adapters.counters import Counter, counter_totals
from pricing_core.adapters.schema_billing import stripe_events
from pricing_core.api import answers as api_answers
from pricing_core.api.http import MAX_WEBHOOK_BYTES, routes, stripe_webhook
from pricing_core.api.routes import create_app
from pricing_core.domain.principal import Principal
from pricing_core.ledger.holds import get_hold
from pricing_core.ledger.wallets import create_account, get_wallet
from tests.admin_support import ADMIN
from tests.integration.stripe_helpers import deliver

DOCUMENT = create_app().openapi()


def _client(engine) -> tuple[TestClient, dict[str, str]]:
    """(client of the whole HTTP surface, headers of acct-1's key)."""
    create_account(engine, "acct-1", name="Shop", user_id="user-1", opening_credit=Decimal("50"))
    reset_default_limiter()
    secret = create_api_key(engine, Principal("user-1", "acct-1")).secret
    client = TestClient(Starlette(routes=routes()), raise_server_exceptions=False)
    return client, {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def api(engine):
    client, key = _client(engine)
    yield client, key
    client.close()


@pytest.fixture
def pg_api(pg_engine):
    client, key = _client(pg_engine)
    yield client, key
    client.close()


# ---------------------------------------------------------------- lengths (item 2)

BODIES: dict[str, dict[str, Any]] = {
    "/authorize": {
        "request_id": "len-a",
        "anonymous_session_id": "s",
        "model": "gpt-4o-mini",
        "estimated_input_tokens": 10,
        "max_output_tokens": 10,
    },
    "/usage": {
        "request_id": "len-u",
        "anonymous_session_id": "s",
        "model": "gpt-4o-mini",
        "chat_id": "c",
        "input_tokens": 10,
        "output_tokens": 10,
    },
    "/estimate": {"model": "gpt-4o-mini", "prompt_tokens": 10, "max_output_tokens": 10},
    "/budget": {"monthly_limit": "10.00"},
    "/holds/{hold_id}/settle": {"input_tokens": 1, "output_tokens": 1},
}


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return _resolve(DOCUMENT["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
    return schema


def _string_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The string branch of a (possibly nullable) field schema, if it has a maxLength."""
    for option in [schema, *schema.get("anyOf", [])]:
        if option.get("type") == "string" and "maxLength" in option:
            return option
    return None


def _string_fields() -> list[tuple[str, str, str, str, int]]:
    """(method, path, "body"/"query"/"path", name, maxLength) of every bounded string."""
    found = []
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                string = _string_schema(parameter["schema"])
                if string:
                    found.append(
                        (method, path, parameter["in"], parameter["name"], string["maxLength"])
                    )
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                for name, field in _resolve(body["schema"])["properties"].items():
                    string = _string_schema(field)
                    if string:
                        found.append((method, path, "body", name, string["maxLength"]))
    return found


FIELDS = _string_fields()


def test_the_walk_covers_every_bounded_string_of_the_api():
    names = {(m, p, n) for m, p, _, n, _ in FIELDS}
    assert ("post", "/usage", "anonymous_session_id") in names
    assert ("put", "/budget", "user_id") in names
    assert ("get", "/usage", "since") not in names  # instants are bounded by their pattern
    assert len(FIELDS) >= 25


def _call(client, headers, method, path, where, name, value):
    url = "/api/v1" + path.replace("{hold_id}", "h" if name != "hold_id" else value)
    url = url.replace("{chat_id}", "c" if name != "chat_id" else value)
    body = json.loads(json.dumps(BODIES.get(path, {}))) if method in ("post", "put") else None
    params = {}
    if where == "body":
        if name == "user_id":
            body.pop("anonymous_session_id", None)
        if name == "prompt_text":
            body.pop("prompt_tokens", None)
            body.pop("estimated_input_tokens", None)
        body[name] = value
    elif where == "query":
        params[name] = value
    return client.request(method.upper(), url, json=body, params=params, headers=headers)


@pytest.mark.postgres
@pytest.mark.parametrize(("method", "path", "where", "name", "longest"), FIELDS)
def test_every_string_at_its_maximum_length_is_answered_never_a_500(
    pg_api, method, path, where, name, longest
):
    client, key = pg_api
    full = _call(client, key, method, path, where, name, "x" * longest)
    assert full.status_code < 500 and full.json(), (full.status_code, full.text)
    if name == "anonymous_session_id":  # stored as "anon:<id>" in 64-character columns
        assert full.status_code in (200, 201), full.text
    over = _call(client, key, method, path, where, name, "x" * (longest + 1))
    assert over.status_code == 422 and over.json()["error"] == "validation_error", over.text


@pytest.mark.postgres
def test_the_longest_anonymous_session_records_usage_on_postgresql(pg_api):
    client, key = pg_api
    body = {**BODIES["/usage"], "anonymous_session_id": "s" * 59, "request_id": "r" * 128}
    assert client.post("/api/v1/usage", json=body, headers=key).status_code == 201
    budget = client.put(
        "/api/v1/budget", json={"user_id": "u" * 64, "monthly_limit": "5"}, headers=key
    )
    assert budget.status_code == 404  # no such user: refused, not a database error


# ---------------------------------------------------------------- instants (item 3)

EDGES = [
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59.999999-23:59",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00+23:59",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
]
instants = st.one_of(
    st.sampled_from(EDGES),
    st.builds(
        "{}T{:02d}:{:02d}:{:02d}{}".format,
        st.dates().map(str),
        st.integers(0, 23),
        st.integers(0, 59),
        st.integers(0, 59),
        st.sampled_from(["Z", "+14:00", "-14:00", "+23:59", "-23:59", "+00:00"]),
    ),
    st.sampled_from(["2023-02-30T00:00:00Z", "2023-13-01T00:00:00Z", "2023-01-01T25:00:00Z"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(instant=instants)
def test_no_instant_at_any_edge_gets_a_500(api, instant):
    client, key = api
    for name in ("since", "until"):
        reply = client.get("/api/v1/usage", params={name: instant}, headers=key)
        assert reply.status_code in (200, 422) and reply.json(), reply.text
        if reply.status_code == 422:
            assert reply.json()["detail"][0]["loc"] == ["query", name]
    body = {**BODIES["/usage"], "request_id": f"t-{instant}", "created_at": instant}
    reply = client.post("/api/v1/usage", json=body, headers=key)
    assert reply.status_code in (201, 422) and reply.json(), reply.text
    if reply.status_code == 422:
        assert reply.json()["detail"][0]["loc"] == ["body", "created_at"], reply.text


def test_an_instant_past_the_last_representable_one_means_the_end_of_time(api):
    client, key = api
    client.post("/api/v1/usage", json=BODIES["/usage"], headers=key)
    latest = client.get("/api/v1/usage", params={"since": EDGES[0]}, headers=key)
    everything = client.get("/api/v1/usage", params={"until": EDGES[0]}, headers=key)
    assert latest.status_code == everything.status_code == 200
    assert latest.json()["items"] == [] and len(everything.json()["items"]) == 1


# ---------------------------------------------------------------- JSON errors (item 9)


def test_an_unexpected_failure_is_json_and_counted(api, engine, monkeypatch):
    client, key = api

    def broken(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(api_answers, "get_wallet", broken)
    reply = client.get("/api/v1/balance", headers=key)
    assert reply.status_code == 500
    assert reply.json() == {
        "error": "internal_error",
        "message": "the server failed; the request changed nothing",
    }
    assert "fire" not in reply.text
    assert _counts(engine)[Counter.API_REJECTED] == 1


def test_options_names_every_method_of_the_path_in_allow(api):
    client, key = api
    reply = client.options("/api/v1/budget", headers=key)
    assert reply.status_code == 405 and reply.json()["error"] == "http_405"
    allowed = {m.strip() for m in reply.headers["allow"].split(",")}
    assert {"GET", "PUT"} <= allowed and "POST" not in allowed


# ---------------------------------------------------------------- counters (item 4)


def _counts(engine) -> dict[str, int]:
    today = datetime.now(UTC).date()
    return counter_totals(
        engine, ADMIN, since=today - timedelta(days=1), until=today + timedelta(days=1)
    )


def test_rejected_api_requests_and_failed_webhooks_are_counted(api, engine, fake_stripe):
    client, key = api
    replies = [
        client.get("/api/v1/balance"),  # 401
        client.get("/api/v1/usage", params={"limit": 0}, headers=key),  # 422
        client.get("/api/v1/chats/none/usage", headers=key),  # 404
        client.post(
            "/api/v1/estimate", json={**BODIES["/estimate"], "model": "no-such"}, headers=key
        ),
        client.get("/api/v1/balance", headers=key),  # 200: not counted
    ]
    assert [r.status_code for r in replies] == [401, 422, 404, 404, 200]
    bad = client.post("/stripe/webhook", content=b"{}", headers={"Stripe-Signature": "t=1,v1=0"})
    assert bad.status_code == 400
    assert _counts(engine) == {Counter.API_REJECTED: 4, Counter.WEBHOOK_FAILED: 1}


# ---------------------------------------------------------------- webhook size (item 8)


def test_a_webhook_body_over_the_limit_by_its_length_header_is_refused_unread(api, engine):
    client, _ = api
    reply = client.post(
        "/stripe/webhook",
        content=b"x",  # what would follow is never read
        headers={"Content-Length": str(MAX_WEBHOOK_BYTES + 1)},
    )
    assert reply.status_code == 413
    assert _counts(engine)[Counter.WEBHOOK_FAILED] == 1


def test_a_streamed_webhook_body_is_refused_at_the_first_chunk_past_the_limit(engine):
    chunk = b"x" * 65_536
    sent = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        sent += 1
        return {"type": "http.request", "body": chunk, "more_body": sent < 5_000}  # 327 MB

    replies: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        replies.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/stripe/webhook",
        "headers": [(b"content-type", b"application/json")],  # no Content-Length
        "query_string": b"",
    }
    response = asyncio.run(stripe_webhook(Request(scope, receive)))
    assert response.status_code == 413
    assert sent == MAX_WEBHOOK_BYTES // len(chunk) + 1  # stopped right after the limit


# ---------------------------------------------------------------- unknown session (item 9)


def test_a_signed_event_for_a_session_stripe_does_not_know_is_acknowledged_and_ignored(
    engine, fake_stripe
):
    create_account(engine, "acct", name="Ada")
    client = TestClient(Starlette(routes=routes()))
    session = {"id": "cs_test_nobody_knows", "object": "checkout.session", "mode": "payment"}
    event = fake_stripe.event("checkout.session.completed", session)
    first = deliver(client, fake_stripe, event)
    again = deliver(client, fake_stripe, event)
    assert first.status_code == 200 and first.json()["status"] == "processed"
    assert again.json()["status"] == "duplicate"  # answered once; never retried for days
    with engine.connect() as conn:
        row = conn.execute(stripe_events.select()).one()
    assert row.outcome.startswith("ignored: ") and "no such object" in row.outcome
    assert get_wallet(engine, "acct").balance == Decimal("10")  # the welcome credit only


# ---------------------------------------------------------------- conflicting settle (item 10)


def test_a_settle_that_conflicts_with_recorded_usage_releases_its_hold(api, engine):
    client, key = api
    body = {k: v for k, v in BODIES["/authorize"].items() if k != "anonymous_session_id"}
    hold = client.post(
        "/api/v1/authorize", json={**body, "request_id": "both", "user_id": "user-1"}, headers=key
    )
    assert hold.status_code == 200, hold.text
    held = get_wallet(engine, "acct-1").held
    assert held > 0
    usage = {**BODIES["/usage"], "request_id": "both", "user_id": "user-1", "input_tokens": 99}
    del usage["anonymous_session_id"]
    assert client.post("/api/v1/usage", json=usage, headers=key).status_code == 201
    settle = client.post(
        f"/api/v1/holds/{hold.json()['id']}/settle",
        json={"input_tokens": 7, "output_tokens": 7},
        headers=key,
    )
    assert settle.status_code == 409 and settle.json()["error"] == "duplicate_request"
    assert "released" in settle.json()["message"]
    assert get_hold(engine, "acct-1", hold.json()["id"]).status == "released"
    assert get_wallet(engine, "acct-1").held == 0
