"""charge path: rollups for the admin pages, and on PostgreSQL one server-side call
that records a priced usage event and one that places a hold

`platform_daily` (day x provider x model x operation, in stripes) and `account_daily`
(account x day) are written with `usage_daily` by every recording path and filled
here from it, so the admin pages read a few thousand rows instead of every
account's.

`pricing_record_usage(...)` does in one statement what `metering.record.record_on`
does in about eight: the idempotency probe, the conditional debit, the `usage` ledger
entry, the event, the chat totals and the daily rollup. Pricing and validation stay
in Python; the function gets the price and provider cost in nano-USD. It writes
nothing and answers with an outcome when Python's general path must decide instead
(already recorded, a plan in effect, a budget to check) or when the charge is
refused (no such account, not enough balance). `pricing_place_hold(...)` does the
same for `authorize` when no spending limit or budget applies. SQLite has no
functions: there the general path runs in one `BEGIN IMMEDIATE` transaction.

Revision ID: 0008_charge_function
Revises: 0007_admin
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_charge_function"
down_revision: str | Sequence[str] | None = "0007_admin"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECORD_USAGE = """
CREATE OR REPLACE FUNCTION pricing_record_usage(
    p_account varchar, p_request varchar, p_user varchar, p_chat varchar,
    p_operation varchar, p_provider varchar, p_model varchar,
    p_input bigint, p_output bigint, p_cached bigint,
    p_provider_cost bigint, p_price bigint, p_price_version varchar,
    p_basis varchar, p_status varchar, p_day date, p_created_at timestamptz,
    p_metadata json, p_floor bigint, p_plan_check boolean, p_budget_check boolean,
    p_hold varchar, p_stripe integer, p_now timestamptz,
    OUT outcome text, OUT event_id bigint, OUT entry_id bigint,
    OUT balance_after bigint, OUT available bigint
) LANGUAGE plpgsql AS $fn$
-- outcome: 'charged' (written), or nothing written and
--   'present'   the request id is already recorded (Python replays or refuses it)
--   'plan'      a subscription is in effect at p_created_at (Python's plan rules)
--   'budgets'   the account has a budget whose alerts Python must check
--   'unknown'   no such account
--   'short'     balance - held - p_price < p_floor (available: balance - held)
--   'hold'      p_hold is not an active, unexpired hold of the account
-- Amounts are nano-USD. p_floor NULL allows an overdraft. With p_hold, the event
-- settles that hold: it closes as settled and its amount leaves wallets.held.
DECLARE
    v_held bigint := 0;
BEGIN
    PERFORM 1 FROM usage_events WHERE account_id = p_account AND request_id = p_request;
    IF FOUND THEN
        outcome := 'present';
        RETURN;
    END IF;
    IF p_plan_check AND EXISTS (
        SELECT 1 FROM subscriptions
        WHERE account_id = p_account AND started_at <= p_created_at
          AND (ended_at IS NULL OR ended_at > p_created_at)
    ) THEN
        outcome := 'plan';
        RETURN;
    END IF;
    IF p_budget_check AND EXISTS (
        SELECT 1 FROM budgets
        WHERE account_id = p_account AND monthly_limit IS NOT NULL
    ) THEN
        outcome := 'budgets';
        RETURN;
    END IF;
    IF p_hold IS NOT NULL THEN
        -- the wallet first, as every writer of an account locks it: no deadlocks
        PERFORM 1 FROM wallets WHERE account_id = p_account FOR UPDATE;
        UPDATE holds SET status = 'settled', closed_at = p_now
         WHERE account_id = p_account AND id = p_hold AND status = 'active'
           AND expires_at > p_now
        RETURNING amount INTO v_held;
        IF NOT FOUND THEN
            outcome := 'hold';
            RETURN;
        END IF;
    END IF;
    IF p_price > 0 OR v_held > 0 THEN
        -- version and updated_at move as the general path's two updates move them
        UPDATE wallets
           SET balance = balance - p_price, held = held - v_held,
               version = version + (p_price > 0)::int + (v_held > 0)::int,
               updated_at = CASE WHEN p_price > 0 THEN p_now ELSE updated_at END
         WHERE account_id = p_account
           AND (p_floor IS NULL OR balance - held - p_price >= p_floor)
        RETURNING balance INTO balance_after;
        IF NOT FOUND THEN
            SELECT balance - held INTO available FROM wallets WHERE account_id = p_account;
            outcome := CASE WHEN FOUND THEN 'short' ELSE 'unknown' END;
            RETURN;
        END IF;
    END IF;
    IF p_price > 0 THEN
        INSERT INTO ledger_entries
            (account_id, kind, amount, balance_after, idempotency_key, reference, created_at)
        VALUES (p_account, 'usage', -p_price, balance_after, 'usage:' || p_request,
                p_request, p_now)
        RETURNING id INTO entry_id;
    ELSIF v_held = 0 THEN
        SELECT balance INTO balance_after FROM wallets WHERE account_id = p_account;
        IF NOT FOUND THEN
            outcome := 'unknown';
            RETURN;
        END IF;
    END IF;
    INSERT INTO usage_events
        (account_id, request_id, user_id, chat_id, operation, provider, model,
         input_tokens, output_tokens, cached_tokens, provider_cost, price,
         price_version, charge_basis, status, ledger_entry_id, day, created_at, metadata,
         hold_id, exceeded_hold)
    VALUES (p_account, p_request, p_user, p_chat, p_operation, p_provider, p_model,
            p_input, p_output, p_cached, p_provider_cost, p_price,
            p_price_version, p_basis, p_status, entry_id, p_day, p_created_at, p_metadata,
            p_hold, CASE WHEN p_hold IS NULL THEN NULL ELSE p_price > v_held END)
    RETURNING id INTO event_id;
    IF p_chat IS NOT NULL THEN
        INSERT INTO chats AS c
            (account_id, chat_id, user_id, requests, input_tokens, output_tokens,
             provider_cost, cost, first_at, last_at)
        VALUES (p_account, p_chat, p_user, 1, p_input, p_output, p_provider_cost, p_price,
                p_created_at, p_created_at)
        ON CONFLICT (account_id, chat_id) DO UPDATE SET
            requests = c.requests + 1,
            input_tokens = c.input_tokens + excluded.input_tokens,
            output_tokens = c.output_tokens + excluded.output_tokens,
            provider_cost = c.provider_cost + excluded.provider_cost,
            cost = c.cost + excluded.cost,
            first_at = least(c.first_at, excluded.first_at),
            last_at = greatest(c.last_at, excluded.last_at);
    END IF;
    INSERT INTO usage_daily AS d
        (day, account_id, user_id, provider, model, operation, requests,
         input_tokens, output_tokens, cached_tokens, provider_cost, price)
    VALUES (p_day, p_account, p_user, p_provider, p_model, p_operation, 1,
            p_input, p_output, p_cached, p_provider_cost, p_price)
    ON CONFLICT (account_id, day, user_id, provider, model, operation) DO UPDATE SET
        requests = d.requests + 1,
        input_tokens = d.input_tokens + excluded.input_tokens,
        output_tokens = d.output_tokens + excluded.output_tokens,
        cached_tokens = d.cached_tokens + excluded.cached_tokens,
        provider_cost = d.provider_cost + excluded.provider_cost,
        price = d.price + excluded.price;
    INSERT INTO platform_daily AS pd
        (day, provider, model, operation, stripe, requests, input_tokens, output_tokens,
         cached_tokens, provider_cost, price)
    VALUES (p_day, p_provider, p_model, p_operation, p_stripe, 1, p_input, p_output,
            p_cached, p_provider_cost, p_price)
    ON CONFLICT (day, provider, model, operation, stripe) DO UPDATE SET
        requests = pd.requests + 1,
        input_tokens = pd.input_tokens + excluded.input_tokens,
        output_tokens = pd.output_tokens + excluded.output_tokens,
        cached_tokens = pd.cached_tokens + excluded.cached_tokens,
        provider_cost = pd.provider_cost + excluded.provider_cost,
        price = pd.price + excluded.price;
    INSERT INTO account_daily AS ad
        (account_id, day, requests, input_tokens, output_tokens, cached_tokens,
         provider_cost, price)
    VALUES (p_account, p_day, 1, p_input, p_output, p_cached, p_provider_cost, p_price)
    ON CONFLICT (account_id, day) DO UPDATE SET
        requests = ad.requests + 1,
        input_tokens = ad.input_tokens + excluded.input_tokens,
        output_tokens = ad.output_tokens + excluded.output_tokens,
        cached_tokens = ad.cached_tokens + excluded.cached_tokens,
        provider_cost = ad.provider_cost + excluded.provider_cost,
        price = ad.price + excluded.price;
    outcome := 'charged';
END
$fn$
"""


PLACE_HOLD = """
CREATE OR REPLACE FUNCTION pricing_place_hold(
    p_id varchar, p_account varchar, p_user varchar, p_request varchar, p_amount bigint,
    p_expires_at timestamptz, p_now timestamptz, p_operation varchar, p_provider varchar,
    p_model varchar, p_chat varchar, p_input bigint, p_max_output bigint, p_method varchar,
    p_enforce boolean, p_minimum bigint,
    OUT outcome text, OUT available bigint, OUT balance bigint
) LANGUAGE plpgsql AS $fn$
-- outcome: 'placed' (the hold is written, the account's overdue holds expired), or
-- nothing written and
--   'general'  Python's general path must decide: the user is not the account's, the
--              request id has a hold or an event already, or (p_enforce) a spending
--              limit or a budget could apply
--   'unknown'  no such account
--   'short'    (p_minimum not NULL) the available balance, after expiring overdue
--              holds, does not cover p_amount or is below p_minimum
-- Amounts are nano-USD.
DECLARE
    v_expired bigint;
BEGIN
    SELECT w.balance, w.balance - w.held INTO balance, available
      FROM wallets w WHERE w.account_id = p_account FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'unknown';
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM users WHERE id = p_user AND account_id = p_account)
       OR EXISTS (SELECT 1 FROM holds WHERE account_id = p_account AND request_id = p_request)
       OR EXISTS (
           SELECT 1 FROM usage_events WHERE account_id = p_account AND request_id = p_request
       )
       OR (p_enforce AND (
           EXISTS (SELECT 1 FROM spending_limits WHERE account_id IN ('', p_account))
           OR EXISTS (
               SELECT 1 FROM budgets WHERE account_id = p_account AND monthly_limit IS NOT NULL
           )
       )) THEN
        outcome := 'general';
        RETURN;
    END IF;
    SELECT coalesce(sum(amount), 0) INTO v_expired FROM holds
     WHERE account_id = p_account AND status = 'active' AND expires_at <= p_now;
    available := available + v_expired;
    IF p_minimum IS NOT NULL AND (available - p_amount < 0 OR available < p_minimum) THEN
        outcome := 'short';
        RETURN;
    END IF;
    UPDATE holds SET status = 'expired', closed_at = p_now
     WHERE account_id = p_account AND status = 'active' AND expires_at <= p_now;
    -- version moves as the general path's two updates (expiry, hold) move it
    UPDATE wallets
       SET held = held - v_expired + p_amount, version = version + (v_expired > 0)::int + 1
     WHERE account_id = p_account;
    INSERT INTO holds
        (id, account_id, user_id, request_id, amount, status, expires_at, created_at,
         operation, provider, model, chat_id, input_tokens, max_output_tokens,
         estimate_method)
    VALUES (p_id, p_account, p_user, p_request, p_amount, 'active', p_expires_at, p_now,
            p_operation, p_provider, p_model, p_chat, p_input, p_max_output, p_method);
    outcome := 'placed';
END
$fn$
"""


SUMS = ("requests", "input_tokens", "output_tokens", "cached_tokens", "provider_cost", "price")


def _sums() -> list[sa.Column]:
    return [sa.Column(name, sa.BigInteger(), nullable=False) for name in SUMS]


def upgrade() -> None:
    op.create_table(
        "platform_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("stripe", sa.Integer(), nullable=False),
        *_sums(),
        sa.PrimaryKeyConstraint(
            "day", "provider", "model", "operation", "stripe", name=op.f("pk_platform_daily")
        ),
    )
    op.create_table(
        "account_daily",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *_sums(),
        sa.PrimaryKeyConstraint("account_id", "day", name=op.f("pk_account_daily")),
    )
    op.create_index("ix_account_daily_day", "account_daily", ["day"])
    totals = ", ".join(f"SUM({name})" for name in SUMS)
    # existing usage goes to stripe 0: readers sum the stripes, any stripe is exact
    op.execute(
        f"INSERT INTO platform_daily (day, provider, model, operation, stripe, {', '.join(SUMS)}) "
        f"SELECT day, provider, model, operation, 0, {totals} FROM usage_daily "
        "GROUP BY day, provider, model, operation"
    )
    op.execute(
        f"INSERT INTO account_daily (account_id, day, {', '.join(SUMS)}) "
        f"SELECT account_id, day, {totals} FROM usage_daily GROUP BY account_id, day"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(RECORD_USAGE)
        op.execute(PLACE_HOLD)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS pricing_record_usage("
            "varchar, varchar, varchar, varchar, varchar, varchar, varchar, bigint, bigint, "
            "bigint, bigint, bigint, varchar, varchar, varchar, date, timestamptz, json, "
            "bigint, boolean, boolean, varchar, integer, timestamptz)"
        )
        op.execute(
            "DROP FUNCTION IF EXISTS pricing_place_hold(varchar, varchar, varchar, varchar, "
            "bigint, timestamptz, timestamptz, varchar, varchar, varchar, varchar, bigint, "
            "bigint, varchar, boolean, bigint)"
        )
    op.drop_index("ix_account_daily_day", table_name="account_daily")
    op.drop_table("account_daily")
    op.drop_table("platform_daily")
