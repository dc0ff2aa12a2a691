"""Fixed prices per (operation, model) with a quantity per call, on both back ends:
what is debited, replayed, batched, sent over HTTP and set from the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from typer.testing import CliRunner

from pricing_core.access.apikeys import create_api_key, reset_default_limiter
from pricing_core.adapters.audit import list_audit
from pricing_core.adapters.schema import ledger_entries, usage_events
from pricing_core.admin.prices import set_operation_price
from pricing_core.api.http import routes
from pricing_core.catalog.price_book import clear_price_cache
from pricing_core.cli.main import app
from pricing_core.domain.errors import DuplicateRequest, InvalidUsage
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account, get_wallet
from pricing_core.metering.batch import record_usage_batch
from pricing_core.metering.record import record_usage
from tests.admin_support import ADMIN

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
# the source's credit prices at 10 credits per USD: DALL-E 3 10 credits, Stable
# Diffusion 3, any other image model 8 (the operation-wide price)
PRICES = {"dall-e-3": Decimal("1.00"), "stable-diffusion": Decimal("0.30"), "": Decimal("0.80")}


@pytest.fixture
def priced(engine):
    create_account(engine, "studio", name="Studio", user_id="u1", opening_credit=Decimal(20))
    for model, price in PRICES.items():
        set_operation_price(
            engine, ADMIN, "image_generation", price=price, provider_cost=price / 4,
            effective_from=NOW, reason="credit price list", model=model, now=NOW,
        )  # fmt: skip
    return engine


def image(request_id: str, model: str, quantity: int = 1, minutes: int = 1) -> UsageEvent:
    return UsageEvent(
        request_id, "studio", "u1", "image_generation", "openai", model, 0, 0,
        created_at=NOW + timedelta(minutes=minutes), quantity=quantity,
    )  # fmt: skip


def debits(engine) -> list[Decimal]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(ledger_entries.c.amount)
                .where(ledger_entries.c.kind == "usage")
                .order_by(ledger_entries.c.id)
            ).scalars()
        )


def test_each_model_pays_its_own_price_per_unit_and_others_the_operation_price(priced):
    later = NOW + timedelta(hours=1)
    calls = [("dall-e-3", 2), ("stable-diffusion", 1), ("gpt-image-1", 3), ("dall-e-3", 1)]
    results = [
        record_usage(priced, image(f"img-{i}", model, quantity), now=later)
        for i, (model, quantity) in enumerate(calls)
    ]
    expected = [PRICES.get(model, PRICES[""]) * quantity for model, quantity in calls]
    assert [r.price for r in results] == expected  # 2.00, 0.30, 2.40, 1.00
    assert [r.provider_cost for r in results] == [e / 4 for e in expected]
    assert debits(priced) == [-e for e in expected]
    assert get_wallet(priced, "studio").balance == Decimal(20) - sum(expected)
    assert results[0].explanation == (
        "fixed price for image_generation (dall-e-3): $1.00/unit x 2 = $2.00"
    )
    with priced.connect() as conn:
        stored = conn.execute(
            sa.select(usage_events.c.quantity).order_by(usage_events.c.id)
        ).scalars()
        assert list(stored) == [q for _m, q in calls]
    assert verify_ledger(priced).ok


def test_a_replay_needs_the_same_quantity_and_charges_nothing_more(priced):
    later = NOW + timedelta(hours=1)
    first = record_usage(priced, image("img-1", "dall-e-3", 2), now=later)
    again = record_usage(priced, image("img-1", "dall-e-3", 2), now=later)
    assert again.replayed and again.price == first.price == Decimal("2.00")
    with pytest.raises(DuplicateRequest):
        record_usage(priced, image("img-1", "dall-e-3", 3), now=later)
    assert debits(priced) == [Decimal("-2.00")]


@pytest.mark.parametrize("quantity", [0, -1, 10_001, True, 1.5])
def test_a_quantity_outside_1_to_10000_is_refused_and_nothing_is_written(priced, quantity):
    with pytest.raises(InvalidUsage, match="quantity"):
        record_usage(priced, image("img-bad", "dall-e-3", quantity), now=NOW + timedelta(hours=1))
    assert debits(priced) == []


def test_a_batch_charges_quantities_exactly_as_one_by_one(priced, engine):
    calls = [(m, q) for m in ("dall-e-3", "stable-diffusion", "flux") for q in (1, 2, 5)]
    events = [image(f"b-{i}", m, q, minutes=i + 1) for i, (m, q) in enumerate(calls)]
    result = record_usage_batch(priced, events, now=NOW + timedelta(hours=1))
    expected = [PRICES.get(m, PRICES[""]) * q for m, q in calls]
    assert (result.recorded, result.rejected, result.price) == (len(calls), (), sum(expected))
    assert sorted(debits(priced)) == sorted(-e for e in expected)
    assert verify_ledger(priced).ok


def test_the_api_takes_a_quantity_and_refuses_a_bad_one(priced):
    reset_default_limiter()
    key = {"Authorization": f"Bearer {create_api_key(priced, Principal('u1', 'studio')).secret}"}
    body = {
        "request_id": "http-1", "user_id": "u1", "operation": "image_generation",
        "provider": "openai", "model": "dall-e-3", "input_tokens": 0, "output_tokens": 0,
        "quantity": 4,
    }  # fmt: skip
    with TestClient(Starlette(routes=routes())) as client:
        ok = client.post("/api/v1/usage", json=body, headers=key)
        assert ok.status_code == 201, ok.text
        assert Decimal(ok.json()["price"]) == Decimal("4.00")
        bad = client.post(
            "/api/v1/usage", json=body | {"request_id": "h2", "quantity": 0}, headers=key
        )
        assert bad.status_code == 422 and "quantity" in bad.text
    assert debits(priced) == [Decimal("-4.00")]


def test_the_cli_sets_a_models_fixed_price_with_an_audit_row(engine):
    runner = CliRunner()
    args = ["prices", "set-operation", "video_generation", "--model", "veo-3", "--price", "5"]
    done = runner.invoke(app, [*args, "--reason", "launch video"])
    assert done.exit_code == 0, done.output
    assert "video_generation (veo-3): $5.00/unit" in done.stdout
    [audit] = list_audit(engine, ADMIN, action_prefix="price.operation")
    assert (audit.target, audit.after["price"], audit.reason) == (
        "video_generation:veo-3",
        "5",
        "launch video",
    )
    refused = runner.invoke(app, [*args[:-1], "-3", "--reason", "oops"])
    assert refused.exit_code == 2 and "price" in refused.output
    clear_price_cache()
