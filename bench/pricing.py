"""B4: vectorized pricing of up to 1M events vs `genai_prices.calc_price` per row.

The per-row baseline is timed on a random sample and extrapolated; the same sample
checks that both give identical amounts: the vectorized provider cost equals
`calc_price(...).total_price` rounded half-even to the nano-USD, and the vectorized
price equals `PriceBook.quote(...).price`.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np
import pandas as pd
from genai_prices import Usage, calc_price

from bench.dataset import batches
from bench.generate import Workload
from bench.results import Measurement
from pricing_core.catalog.price_book import PriceBook
from pricing_core.catalog.vectorized import price_frame
from pricing_core.domain.costing import TokenCounts

NANO = Decimal("1e-9")
TARGET = 100.0


def run(workload: Workload, *, sample: int = 2000, repeat: int = 3) -> tuple[Measurement, dict]:
    n = min(workload.events, 1_000_000)
    frame = pd.concat(list(batches(replace(workload, events=n), n)), ignore_index=True)
    book = PriceBook(default_markup=Decimal("1.25"))
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        priced = price_frame(frame, book)
        times.append(time.perf_counter() - started)
    vectorized = statistics.median(times)

    rng = np.random.default_rng(workload.seed)
    rows = rng.choice(n, min(sample, n), replace=False)
    picked = frame.iloc[rows]
    usages = [
        (
            Usage(
                input_tokens=int(r.input_tokens),
                output_tokens=int(r.output_tokens),
                cache_read_tokens=int(r.cached_tokens),
            ),
            str(r.model),
            str(r.provider),
            r.created_at.to_pydatetime(),
        )
        for r in picked.itertuples(index=False)
    ]
    started = time.perf_counter()
    exact = [
        calc_price(u, model, provider_id=provider, genai_request_timestamp=at).total_price
        for u, model, provider, at in usages
    ]
    per_row = (time.perf_counter() - started) / len(usages)
    baseline = per_row * n

    mismatches = 0
    for k, (i, total) in enumerate(zip(rows, exact, strict=True)):
        r = picked.iloc[k]
        cost = int(total.quantize(NANO, ROUND_HALF_EVEN).scaleb(9))
        quote = book.quote(
            provider=str(r.provider),
            model=str(r.model),
            operation=str(r.operation),
            counts=TokenCounts(int(r.input_tokens), int(r.output_tokens), int(r.cached_tokens)),
            at=r.created_at.to_pydatetime(),
        )
        if (cost, int(quote.price.scaleb(9))) != (
            int(priced["provider_cost"].iloc[i]),
            int(priced["price"].iloc[i]),
        ):
            mismatches += 1
    speedup = baseline / vectorized if vectorized else None
    measurement = Measurement(
        what=f"vectorized pricing of {n:,} events (identical Decimal results on "
        f"{len(usages):,} sampled rows: {len(usages) - mismatches:,}/{len(usages):,})",
        value=round(vectorized, 3),
        unit="s",
        baseline=round(baseline, 1),
        baseline_unit="s (calc_price per row, extrapolated)",
        ratio=round(speedup, 1) if speedup else None,
        target=">= 100x faster, identical results",
        met=bool(speedup and speedup >= TARGET and mismatches == 0),
    )
    details = {
        "events": n,
        "vectorized_seconds": times,
        "calc_price_seconds_per_row": per_row,
        "sample": len(usages),
        "mismatches": mismatches,
    }
    return measurement, details
