"""refund_share: the credit taken back for a refunded part of a payment (pure)."""

from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing_core.billing.packages import CreditPackage
from pricing_core.billing.refunds import refund_share

NANO = Decimal("1e-9")


@pytest.mark.parametrize(
    ("total", "paid", "refunded", "expected"),
    [
        (Decimal("20"), 1799, 1799, Decimal("20")),
        (Decimal("20"), 1799, 0, Decimal("0")),
        (Decimal("20"), 1799, 900, Decimal("10.005558644")),  # 18000/1799 = 10.00555864369...
        (Decimal("175"), 13999, 1, Decimal("0.012500893")),  # 175/13999 = 0.01250089292...
        (Decimal("20"), 1799, 5000, Decimal("20")),  # never more than the whole credit
        (Decimal("5"), 0, 10, Decimal("0")),
    ],
)
def test_the_share_of_a_refund_is_the_refunded_fraction_of_the_credit(
    total, paid, refunded, expected
):
    assert refund_share(total, paid, refunded) == expected


@given(
    paid=st.integers(min_value=1, max_value=10**7),
    cuts=st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=8),
    total=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2),
)
def test_partial_refunds_taken_back_cumulatively_add_up_to_the_whole_credit(paid, cuts, total):
    refunded, taken = 0, Decimal(0)
    for cut in [*cuts, paid]:  # the last refund takes whatever is left
        step = min(cut, paid - refunded)
        expected_step = (total * (refunded + step) / paid).quantize(NANO, ROUND_HALF_EVEN) - (
            total * refunded / paid
        ).quantize(NANO, ROUND_HALF_EVEN)
        got = refund_share(total, paid, refunded + step) - refund_share(total, paid, refunded)
        assert got == expected_step
        taken += got
        refunded += step
    assert refunded == paid
    assert taken == total


@pytest.mark.parametrize(
    ("cents", "credits", "bonus", "per_dollar"),
    [
        (499, "5", "0", "0.9980"),
        (1799, "18", "2", "0.8995"),
        (3999, "40", "6", "0.8693"),
        (13999, "140", "35", "0.7999"),
    ],
)
def test_the_effective_price_per_dollar_of_credit_is_price_over_total_credit(
    cents, credits, bonus, per_dollar
):
    package = CreditPackage(
        "p", "p", 1, "P", cents, "usd", Decimal(credits), Decimal(bonus), False, True, 0
    )
    assert package.price_per_credit_dollar == Decimal(per_dollar)
    assert package.total_credit == Decimal(credits) + Decimal(bonus)
