"""Schemathesis against the live `/api/v1` and the source systems' `/api` paths (served
by `streamlit run app.py`, PostgreSQL, seeded, a valid API key): no 5xx, and every
response matches the OpenAPI document.

The number of generated requests is bounded (hypothesis `max_examples` per operation).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pricing_core.api.compat import create_compat_app
from pricing_core.api.routes import create_app
from tests.conftest import _admin_engine, _url_for
from tests.live_api import CONTRACT_ENV, seed, serving

pytestmark = pytest.mark.postgres

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def live_api(pg_template: str) -> Iterator[tuple[str, str]]:
    """(base URL of /api/v1, API key) of a dashboard process on a fresh database."""
    name = f"pc_contract_{uuid.uuid4().hex[:10]}"
    with _admin_engine().connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    url = _url_for(name)
    try:
        secret = seed(url)
        with serving(url, CONTRACT_ENV) as base:
            yield base, secret
    finally:
        with _admin_engine().connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# The document the live server serves at /api/v1/openapi.json, built from the same
# code (schemathesis' lazy fixture loader does not support pytest 9); the test below
# checks that the served document is exactly this one.
DOCUMENT = create_app().openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_never_fails_and_always_answers_as_documented(case, live_api):
    base, secret = live_api
    case.call_and_validate(
        base_url=base, headers={"Authorization": f"Bearer {secret}"}, checks=CHECKS, timeout=30
    )


COMPAT_DOCUMENT = create_compat_app().openapi()
# Starting a payment answers 503 (no Stripe on this server) by design, which
# `not_a_server_error` counts as a failure: tests/integration/test_api_compat.py covers
# it against the fake Stripe server instead.
compat_schema = schemathesis.openapi.from_dict(COMPAT_DOCUMENT).exclude(
    path_regex="^/billing/payment"
)


@compat_schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_source_systems_paths_never_fail_and_answer_as_documented(case, live_api):
    base, secret = live_api
    case.call_and_validate(
        base_url=base.removesuffix("/v1"),
        headers={"Authorization": f"Bearer {secret}"},
        checks=CHECKS,
        timeout=30,
    )


def test_the_openapi_document_is_served_under_api_v1(live_api):
    base, _ = live_api
    document = httpx.get(f"{base}/openapi.json").json()
    assert document.pop("servers") == [{"url": "/api/v1"}]
    assert document == DOCUMENT
    assert set(document["paths"]) >= {
        "/authorize",
        "/holds/{hold_id}/settle",
        "/holds/{hold_id}/release",
        "/usage",
        "/balance",
        "/chats/{chat_id}/usage",
        "/pricing/models",
        "/estimate",
        "/budget",
        "/billing/invoices",
        "/billing/methods",
    }
