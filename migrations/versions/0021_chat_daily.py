"""chat_daily: an account's usage per day, chat and API key

Explore's questions by chat or by API key grouped the account's events in the
database: for the busiest account's 90 days at 10M events that read 100,000 events,
60-100 ms (bench B3). This rollup holds the usage of each (account, local day, chat,
API key), "" for no chat or no key, with the sums the other daily rollups keep; a chat
is mostly one day's, so the busiest account has a row per chat, not per event.

Every recording path adds to it in its own transaction, with the other rollups
(`metering.rollups`; the charge function below, which takes the key from the event's
metadata: only a text value under "api_key" is a key, as `usage_event.api_key_of`
says). Existing events are summed here under a lock that holds their writers off.

Revision ID: 0021_chat_daily
Revises: 0020_charge_reads_lines
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0021_chat_daily"
down_revision: str | Sequence[str] | None = "0020_charge_reads_lines"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUMS = ("requests", "input_tokens", "output_tokens", "cached_tokens", "provider_cost", "price")
KEY = {
    "postgresql": (
        "CASE WHEN json_typeof(metadata->'api_key') = 'string' "
        "THEN metadata->>'api_key' ELSE '' END"
    ),
    "sqlite": (
        "CASE WHEN json_type(metadata, '$.api_key') = 'text' "
        "THEN json_extract(metadata, '$.api_key') ELSE '' END"
    ),
}
CHARGED = """    outcome := 'charged';"""
CHAT_DAILY_ADDED = """    INSERT INTO chat_daily AS cd
        (account_id, day, chat_id, api_key, requests, input_tokens, output_tokens,
         cached_tokens, provider_cost, price)
    VALUES (p_account, p_day, coalesce(p_chat, ''),
            CASE WHEN json_typeof(p_metadata->'api_key') = 'string'
                 THEN p_metadata->>'api_key' ELSE '' END,
            1, p_input, p_output, p_cached, p_provider_cost, p_price)
    ON CONFLICT (account_id, day, chat_id, api_key) DO UPDATE SET
        requests = cd.requests + 1,
        input_tokens = cd.input_tokens + excluded.input_tokens,
        output_tokens = cd.output_tokens + excluded.output_tokens,
        cached_tokens = cd.cached_tokens + excluded.cached_tokens,
        provider_cost = cd.provider_cost + excluded.provider_cost,
        price = cd.price + excluded.price;
    outcome := 'charged';"""


def _previous() -> ModuleType:
    path = Path(__file__).with_name("0020_charge_reads_lines.py")
    spec = importlib.util.spec_from_file_location("charge_reads_lines_0020", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    op.create_table(
        "chat_daily",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("api_key", sa.String(length=255), nullable=False),
        *(sa.Column(s, sa.BigInteger(), nullable=False) for s in SUMS),
        sa.PrimaryKeyConstraint(
            "account_id", "day", "chat_id", "api_key", name=op.f("pk_chat_daily")
        ),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("LOCK TABLE usage_events IN SHARE ROW EXCLUSIVE MODE")
    sums = ", ".join(f"SUM({s})" for s in SUMS[1:])
    op.execute(
        f"INSERT INTO chat_daily (account_id, day, chat_id, api_key, {', '.join(SUMS)}) "
        f"SELECT account_id, day, chat_id, api_key, COUNT(*), {sums} FROM ("
        f"SELECT account_id, day, COALESCE(chat_id, '') AS chat_id, {KEY[dialect]} AS api_key, "
        f"{', '.join(SUMS[1:])} FROM usage_events) AS e "
        "GROUP BY account_id, day, chat_id, api_key"
    )
    if dialect == "postgresql":
        previous = _previous().record_usage()
        assert previous.count(CHARGED) == 1
        op.execute(previous.replace(CHARGED, CHAT_DAILY_ADDED))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_previous().record_usage())
    op.drop_table("chat_daily")
