"""The price book: genai-prices list prices, the operator row in effect at a moment,
fixed per-call prices, and the TTL cache in front of the database."""

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN
from decimal import Decimal as D

import pytest
from genai_prices import Usage, calc_price
from sqlalchemy import insert

from pricing_core.adapters.schema import model_prices
from pricing_core.adapters.storage import make_engine
from pricing_core.catalog import price_book as catalog
from pricing_core.catalog.price_book import (
    ModelPriceRow,
    OperationPriceRow,
    PriceBook,
    clear_price_cache,
    get_price_book,
    provider_cost,
    provider_price,
)
from pricing_core.domain.costing import ChargeBasis, TokenCounts, TokenRates
from pricing_core.domain.errors import UnknownModel

T0 = datetime(2025, 1, 1, tzinfo=UTC)
NANO = D("1e-9")


def book() -> PriceBook:
    return PriceBook(
        default_markup=D("1.25"),
        models={
            ("openai", "gpt-4o-mini"): [
                ModelPriceRow(1, T0, D("2"), None),
                ModelPriceRow(2, T0 + timedelta(days=10), D("1.5"), TokenRates(D("1"), D("4"))),
            ]
        },
        operations={
            ("image_generation", ""): [
                OperationPriceRow(3, T0, D("0.04"), D("0.02")),
                OperationPriceRow(4, T0 + timedelta(days=5), D("0.05"), D("0.02")),
            ],
            ("image_generation", "dall-e-3"): [
                OperationPriceRow(7, T0 + timedelta(days=2), D("1.00"), D("0.04"), "dall-e-3"),
            ],
        },
    )


@pytest.mark.parametrize(
    ("at", "row_id"),
    [
        (T0 - timedelta(seconds=1), None),  # before any row: the default markup
        (T0, 1),  # a row applies from its effective_from on
        (T0 + timedelta(days=10) - timedelta(microseconds=1), 1),
        (T0 + timedelta(days=10), 2),
        (T0 + timedelta(days=400), 2),
    ],
)
def test_the_operator_row_in_effect_at_the_events_time_applies(at, row_id):
    row = book().model_row("openai", "gpt-4o-mini", at)
    assert (row.id if row else None) == row_id


def test_a_quote_uses_the_markup_and_override_in_effect_then():
    counts = TokenCounts(1_000, 100)
    exact = calc_price(
        Usage(input_tokens=1_000, output_tokens=100),
        "gpt-4o-mini",
        provider_id="openai",
        genai_request_timestamp=T0,
    ).total_price
    before = book().quote(
        provider="openai",
        model="gpt-4o-mini",
        operation="chat_message",
        counts=counts,
        at=T0 - timedelta(days=1),
    )
    assert before.price == (exact * D("1.25")).quantize(NANO, ROUND_HALF_EVEN)
    first = book().quote(
        provider="openai", model="gpt-4o-mini", operation="chat_message", counts=counts, at=T0
    )
    assert first.price == (exact * 2).quantize(NANO, ROUND_HALF_EVEN)
    assert first.price_version.endswith(";mp:1")
    later = book().quote(
        provider="openai",
        model="gpt-4o-mini",
        operation="chat_message",
        counts=counts,
        at=T0 + timedelta(days=11),
    )
    override = (D(1_000) * 1 + D(100) * 4) / D(1_000_000)
    assert later.price == (override * D("1.5")).quantize(NANO, ROUND_HALF_EVEN)
    assert later.provider_cost == exact.quantize(NANO, ROUND_HALF_EVEN)  # the provider's price


def test_a_fixed_price_operation_is_charged_per_call_from_its_effective_date():
    counts = TokenCounts(0, 0)
    quotes = [
        book().quote(
            provider="openai",
            model="dall-e",
            operation="image_generation",
            counts=counts,
            at=T0 + timedelta(days=d),
        )
        for d in (0, 5)
    ]
    assert [(q.price, q.basis, q.price_version) for q in quotes] == [
        (D("0.04"), ChargeBasis.FIXED, "op:3"),
        (D("0.05"), ChargeBasis.FIXED, "op:4"),
    ]


@pytest.mark.parametrize(
    ("model", "day", "price", "version"),
    [
        ("dall-e-3", 0, D("0.04"), "op:3"),  # before its own row: the operation-wide price
        ("dall-e-3", 2, D("1.00"), "op:7"),
        ("dall-e-3", 9, D("1.00"), "op:7"),  # a later operation-wide row does not override
        ("stable-diffusion", 9, D("0.05"), "op:4"),
    ],
)
def test_a_models_own_fixed_price_comes_before_the_operation_wide_one(model, day, price, version):
    quote = book().quote(
        provider="openai",
        model=model,
        operation="image_generation",
        counts=TokenCounts(0, 0),
        at=T0 + timedelta(days=day),
    )
    assert (quote.price, quote.price_version) == (price, version)


def test_a_fixed_price_is_charged_per_unit_of_the_quantity():
    quote = book().quote(
        provider="openai",
        model="dall-e-3",
        operation="image_generation",
        counts=TokenCounts(0, 0),
        at=T0 + timedelta(days=3),
        quantity=4,
    )
    assert (quote.price, quote.provider_cost) == (D("4.00"), D("0.16"))
    assert quote.explanation == (
        "fixed price for image_generation (dall-e-3): $1.00/unit x 4 = $4.00"
    )
    token_priced = book().quote(
        provider="openai",
        model="gpt-4o-mini",
        operation="chat_message",
        counts=TokenCounts(1000, 100),
        at=T0,
        quantity=4,
    )
    one = book().quote(
        provider="openai",
        model="gpt-4o-mini",
        operation="chat_message",
        counts=TokenCounts(1000, 100),
        at=T0,
    )
    assert token_priced.price == one.price  # tokens price a call, whatever the quantity


@pytest.mark.parametrize(("provider", "model"), [("openai", "no-such-model"), ("nope", "gpt-4o")])
def test_an_unknown_model_raises_instead_of_pricing_it_at_zero(provider, model):
    with pytest.raises(UnknownModel, match=model):
        provider_price(provider, model, T0)
    with pytest.raises(UnknownModel, match=model):
        book().quote(
            provider=provider,
            model=model,
            operation="chat_message",
            counts=TokenCounts(1, 1),
            at=T0,
        )


def test_provider_cost_is_genai_prices_own_price_unrounded():
    counts = TokenCounts(12_345, 678, cached_tokens=1_000)
    expected = calc_price(
        Usage(input_tokens=12_345, output_tokens=678, cache_read_tokens=1_000),
        "claude-haiku-4-5",
        provider_id="anthropic",
        genai_request_timestamp=T0,
    ).total_price
    assert provider_cost("anthropic", "claude-haiku-4-5", counts, T0) == expected


@pytest.fixture
def db(sqlite_url):
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


def add_markup(engine, markup: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(model_prices).values(
                provider="openai",
                model="gpt-4o-mini",
                effective_from=T0,
                markup=D(markup),
                created_at=T0,
            )
        )


def test_the_price_book_is_cached_until_cleared(db):
    add_markup(db, "2")
    assert get_price_book(db).model_row("openai", "gpt-4o-mini", T0).markup == D("2")
    add_markup(db, "3")  # same effective_from, later id: wins once reloaded
    assert get_price_book(db).model_row("openai", "gpt-4o-mini", T0).markup == D("2")
    clear_price_cache()
    assert get_price_book(db).model_row("openai", "gpt-4o-mini", T0).markup == D("3")


def test_the_cached_price_book_expires_after_its_ttl(db, monkeypatch):
    clock = [1_000.0]
    monkeypatch.setattr(catalog.time, "monotonic", lambda: clock[0])
    add_markup(db, "2")
    get_price_book(db)
    add_markup(db, "3")
    clock[0] += 299
    assert get_price_book(db).model_row("openai", "gpt-4o-mini", T0).markup == D("2")
    clock[0] += 2  # past the 300 s default TTL
    assert get_price_book(db).model_row("openai", "gpt-4o-mini", T0).markup == D("3")
