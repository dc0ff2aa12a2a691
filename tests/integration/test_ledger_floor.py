"""The debit floor compares money in the same unit as the wallet (nano-USD)."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from pricing_core.adapters.storage import run_write
from pricing_core.domain.errors import InsufficientBalance
from pricing_core.ledger.wallets import EntryKind, create_account, get_wallet, post_entry


@pytest.mark.parametrize(("debit", "refused"), [("5", False), ("5.000000001", True), ("6", True)])
def test_a_debit_beyond_the_available_balance_is_refused(engine, debit, refused):
    create_account(engine, "a", name="A", opening_credit=Decimal(5))

    def work(conn):
        return post_entry(
            conn,
            account_id="a",
            amount=-Decimal(debit),
            kind=EntryKind.USAGE,
            idempotency_key="k",
            now=datetime.now(UTC),
        )

    if refused:
        with pytest.raises(InsufficientBalance, match="available 5"):
            run_write(engine, work)
        assert get_wallet(engine, "a").balance == Decimal(5)
    else:
        run_write(engine, work)
        assert get_wallet(engine, "a").balance == 0
