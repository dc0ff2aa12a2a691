"""Pure parts of analytics: exact nano-USD strings, periods, aggregations."""

import dataclasses
from collections import defaultdict
from datetime import date
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing_core import analytics
from pricing_core.analytics.explore import OTHER, TOP_GROUPS, Metric, Question, _answer, _columns
from pricing_core.domain.money import nanos_to_usd, printf_usd_format, usd_str


@given(st.integers(min_value=-(10**18), max_value=10**18))
def test_nanos_are_written_exactly_as_usd_str_writes_them(nanos):
    assert analytics.nanos_str(nanos) == usd_str(nanos_to_usd(nanos))


@pytest.mark.parametrize(
    ("day", "granularity", "start"),
    [
        (date(2025, 3, 20), "day", date(2025, 3, 20)),
        (date(2025, 3, 20), "week", date(2025, 3, 17)),  # a Thursday -> Monday
        (date(2025, 3, 17), "week", date(2025, 3, 17)),
        (date(2025, 3, 2), "week", date(2025, 2, 24)),  # a Sunday -> the Monday before
        (date(2025, 3, 20), "month", date(2025, 3, 1)),
    ],
)
def test_periods_start_on_the_day_the_monday_or_the_first(day, granularity, start):
    assert analytics.period_start(day, analytics.Granularity(granularity)) == start


def report(rows):
    frame = pd.DataFrame(rows, columns=analytics.DAILY_COLUMNS)
    return analytics.UsageReport("a", date(2025, 1, 1), date(2025, 3, 31), frame)


ROWS = [
    (date(2025, 3, 3), "openai", "gpt-4o", "chat_message", 2, 100, 10, 0, Decimal("0.000000001")),
    (date(2025, 3, 4), "openai", "gpt-4o", "code_completion", 1, 50, 5, 0, Decimal("0.3")),
    (date(2025, 3, 10), "google", "gemini-2.5-flash", "chat_message", 3, 10, 1, 0, Decimal("0.1")),
]  # fmt: skip


def test_series_shares_and_model_table_are_exact():
    r = report(ROWS)
    weekly = analytics.usage_series(r, granularity="week", by="model")
    assert weekly.values.tolist() == [
        [date(2025, 3, 3), "gpt-4o", Decimal("0.300000001")],
        [date(2025, 3, 10), "gemini-2.5-flash", Decimal("0.1")],
    ]
    share = analytics.usage_share(r, by="operation", measure="tokens")
    assert share.values.tolist() == [  # 68.75 and 31.25 %, half-even to 0.1
        ["chat_message", 121, Decimal("68.8")],
        ["code_completion", 55, Decimal("31.2")],
    ]
    table = analytics.model_table(r)
    assert table["model"].tolist() == ["gpt-4o", "gemini-2.5-flash"]
    assert table["avg_cost"].tolist() == [Decimal("0.100000000"), Decimal("0.033333333")]
    assert analytics.report_totals(r) == (6, 176, Decimal("0.400000001"))


def test_an_empty_report_gives_empty_frames():
    r = report([])
    assert analytics.usage_series(r).empty and analytics.usage_share(r).empty
    assert analytics.model_table(r).empty
    assert analytics.report_totals(r) == (0, 0, Decimal(0))


def test_filtering_a_report_keeps_only_the_chosen_models_and_operations():
    r = analytics.filter_report(report(ROWS), models=["gpt-4o"], operations=["chat_message"])
    assert len(r.daily) == 1 and r.daily["requests"].tolist() == [2]


@pytest.mark.parametrize(
    ("amounts", "fmt"),
    [
        ([Decimal("12.5"), Decimal("0.5")], "$%.2f"),
        ([Decimal("0.000288"), Decimal("3")], "$%.7f"),  # 4 significant digits: 0.0002880
        ([Decimal("0.01")], "$%.2f"),
        ([Decimal("0.009")], "$%.6f"),
        ([Decimal("0"), Decimal("0")], "$%.2f"),
        ([Decimal("0.000000001")], "$%.9f"),
    ],
)
def test_a_sortable_money_column_keeps_four_significant_digits_below_a_cent(amounts, fmt):
    assert printf_usd_format(amounts) == fmt


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("0"), "$0.00"),
        (Decimal("0.0026"), "$0.0026"),
        (Decimal("0.00042"), "$0.00042"),
        (Decimal("-0.004"), "-$0.004"),
        (Decimal("0.01"), "$0.01"),
        (Decimal("0.126"), "$0.13"),
        (Decimal("1234.5"), "$1,234.50"),
    ],
)
def test_spend_totals_have_two_decimals_but_never_hide_a_sub_cent_spend(amount, text):
    from pricing_core.domain.money import format_money

    assert format_money(amount) == text


def test_value_labels_keep_sub_cent_digits_for_cost_and_separators_for_tokens():
    from decimal import Decimal

    from pricing_core.analytics import Measure, value_labels

    assert value_labels([Decimal("0.00042"), Decimal("12.5")], Measure.COST) == [
        "$0.00042",
        "$12.50",
    ]
    assert value_labels([1234567], "tokens") == ["1,234,567"]


def test_a_new_explore_question_replaces_the_old_ones_url_and_keeps_other_parameters():
    from datetime import date

    from pricing_core.analytics.explore import Group, Question, replace_url_params

    before = {"account": ["ada"], "sub": ["model"], "f_model": ["gpt-4o", "gpt-4o-mini"]}
    question = Question(date(2026, 11, 1), date(2026, 11, 2), group=Group.OPERATION,
                        filters={Group.USER: ("u1",)})  # fmt: skip
    after = replace_url_params(before, question)
    assert after["account"] == ["ada"] and "sub" not in after and "f_model" not in after
    assert after["f_user"] == ["u1"] and after["group"] == ["operation"]
    assert after["from"] == ["2026-11-01"] and after["to"] == ["2026-11-02"]


def test_explore_sums_groups_past_the_costliest_twelve_as_other_and_runs_totals():
    days = [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
    rows = []
    for n in range(TOP_GROUPS + 3):  # m03 ties m02 for the last place kept: m02 wins
        price = 10 * (n + 1) if n != 3 else 30
        for k, day in enumerate(days[:2] if n % 2 else days[1:]):
            rows.append({"period": day, "model": f"m{n:02d}", "requests": 1 + k,
                         "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0,
                         "provider_cost": 0, "price": price})  # fmt: skip
    frame = pd.DataFrame(rows)
    q = Question(days[0], days[-1], Metric.REQUESTS)
    answer = _answer(q, _columns(frame), "test")
    spend = frame.groupby("model")["price"].sum()
    ranked = sorted(spend.index, key=lambda m: (-spend[m], m))
    kept = set(ranked[:TOP_GROUPS])
    assert {"m00", "m01", "m03"}.isdisjoint(kept) and "m02" in kept
    want: dict[tuple[date, str], int] = defaultdict(int)
    for r in rows:
        want[r["period"], r["model"] if r["model"] in kept else OTHER] += r["requests"]
    got = {(p, g): v for p, g, _, v in answer.points.itertuples(index=False)}
    assert got == dict(want) and answer.total == frame["requests"].sum()
    running = _answer(dataclasses.replace(q, cumulative=True), _columns(frame), "test").points
    for group in {g for _, g in want}:
        mine = running[running["group"] == group]
        firsts = [d for d in days if (d, group) in want]
        expected = [sum(want.get((d, group), 0) for d in days if d <= day)
                    for day in days if day >= firsts[0]]  # fmt: skip
        assert mine["value"].tolist() == expected, group
