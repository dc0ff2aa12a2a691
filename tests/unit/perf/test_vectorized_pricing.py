"""Vectorized pricing gives exactly the per-event path's integers (nano-USD)."""

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricing_core.catalog.price_book import ModelPriceRow, OperationPriceRow, PriceBook
from pricing_core.catalog.vectorized import price_frame
from pricing_core.domain.costing import LinearCharge, TokenCounts, TokenRates, linear_nanos
from pricing_core.domain.errors import UnknownModel

NANO = Decimal("1e-9")
START = datetime(2024, 6, 1, tzinfo=UTC)
MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("anthropic", "claude-sonnet-4-0"),
    ("google", "gemini-2.5-pro"),  # tiered above 200k input tokens
    ("google", "gemini-1.5-flash"),  # tiered above 128k
    ("deepseek", "deepseek-chat"),  # off-peak price by time of day (UTC)
]


def book_with_operator_rows(markup: Decimal = Decimal("1.25")) -> PriceBook:
    book = PriceBook(default_markup=markup)
    book.models[("openai", "gpt-4o")] = [
        ModelPriceRow(1, START + timedelta(days=30), Decimal("1.5"), None),
        ModelPriceRow(
            2,
            START + timedelta(days=60, hours=5),
            Decimal("1.1"),
            TokenRates(Decimal("2.123"), Decimal("9.99"), None),
        ),
    ]
    book.models[("anthropic", "claude-sonnet-4-0")] = [
        ModelPriceRow(
            3, START, Decimal("1"), TokenRates(Decimal("3.3"), Decimal("16"), Decimal("0.33"))
        )
    ]
    book.operations[("image_generation", "")] = [
        OperationPriceRow(4, START + timedelta(days=10), Decimal("0.04"), Decimal("0.03")),
        OperationPriceRow(5, START + timedelta(days=90), Decimal("0.045"), Decimal("0.031")),
    ]
    # gpt-4o's own image price from day 40: before it, the operation-wide rows apply
    book.operations[("image_generation", "gpt-4o")] = [
        OperationPriceRow(6, START + timedelta(days=40), Decimal("0.1"), Decimal("0.07"), "gpt-4o")
    ]
    return book


def per_event(book: PriceBook, frame: pd.DataFrame) -> list[tuple[int, int, str, str]]:
    """The reference: `PriceBook.quote` row by row, rounded amounts in nano-USD."""
    out = []
    for r in frame.itertuples(index=False):
        quote = book.quote(
            provider=r.provider,
            model=r.model,
            operation=r.operation,
            counts=TokenCounts(int(r.input_tokens), int(r.output_tokens), int(r.cached_tokens)),
            at=r.created_at,
            quantity=int(getattr(r, "quantity", 1)),
        )
        out.append(
            (
                int(quote.provider_cost.scaleb(9)),
                int(quote.price.scaleb(9)),
                str(quote.basis),
                quote.price_version,
            )
        )
    return out


def vectorized(book: PriceBook, frame: pd.DataFrame) -> list[tuple[int, int, str, str]]:
    priced = price_frame(frame, book)
    return [
        (int(c), int(p), str(b), str(v))
        for c, p, b, v in zip(
            priced.provider_cost, priced.price, priced.basis, priced.price_version, strict=True
        )
    ]


events = st.lists(
    st.tuples(
        st.sampled_from(MODELS),
        st.sampled_from(["chat_message", "code_completion", "image_generation"]),
        st.integers(0, 400_000),
        st.integers(0, 50_000),
        st.integers(0, 100),  # percent of the input read from the cache
        st.integers(0, 150 * 86_400),
        st.booleans(),
        st.sampled_from([1, 1, 1, 2, 4]),
    ),
    min_size=1,
    max_size=40,
)


def frame_of(rows: list) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "provider": provider,
                "model": model,
                "operation": operation,
                "input_tokens": inp,
                "output_tokens": out,
                "cached_tokens": inp * percent // 100 if cache else 0,
                "created_at": START + timedelta(seconds=sec),
                "quantity": quantity[0] if quantity else 1,
            }
            for (provider, model), operation, inp, out, percent, sec, cache, *quantity in rows
        ]
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events, st.sampled_from([Decimal("1.25"), Decimal("1"), Decimal("0.333"), Decimal("2.5")]))
def test_vectorized_prices_equal_the_per_event_quotes_on_random_events(rows, markup):
    book = book_with_operator_rows(markup)
    frame = frame_of(rows)
    assert vectorized(book, frame) == per_event(book, frame)


def test_tier_edges_and_time_of_day_boundaries_are_priced_like_the_per_event_path():
    at_edges = [
        ("google", "gemini-2.5-pro", 200_000 + d, 1000, 0, START + timedelta(hours=h))
        for d in (-1, 0, 1)
        for h in (0, 12)
    ] + [
        (
            "deepseek",
            "deepseek-chat",
            5000,
            700,
            1000,
            START.replace(hour=h, minute=m) + timedelta(microseconds=us),
        )
        for h, m in ((0, 29), (0, 30), (16, 29), (16, 30))
        for us in (0, 59_999_999, 60_000_000)
    ]
    frame = pd.DataFrame(
        at_edges,
        columns=[
            "provider",
            "model",
            "input_tokens",
            "output_tokens",
            "cached_tokens",
            "created_at",
        ],
    ).assign(operation="chat_message")
    book = book_with_operator_rows()
    assert vectorized(book, frame) == per_event(book, frame)
    costs = [v[0] for v in vectorized(book, frame)]
    assert costs[4] > costs[2] * 3 // 2  # the tier cliff is really crossed at 200,001 tokens
    assert len(set(costs[6:])) == 2  # and both deepseek periods are hit


def test_many_digit_markups_stay_exact_through_python_integers_or_per_row_fallback():
    frame = frame_of(
        [
            ((p, m), "chat_message", 99_999_999, 99_999_999, 50, 3600 * k, True)
            for k, (p, m) in enumerate(MODELS)
        ]
    )
    for markup in (
        Decimal("1.000000000001"),  # beyond int64, below 27 digits: Python integers
        Decimal("1.000000000000000001"),  # beyond 27 digits: per-row fallback
        Decimal("1.2345678901234567890123"),
    ):
        book = book_with_operator_rows(markup)
        assert vectorized(book, frame) == per_event(book, frame)
    assert (
        price_frame(frame, book_with_operator_rows(Decimal("1.000000000001"))).price.dtype == object
    )


def test_an_unknown_model_raises_or_is_reported_per_row():
    frame = frame_of([(("openai", "no-such-model"), "chat_message", 10, 10, 0, 0, False)])
    with pytest.raises(UnknownModel, match="no-such-model"):
        price_frame(frame, PriceBook(default_markup=Decimal(1)))
    collected = price_frame(frame, PriceBook(default_markup=Decimal(1)), errors="collect")
    assert isinstance(collected.error.iloc[0], UnknownModel)
    assert collected.basis.iloc[0] == "unpriced"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.decimals(min_value=0, max_value=100, places=12), min_size=4, max_size=4),
    st.lists(st.tuples(*[st.integers(0, 10**8)] * 3), min_size=1, max_size=20),
)
def test_linear_nanos_rounds_half_even_exactly_like_decimal(coefs, counts):
    charge = LinearCharge(*[c / 1_000_000 for c in coefs])
    u, c, o = (np.array(x, dtype=np.int64) for x in zip(*counts, strict=True))
    got = linear_nanos(charge, u, c, o)
    want = [int(charge.at(*row).quantize(NANO, ROUND_HALF_EVEN).scaleb(9)) for row in counts]
    assert got is not None and [int(x) for x in got] == want


@pytest.mark.parametrize(
    ("value", "nanos"),
    [("0.0000000005", 0), ("0.0000000015", 2), ("0.0000000025", 2), ("0.00000000250001", 3)],
)
def test_exact_ties_round_to_even(value, nanos):
    charge = LinearCharge(Decimal(value), Decimal(0), Decimal(0), Decimal(0))
    zeros = np.zeros(1, dtype=np.int64)
    assert list(linear_nanos(charge, zeros, zeros, zeros)) == [nanos]


def test_a_models_own_fixed_price_and_quantities_are_priced_like_the_per_event_path():
    rows = [
        ((p, m), "image_generation", 10, 10, 0, int(day * 86_400), False, quantity)
        for p, m in (("openai", "gpt-4o"), ("openai", "gpt-4o-mini"))
        for day in (5, 10, 39.99, 40, 100)
        for quantity in (1, 3)
    ]
    frame = frame_of(rows)
    book = book_with_operator_rows()
    assert vectorized(book, frame) == per_event(book, frame)
    own = [v for v in vectorized(book, frame) if v[3] == "op:6"]
    assert sorted(p for _c, p, _b, _v in own) == [100_000_000] * 2 + [300_000_000] * 2
