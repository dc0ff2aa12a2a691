"""The notification tables (on `schema.metadata`): the outbox, each user's preferences,
and the scheduled jobs' runs."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Index, Integer, String, Table, Text

from pricing_core.adapters.schema import BigId, ShortId, metadata
from pricing_core.adapters.types import NanoUSD, UTCDateTime

# One row per notification, written in the transaction of the event that causes it.
# `key` is unique per (account or admins, kind, period or crossing): however many
# charges cross a line at once, one row exists, so one message goes out.
notifications = Table(
    "notifications",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False, unique=True),
    Column("kind", String(40), nullable=False),
    Column("account_id", ShortId),  # None: for the admins
    Column("payload", JSON, nullable=False),  # the figures the templates show
    Column("status", String(16), nullable=False),  # pending | sent | failed | skipped
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", String(500)),
    Column("recipients", Text),  # who it went to, comma-separated
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Index("ix_notifications_due", "status", "next_attempt_at"),
    Index("ix_notifications_created", "created_at"),
)

# A user's choice per kind (no row: on). Admin kinds only reach admins.
notification_preferences = Table(
    "notification_preferences",
    metadata,
    Column("user_id", ShortId, primary_key=True),
    Column("kind", String(40), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("threshold", NanoUSD),  # low_balance: the user's own line instead of the default
    Column("updated_at", UTCDateTime, nullable=False),
)

# One row per (job, scheduled time): the first scheduler to insert it runs the job,
# so two schedulers side by side never run a job twice for one schedule.
job_runs = Table(
    "job_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("job", String(40), nullable=False),
    Column("slot", String(40), nullable=False),  # the scheduled time, ISO, or "once:<uuid>"
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("outcome", String(16)),  # ok | failed
    Column("detail", String(1000)),
    Index("uq_job_runs_job_slot", "job", "slot", unique=True),
    Index("ix_job_runs_job_started", "job", "started_at"),
)
