"""`pricing-core holds expire` and `pricing-core limits set` from the command line."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from pricing_core.cli.main import app
from pricing_core.ledger.holds import HoldStatus, count_holds
from pricing_core.ledger.wallets import create_account, get_wallet
from pricing_core.limits.budgets import budget_report
from pricing_core.limits.rules import TokenLimitExceeded, list_limits
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


def test_limits_for_an_unknown_account_or_user_are_refused_and_listed_for_people(engine):
    runner = CliRunner()
    ghost = runner.invoke(app, ["limits", "set", "--account", "nobody", "--max-input-tokens", "9"])
    assert ghost.exit_code == 2
    assert "unknown account 'nobody'" in ghost.output
    create_account(engine, "acme", name="Acme", opening_credit=Decimal(1))
    stranger = runner.invoke(
        app, ["limits", "set", "--account", "acme", "--user", "eve", "--max-input-tokens", "9"]
    )
    assert stranger.exit_code == 2 and "no user 'eve' on account 'acme'" in stranger.output
    assert list_limits(engine) == []
    assert runner.invoke(app, ["limits", "list"]).output == "no limits stored\n"

    stored = runner.invoke(
        app,
        ["limits", "set", "--account", "acme", "--max-total-tokens", "12000",
         "--monthly-cost-cap", "100"],
    )  # fmt: skip
    expected = "account acme, every user, operation *: max total 12,000 tokens; monthly cap $100.00"
    assert stored.exit_code == 0 and stored.output == f"stored: {expected}\n"
    assert runner.invoke(app, ["limits", "list"]).output == f"{expected}\n"


def test_accounts_list_sorts_numbers_in_names_as_numbers(engine):
    for k in (1, 10, 100, 11, 2):
        create_account(engine, f"trace-user-{k}", name=f"trace-user-{k}", opening_credit=0)
    listed = CliRunner().invoke(app, ["accounts", "list"])
    assert listed.exit_code == 0, listed.output
    ids = [line.split("\t")[0] for line in listed.output.splitlines()]
    assert ids == [f"trace-user-{k}" for k in (1, 2, 10, 11, 100)]
    found = CliRunner().invoke(app, ["accounts", "list", "--search", "user-10"])
    assert [line.split("\t")[0] for line in found.output.splitlines()] == [
        "trace-user-10",
        "trace-user-100",
    ]
    assert "balance $0.00" in found.output


def test_set_balance_from_the_command_line_is_audited_and_replays_by_key(engine):
    create_account(engine, "acme", name="Acme", opening_credit=Decimal("3.25"))
    runner = CliRunner()
    args = ["accounts", "set-balance", "acme", "50", "--reason", "outage credit", "--key", "k1"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "adjustment $46.75" in done.output and "balance $50.00" in done.output
    again = runner.invoke(app, args)
    assert again.output.startswith("already applied:") and "balance $50.00" in again.output
    assert get_wallet(engine, "acme").balance == Decimal("50")
    refused = runner.invoke(app, ["accounts", "set-balance", "--reason", "x", "--", "acme", "-3"])
    assert refused.exit_code == 2 and "error: the target balance must be" in refused.output
    big = runner.invoke(app, ["accounts", "set-balance", "acme", "900", "--reason", "x"])
    assert big.exit_code == 2 and "confirm it" in big.output
    assert get_wallet(engine, "acme").balance == Decimal("50")


def test_the_standard_preset_applies_the_source_systems_defaults(engine):
    create_account(engine, "acme", name="Acme", user_id="acme", opening_credit=Decimal("50"))
    runner = CliRunner()
    applied = runner.invoke(app, ["limits", "preset", "standard"])
    assert applied.exit_code == 0, applied.output
    [row] = list_limits(engine)
    assert (row.account_id, row.operation) == ("", "*")
    assert (row.max_input_tokens, row.max_output_tokens, row.max_total_tokens) == (
        10_000,
        2_000,
        12_000,
    )
    assert (row.daily_cost_cap, row.monthly_cost_cap) == (Decimal(5), Decimal(100))
    with pytest.raises(TokenLimitExceeded, match="max_input_tokens"):
        authorize(
            engine, account_id="acme", user_id="acme", model="gpt-4o-mini",
            estimated_input_tokens=10_001, max_output_tokens=10, request_id="big",
        )  # fmt: skip
    authorize(
        engine, account_id="acme", user_id="acme", model="gpt-4o-mini",
        estimated_input_tokens=9_000, max_output_tokens=2_000, request_id="fits",
    )  # fmt: skip

    for_account = runner.invoke(app, ["limits", "preset", "standard", "--account", "acme"])
    assert for_account.exit_code == 0, for_account.output
    budget = budget_report(engine, "acme").budget
    assert (budget.monthly_limit, budget.thresholds, budget.block_at_limit) == (
        Decimal(100),
        (80, 100),
        False,
    )
    off = runner.invoke(app, ["limits", "preset", "off", "--account", "acme"])
    assert off.output == "off: limits removed\n"
    assert [r.account_id for r in list_limits(engine)] == [""]
    assert budget_report(engine, "acme").budget.monthly_limit is None
    unknown = runner.invoke(app, ["limits", "preset", "lenient"])
    assert unknown.exit_code == 2 and "presets: standard, off" in unknown.output


def test_flags_do_not_show_a_bool_placeholder_in_help():
    shown = CliRunner().invoke(app, ["import", "azure-trace", "--help"])
    flags = [line for line in shown.output.splitlines() if "--shift-to-now" in line]
    assert flags and "<bool>" not in flags[0]
