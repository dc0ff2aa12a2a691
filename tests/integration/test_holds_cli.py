"""`pricing-core holds expire` and `pricing-core limits set` from the command line."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from typer.testing import CliRunner

from pricing_core.cli.main import app
from pricing_core.ledger.holds import HoldStatus, count_holds
from pricing_core.ledger.wallets import create_account, get_wallet
from pricing_core.limits.rules import list_limits
from pricing_core.metering.authorize import authorize


def test_the_expire_command_expires_overdue_holds_and_frees_their_money(engine):
    create_account(engine, "acct", name="A", opening_credit=Decimal("1"))
    past = datetime.now(UTC) - timedelta(hours=2)
    for i in range(3):
        authorize(
            engine,
            account_id="acct",
            user_id="acct",
            model="gpt-4o-mini",
            estimated_input_tokens=100,
            max_output_tokens=100,
            request_id=f"r{i}",
            now=past,
        )
    assert get_wallet(engine, "acct").held > 0
    result = CliRunner().invoke(app, ["holds", "expire"])
    assert result.exit_code == 0 and "expired 3 holds" in result.output
    assert count_holds(engine, "acct")[HoldStatus.EXPIRED] == 3
    assert get_wallet(engine, "acct").held == 0


def test_limits_set_stores_an_operator_default_and_refuses_garbage(engine):
    ok = CliRunner().invoke(
        app,
        [
            "limits",
            "set",
            "--operation",
            "chat_message",
            "--max-input-tokens",
            "8000",
            "--daily-cost-cap",
            "5.25",
        ],
    )
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(app, ["limits", "set", "--daily-cost-cap", "1e999999"])
    assert bad.exit_code == 2 and "daily_cost_cap" in bad.output
    [row] = list_limits(engine)
    assert (row.account_id, row.operation, row.max_input_tokens, row.daily_cost_cap) == (
        "",
        "chat_message",
        8000,
        Decimal("5.25"),
    )
