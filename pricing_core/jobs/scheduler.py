"""Scheduled jobs (`pricing-core jobs ...`), run by APScheduler in one process, with
times in `PRICING_TIMEZONE`.

Each run is claimed by inserting its (job, slot) row in `job_runs` first: the slot
is the scheduled time, so two schedulers side by side run each job once per
schedule, and the row keeps the run's outcome for `jobs list`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from pricing_core.adapters.schema_notify import job_runs
from pricing_core.adapters.storage import run_write
from pricing_core.adapters.warehouse import close_warehouse
from pricing_core.analytics import warehouse, warehouse_sync
from pricing_core.billing.stripe_api import payments_configured
from pricing_core.billing.topups import run_topups
from pricing_core.config import get_settings
from pricing_core.domain.errors import InvalidUsage
from pricing_core.jobs.reports import (
    catalog_check,
    catalog_update,
    high_cost_report,
    ledger_check,
    unusual_spend,
    weekly_summaries,
)
from pricing_core.ledger.holds import expire_holds
from pricing_core.limits.alerts import deliver_alerts
from pricing_core.notify.deliver import deliver_notifications
from pricing_core.plans.records import generate_billing_records

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    """A job: every `every` (a timedelta) or daily `at` (hour, minute, local time)."""

    name: str
    description: str
    run: Callable[..., str]  # run(engine, *, now) -> a one-line outcome
    every: timedelta | Callable[[], timedelta] | None = None  # a callable: read at use
    at: tuple[int, int] | None = None
    weekday: int | None = None  # with `at`: weekly on this day (0 = Monday)

    @property
    def interval(self) -> timedelta | None:
        return self.every() if callable(self.every) else self.every

    @property
    def schedule(self) -> str:
        if self.interval is not None:
            return f"every {int(self.interval.total_seconds())} s"
        assert self.at is not None
        when = "daily" if self.weekday is None else f"{WEEKDAYS[self.weekday]}s"
        return f"{when} at {self.at[0]:02d}:{self.at[1]:02d} ({get_settings().timezone})"

    def slot(self, at: datetime) -> str:
        """The schedule slot `at` falls in: the same for every scheduler's run of it."""
        if self.interval is not None:
            step = int(self.interval.total_seconds())
            return datetime.fromtimestamp(int(at.timestamp()) // step * step, UTC).isoformat()
        day = at.astimezone(get_settings().tz).date()
        if self.weekday is not None:
            return f"{day.isocalendar().year}-W{day.isocalendar().week:02d}"
        return day.isoformat()

    def trigger(self) -> IntervalTrigger | CronTrigger:
        tz = get_settings().tz
        if self.interval is not None:
            # aligned to the epoch, so every scheduler fires at the same instants (and
            # so claims the same slots) whenever it was started
            step = int(self.interval.total_seconds())
            first = datetime.fromtimestamp(-(-int(time.time()) // step) * step, UTC)
            return IntervalTrigger(seconds=step, start_date=first, timezone=tz)
        assert self.at is not None
        weekday = None if self.weekday is None else WEEKDAYS[self.weekday][:3].lower()
        return CronTrigger(day_of_week=weekday, hour=self.at[0], minute=self.at[1], timezone=tz)


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _expire(engine: Engine, *, now: datetime) -> str:
    return f"{expire_holds(engine, now=now)} hold(s) expired"


def _deliver(engine: Engine, *, now: datetime) -> str:
    webhooks = f"{deliver_alerts(engine)} budget webhook(s) delivered"
    if get_settings().smtp_url is None:  # the outbox keeps them until email is set up
        return f"email not configured (PRICING_SMTP_URL): nothing sent; {webhooks}"
    report = deliver_notifications(engine, now=now)
    return f"{report.sent} sent, {report.retried} to retry, {report.skipped} skipped; {webhooks}"


def _analytics_sync(engine: Engine, *, now: datetime) -> str:
    wh = warehouse.configured()
    if wh is None:
        return "analytics warehouse not configured (PRICING_ANALYTICS_URL): nothing copied"
    try:
        result = warehouse_sync.sync(engine, wh)
    finally:  # an embedded (chdb) directory serves one process: hold it only while syncing
        close_warehouse(wh.url)
    return f"{result.events} events read; events up to id {result.watermark} are folded"


def _topups(engine: Engine, *, now: datetime) -> str:
    if not payments_configured():
        return "Stripe not configured (PRICING_STRIPE_SECRET_KEY): no top-ups charged"
    run = run_topups(engine, now=now)
    return f"{run.charged} top-up(s) charged, {run.failed} failed, {run.settled} late settled"


def _billing_records(engine: Engine, *, now: datetime) -> str:
    return f"{generate_billing_records(engine, now=now)} billing record(s) written"


JOBS: dict[str, Job] = {
    j.name: j
    for j in (
        Job("expire-holds", "expire holds past their timeout", _expire, every=timedelta(minutes=1)),
        Job(
            "deliver",
            "send due notifications and budget webhooks",
            _deliver,
            every=timedelta(minutes=1),
        ),
        Job(
            "high-cost",
            "email the admins the accounts over PRICING_HIGH_COST_USD today",
            high_cost_report,
            at=(2, 0),
        ),
        Job(
            "unusual-spend",
            "email each account whose spending jumped today, and the admins",
            unusual_spend,
            every=timedelta(hours=1),
        ),
        Job(
            "weekly-summary",
            "email each account its last week's usage",
            weekly_summaries,
            at=(8, 0),
            weekday=0,
        ),
        Job(
            "catalog-check",
            "email the admins when the price catalog is old",
            catalog_check,
            at=(4, 0),
        ),
        Job(
            "catalog-update",
            "load the genai-prices data file at PRICING_UPDATE_SOURCE when it changed",
            catalog_update,
            every=lambda: timedelta(seconds=get_settings().update_interval),
        ),
        Job(
            "analytics-sync",
            "copy new usage events to the ClickHouse warehouse (PRICING_ANALYTICS_URL)",
            _analytics_sync,
            every=lambda: timedelta(seconds=get_settings().analytics_sync_seconds),
        ),
        Job(
            "auto-topups",
            "charge the saved card of each account whose balance fell below its threshold",
            _topups,
            every=timedelta(minutes=1),
        ),
        Job(
            "billing-records",
            "write each account's billing record of every month that has ended",
            _billing_records,
            at=(1, 0),
        ),
        Job(
            "ledger-verify",
            "verify the whole ledger; email the admins on a violation",
            ledger_check,
            at=(3, 0),
        ),
    )
}


def job(name: str) -> Job:
    """Raises: InvalidUsage for an unknown job (naming the jobs)."""
    if name not in JOBS:
        raise InvalidUsage(f"unknown job {name!r}; jobs: {', '.join(JOBS)}")
    return JOBS[name]


def run_job(engine: Engine, name: str, *, slot: str, now: datetime | None = None) -> str | None:
    """Run job `name` for `slot` unless a run of that slot was claimed already.

    Returns: the outcome line, or None when another scheduler ran this slot. A failing
    job's error is recorded (outcome "failed") and logged, never raised."""
    at = now or datetime.now(UTC)
    chosen = job(name)
    try:
        run_id = run_write(
            engine,
            lambda conn: conn.execute(
                insert(job_runs).values(job=name, slot=slot, started_at=at).returning(job_runs.c.id)
            ).scalar_one(),
        )
    except IntegrityError:
        return None
    try:
        detail, outcome = chosen.run(engine, now=at), "ok"
    except Exception as exc:  # recorded and logged; the next schedule runs again
        log.exception("job %s failed", name)
        detail, outcome = f"{type(exc).__name__}: {exc}", "failed"
    finished = datetime.now(UTC)
    run_write(
        engine,
        lambda conn: conn.execute(
            update(job_runs)
            .where(job_runs.c.id == run_id)
            .values(finished_at=finished, outcome=outcome, detail=detail[:1000])
        ),
    )
    return f"{outcome}: {detail}"


def run_once(engine: Engine, name: str, *, now: datetime | None = None) -> str:
    """Run a job now, outside its schedule (`jobs run-once`)."""
    return run_job(engine, name, slot=f"once:{uuid.uuid4().hex}", now=now) or ""


@dataclass(frozen=True, slots=True)
class JobStatus:
    name: str
    description: str
    schedule: str
    last_started_at: datetime | None
    last_outcome: str | None
    last_detail: str | None


def job_statuses(engine: Engine) -> list[JobStatus]:
    """Every job with its schedule and its last run (`jobs list`)."""
    r = job_runs.c
    latest = select(r.job, func.max(r.id).label("id")).group_by(r.job).subquery()
    with engine.connect() as conn:
        rows = {
            row.job: row
            for row in conn.execute(
                select(r.job, r.started_at, r.outcome, r.detail).join(latest, latest.c.id == r.id)
            )
        }
    return [
        JobStatus(
            j.name,
            j.description,
            j.schedule,
            *(
                (rows[j.name].started_at, rows[j.name].outcome, rows[j.name].detail)
                if j.name in rows
                else (None, None, None)
            ),
        )  # fmt: skip
        for j in JOBS.values()
    ]


def scheduler(engine: Engine, **options: Any) -> BlockingScheduler:
    """The scheduler of every job (call `.start()`; it blocks)."""
    schedule = BlockingScheduler(timezone=get_settings().tz, **options)
    for chosen in JOBS.values():

        def fire(chosen: Job = chosen) -> None:
            now = datetime.now(UTC)
            run_job(engine, chosen.name, slot=chosen.slot(now), now=now)

        schedule.add_job(fire, chosen.trigger(), id=chosen.name, coalesce=True, max_instances=1)
    return schedule
