"""charge function: a debit across a balance line goes to the general path

`pricing_record_usage` gets the account's low-balance lines (`ledger.crossings`) and,
when its debit crosses one, raises instead of committing, so Python's general path
records the charge and its low-balance notification in one transaction (the
notifications issue's outbox rule). Otherwise the function is 0008's.

Revision ID: 0013_charge_lines
Revises: 0012_notifications
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0013_charge_lines"
down_revision: str | Sequence[str] | None = "0012_notifications"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_SIGNATURE = (
    "varchar, varchar, varchar, varchar, varchar, varchar, varchar, bigint, bigint, bigint, "
    "bigint, bigint, varchar, varchar, varchar, date, timestamptz, json, bigint, boolean, "
    "boolean, varchar, integer, timestamptz"
)

RECORD_USAGE = """
CREATE OR REPLACE FUNCTION pricing_record_usage(
    p_account varchar, p_request varchar, p_user varchar, p_chat varchar,
    p_operation varchar, p_provider varchar, p_model varchar,
    p_input bigint, p_output bigint, p_cached bigint,
    p_provider_cost bigint, p_price bigint, p_price_version varchar,
    p_basis varchar, p_status varchar, p_day date, p_created_at timestamptz,
    p_metadata json, p_floor bigint, p_plan_check boolean, p_budget_check boolean,
    p_hold varchar, p_stripe integer, p_now timestamptz, p_lines bigint[],
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
-- p_lines: the account's low-balance lines (nano-USD); a debit that crosses one
-- raises 'pricing: use the general path', which undoes the statement.
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
        -- a debit across a balance line: undo it all, so Python's general path
        -- writes the charge and its notification in one transaction
        IF p_price > 0 AND EXISTS (
            SELECT 1 FROM unnest(p_lines) AS line
            WHERE balance_after + p_price >= line AND line > balance_after
        ) THEN
            RAISE EXCEPTION 'pricing: use the general path (a balance line is crossed)';
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


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION IF EXISTS pricing_record_usage({OLD_SIGNATURE})")
    op.execute(RECORD_USAGE)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION IF EXISTS pricing_record_usage({OLD_SIGNATURE}, bigint[])")
    path = Path(__file__).with_name("0008_charge_function.py")
    spec = importlib.util.spec_from_file_location("charge_function_0008", path)
    assert spec is not None and spec.loader is not None
    previous = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(previous)
    op.execute(previous.RECORD_USAGE)
