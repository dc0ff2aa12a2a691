"""The schema stays distributable by account (Citus): every table that grows with
usage carries account_id in its primary key or in a unique constraint, so its rows
and its uniqueness checks live on one account's shard."""

import importlib
import pkgutil

import pytest
import sqlalchemy as sa

import pricing_core
from pricing_core.adapters import schema

# Tables that grow with traffic: must be distributed by account_id.
GROWS_WITH_USAGE = {
    "usage_events",
    "ledger_entries",
    "usage_daily",
    "chats",
    "holds",
    "wallets",
    "budget_alerts",
    "plan_usage",
    "subscriptions",
}
# Tables with an account_id column that are not distributed by it, and why.
NOT_DISTRIBUTED = {
    "users": "keyed by the global user id (sign-in looks users up by id and email)",
    "audit_log": "the operator's log; account_id is optional (actions on no account)",
    "stripe_events": "Stripe's webhook log, deduplicated by Stripe's global event id before "
    "the account is known; grows with payments, not with usage",
    "notifications": "the outbox, deduplicated by a global key; account_id is optional "
    "(admin reports) and rows grow with crossings and alerts, not with usage",
    "topup_attempts": "the log of off-session payment attempts, read by day for the admins' "
    "payment metrics; grows with payments (a few a month per account), not with usage",
}


def all_tables() -> dict[str, sa.Table]:
    for module in pkgutil.walk_packages(pricing_core.__path__, "pricing_core."):
        importlib.import_module(module.name)  # tables defined anywhere
    return dict(schema.metadata.tables)


def keys_of(table: sa.Table) -> list[set[str]]:
    keys = [{c.name for c in table.primary_key.columns}]
    keys += [
        {c.name for c in constraint.columns}
        for constraint in table.constraints
        if isinstance(constraint, sa.UniqueConstraint)
    ]
    keys += [{c.name for c in index.columns} for index in table.indexes if index.unique]
    return keys


def test_the_tables_that_grow_with_usage_all_exist():
    assert set(all_tables()) >= GROWS_WITH_USAGE


@pytest.mark.parametrize(
    "name",
    sorted(
        GROWS_WITH_USAGE
        | {n for n, t in all_tables().items() if "account_id" in t.c and n not in NOT_DISTRIBUTED}
    ),
)
def test_every_table_that_grows_with_usage_has_account_id_in_its_primary_key_or_a_unique_key(
    name,
):
    table = all_tables()[name]
    assert "account_id" in table.c, f"{name} has no account_id column"
    assert any("account_id" in key for key in keys_of(table)), (
        f"{name}: no primary key or unique constraint includes account_id: {keys_of(table)}"
    )
