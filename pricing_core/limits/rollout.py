"""Which accounts the enforcement and billing flags reach now (`domain.rollout`).
What enforcement would refuse during a grace period: `metering.grace`.

Settings: `PRICING_ENABLE_BUDGET_ENFORCEMENT` / `PRICING_ENABLE_BILLING` switch a flag
off for everyone; when on, `PRICING_ENFORCEMENT_ROLLOUT` / `PRICING_BILLING_ROLLOUT`
choose the accounts, and `PRICING_ENFORCEMENT_GRACE_DAYS` (counted from the later of
the account's creation and `PRICING_ENFORCEMENT_STARTED_ON`) shows would-be
refusals without refusing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import accounts
from pricing_core.config import get_settings
from pricing_core.domain.errors import UnknownAccount
from pricing_core.domain.rollout import Rollout, Stage, stage

# A parsed rollout is immutable and settings change rarely: the Integrity page asks
# for every account, which must not parse the same setting ten thousand times.
_parse = lru_cache(maxsize=32)(Rollout.parse)


def enforcement_is_uniform() -> bool:
    """True when every account gets the same enforcement (no per-account read)."""
    settings = get_settings()
    return not settings.enable_budget_enforcement or (
        _parse(settings.enforcement_rollout).everyone and settings.enforcement_grace_days == 0
    )


def _created_at(conn: Connection, account_id: str) -> datetime:
    created = conn.execute(
        select(accounts.c.created_at).where(accounts.c.id == account_id)
    ).scalar_one_or_none()
    if created is None:
        raise UnknownAccount(f"unknown account {account_id!r}")
    return created  # type: ignore[no-any-return]


def enforcement_on(
    conn: Connection, account_id: str, *, now: datetime
) -> tuple[Stage, datetime | None]:
    """(stage of budget enforcement for the account, end of its grace period or None).
    Raises: UnknownAccount (only when the rollout needs the account's creation)."""
    return _enforcement(account_id, lambda: _created_at(conn, account_id), now=now)


def billing_on(conn: Connection, account_id: str) -> bool:
    """Whether purchases are offered to the account. Raises: UnknownAccount."""
    return _billing(account_id, lambda: _created_at(conn, account_id))


def _enforcement(
    account_id: str, created: Callable[[], datetime], *, now: datetime
) -> tuple[Stage, datetime | None]:
    """`enforcement_on` of an account whose creation `created()` gives (asked only
    when the rollout depends on it)."""
    settings = get_settings()
    if not settings.enable_budget_enforcement:
        return Stage.OFF, None
    if enforcement_is_uniform():
        return Stage.ON, None
    return stage(
        _parse(settings.enforcement_rollout),
        account_id,
        created(),
        now=now,
        grace_days=settings.enforcement_grace_days,
        started_on=settings.enforcement_started_on,
    )


def _billing(account_id: str, created: Callable[[], datetime]) -> bool:
    settings = get_settings()
    if not settings.enable_billing:
        return False
    rollout = _parse(settings.billing_rollout)
    return rollout.everyone or rollout.includes(account_id, created())


def billing_enabled(engine: Engine, account_id: str) -> bool:
    """`billing_on` in its own connection; False for an unknown account."""
    try:
        with engine.connect() as conn:
            return billing_on(conn, account_id)
    except UnknownAccount:
        return False


def enforced_for(engine: Engine, account_id: str, *, now: datetime) -> bool:
    """Whether budget enforcement refuses requests of the account now (not off, not in
    its grace period). An unknown account counts as enforced (recording refuses it)."""
    settings = get_settings()
    if enforcement_is_uniform():
        return settings.enable_budget_enforcement
    try:
        with engine.connect() as conn:
            return enforcement_on(conn, account_id, now=now)[0] is Stage.ON
    except UnknownAccount:
        return True


@dataclass(frozen=True, slots=True)
class CohortRow:
    """One account's place in the rollouts (the admin Integrity page)."""

    account_id: str
    created_at: datetime
    enforcement: Stage
    grace_ends_at: datetime | None
    billing: bool


def cohorts(
    engine: Engine, *, now: datetime, limit: int | None = None
) -> tuple[list[CohortRow], Counter[Stage], int, int]:
    """(the newest `limit` accounts' rows, newest first (None: all), how many accounts
    are at each enforcement stage, how many have billing on, how many accounts).

    When neither flag depends on the account, the counts take one COUNT and only the
    listed rows are read; otherwise every account's id and creation are read once."""
    a = accounts.c
    newest = select(a.id, a.created_at).order_by(a.created_at.desc(), a.id)
    with engine.connect() as conn:
        listed = conn.execute(newest if limit is None else newest.limit(limit)).all()
        uniform = enforcement_is_uniform() and _billing_is_uniform()
        everyone = (
            None if uniform or limit is None else conn.execute(select(a.id, a.created_at)).all()
        )
        total = conn.execute(select(func.count()).select_from(accounts)).scalar_one()
    rows = [_row(account_id, created_at, now) for account_id, created_at in listed]
    if uniform:
        stage_of, billing = (rows[0].enforcement, rows[0].billing) if rows else (Stage.ON, True)
        return rows, Counter({stage_of: total}), total if billing else 0, total
    counted = rows if everyone is None else [_row(i, at, now) for i, at in everyone]
    stages = Counter(r.enforcement for r in counted)
    return rows, stages, sum(1 for r in counted if r.billing), total


def _row(account_id: str, created_at: datetime, now: datetime) -> CohortRow:
    known = _known(created_at)
    enforcement, ends = _enforcement(account_id, known, now=now)
    return CohortRow(account_id, created_at, enforcement, ends, _billing(account_id, known))


def _billing_is_uniform() -> bool:
    settings = get_settings()
    return not settings.enable_billing or _parse(settings.billing_rollout).mode in ("all", "none")


def _known(created_at: datetime) -> Callable[[], datetime]:
    return lambda: created_at
