"""Gradual rollout of a feature flag (budget enforcement, billing) across accounts.

A rollout is written as a setting:

- `all`: every account (the default);
- `none`: no account;
- `created_after:YYYY-MM-DD`: accounts created on or after that day (UTC);
- `percent:N`: N % of accounts (0..100), chosen by a stable hash of the account id,
  so an account stays in or out as N grows.

A grace period of G days shows enforcement's would-be refusals (a banner, an
`X-Pricing-Grace` header) without refusing, for the first G days after the later of
the account's creation and the day enforcement was switched on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Literal


class Stage(StrEnum):
    """Where an account stands with a flag."""

    OFF = "off"  # not in the rollout's cohort
    GRACE = "grace"  # in the cohort, within the grace period: show, never refuse
    ON = "on"  # in the cohort, enforced


def bucket(account_id: str) -> int:
    """The account's stable bucket, 0..99 (SHA-256 of the id)."""
    return int.from_bytes(hashlib.sha256(account_id.encode()).digest()[:8], "big") % 100


@dataclass(frozen=True, slots=True)
class Rollout:
    """A parsed rollout setting. Raises ValueError from `parse` for a bad one."""

    mode: Literal["all", "none", "created_after", "percent"]
    since: date | None = None
    percent: int | None = None

    @classmethod
    def parse(cls, text: str) -> Rollout:
        value = text.strip().lower()
        if value in ("all", "none"):
            return cls(value)  # type: ignore[arg-type]
        kind, _, arg = value.partition(":")
        if kind == "created_after":
            try:
                return cls("created_after", since=date.fromisoformat(arg))
            except ValueError:
                pass
        elif kind == "percent" and arg.isdigit() and 0 <= int(arg) <= 100:
            return cls("percent", percent=int(arg))
        raise ValueError(
            f"bad rollout {text!r}: use all, none, created_after:YYYY-MM-DD or percent:0..100"
        )

    @property
    def everyone(self) -> bool:
        return self.mode == "all"

    def includes(self, account_id: str, created_at: datetime) -> bool:
        """Whether the account is in the cohort."""
        if self.mode == "created_after":
            assert self.since is not None
            return created_at.astimezone(UTC).date() >= self.since
        if self.mode == "percent":
            assert self.percent is not None
            return bucket(account_id) < self.percent
        return self.mode == "all"


def stage(
    rollout: Rollout,
    account_id: str,
    created_at: datetime,
    *,
    now: datetime,
    grace_days: int = 0,
    started_on: date | None = None,
) -> tuple[Stage, datetime | None]:
    """(stage, end of the grace period or None) of one account.

    `started_on`: the day (UTC) enforcement was switched on for the cohort; grace
    counts from the later of it and the account's creation."""
    if not rollout.includes(account_id, created_at):
        return Stage.OFF, None
    if grace_days <= 0:
        return Stage.ON, None
    start = created_at.astimezone(UTC)
    if started_on is not None:
        start = max(start, datetime(started_on.year, started_on.month, started_on.day, tzinfo=UTC))
    ends = start + timedelta(days=grace_days)
    return (Stage.GRACE if now < ends else Stage.ON), ends
