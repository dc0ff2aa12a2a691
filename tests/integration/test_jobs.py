"""Scheduled jobs: the daily high-cost report on the real trace (emailed once, listing
exactly the accounts an independent sum finds), the ledger check's alarm, and one
run per schedule slot however many schedulers race for it."""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pricing_core.cli.main import app
from pricing_core.domain.money import format_money
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.jobs.scheduler import JOBS, job_statuses, run_job, run_once, scheduler
from pricing_core.ledger.wallets import create_account
from pricing_core.metering.importers import DEFAULT_MODEL_MIX, import_azure_trace
from pricing_core.metering.record import record_usage
from pricing_core.metering.trace import TraceMapping, parse_model_mix
from pricing_core.notify.deliver import deliver_notifications
from tests.admin_trace import TRACE_DIR, exported
from tests.integration.test_notifications import smtp  # noqa: F401 - the SMTP fixture
from tests.prices import openai_price as price

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # mid-day: the whole trace hour is today


def test_the_high_cost_report_on_the_real_trace_lists_exactly_the_accounts_over_5(
    sqlite_url,
    monkeypatch,
    smtp,  # noqa: F811
):
    from pricing_core.adapters.storage import make_engine

    engine = make_engine(sqlite_url)
    summary = import_azure_trace(
        engine,
        TRACE_DIR / "AzureLLMInferenceTrace_conv.csv",
        TraceMapping(
            operation="chat_message", seed=7, users=12, models=parse_model_mix(DEFAULT_MODEL_MIX)
        ),
        opening_balance=Decimal(5),
        allow_overdraft=True,
        shift_to_now=True,
        now=NOW,
    )
    assert summary.imported > 19_000
    create_account(engine, "ops", name="Operator", email="ops@example.com", role="admin",
                   opening_credit=Decimal(0), now=NOW)  # fmt: skip
    usage, _ = exported(engine)
    today: dict[str, Decimal] = defaultdict(Decimal)
    for row in usage:
        if row["created_at"].startswith(NOW.date().isoformat()):
            today[row["account_id"]] += Decimal(row["price_usd"])
    expected = {a for a, spent in today.items() if spent >= 5}
    assert expected and expected != set(today)  # some accounts over $5, some under

    outcome = run_once(engine, "high-cost", now=NOW)
    assert outcome == f"ok: {len(expected)} account(s) listed"
    assert deliver_notifications(engine, now=NOW).sent == 1
    [report] = smtp.messages
    assert report["To"] == "ops@example.com"
    assert report["Subject"] == f"High-cost accounts on {NOW.date()}"
    body = report.get_body(("plain",)).get_content()
    listed = {
        line.split("(")[1].split(")")[0] for line in body.splitlines() if line.startswith("- ")
    }
    assert listed == expected

    again = run_once(engine, "high-cost", now=NOW)
    assert again.endswith("(already sent today)")
    assert deliver_notifications(engine, now=NOW).sent == 0 and len(smtp.messages) == 1


def test_a_ledger_violation_fails_the_job_and_emails_the_admins(engine, monkeypatch, smtp):  # noqa: F811
    monkeypatch.setenv("PRICING_ADMIN_EMAILS", "ops@example.com")
    from pricing_core.config import get_settings

    get_settings.cache_clear()
    create_account(engine, "acme", name="Acme", opening_credit=Decimal(5))
    assert run_once(engine, "ledger-verify").startswith("ok: ledger OK")
    with engine.begin() as conn:  # corrupt a balance behind the ledger's back
        conn.execute(sa.text("UPDATE wallets SET balance = balance + 1 WHERE account_id = 'acme'"))
    outcome = run_once(engine, "ledger-verify")
    assert outcome.startswith("failed: RuntimeError: 1 ledger violation")
    deliver_notifications(engine)
    [alarm] = smtp.messages
    assert alarm["Subject"] == "The ledger check found 1 violation(s)"
    statuses = {s.name: s for s in job_statuses(engine)}
    assert statuses["ledger-verify"].last_outcome == "failed"
    assert statuses["high-cost"].last_started_at is None


@pytest.mark.postgres
def test_schedulers_racing_for_one_slot_run_the_job_once(pg_engine):
    slot = JOBS["expire-holds"].slot(NOW)
    outcomes: list[str | None] = []
    barrier = threading.Barrier(8)

    def scheduler_thread() -> None:
        barrier.wait()
        outcomes.append(run_job(pg_engine, "expire-holds", slot=slot, now=NOW))

    threads = [threading.Thread(target=scheduler_thread) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [o for o in outcomes if o is not None] == ["ok: 0 hold(s) expired"]
    assert outcomes.count(None) == 7
    with pg_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM job_runs")).scalar_one() == 1
    assert run_job(pg_engine, "expire-holds", slot=JOBS["expire-holds"].slot(NOW.replace(minute=1)))


def test_slots_and_the_scheduler_follow_the_schedules(monkeypatch):
    monkeypatch.setenv("PRICING_TIMEZONE", "Asia/Tokyo")
    from pricing_core.config import get_settings

    get_settings.cache_clear()
    late = datetime(2026, 11, 20, 16, 30, tzinfo=UTC)  # 01:30 on the 21st in Tokyo
    assert JOBS["high-cost"].slot(late) == "2026-11-21"
    assert JOBS["deliver"].slot(late.replace(second=42)) == JOBS["deliver"].slot(late)
    jobs = {j.id: j for j in scheduler(None).get_jobs()}  # type: ignore[arg-type]
    assert set(jobs) == set(JOBS)
    assert "hour='2'" in str(jobs["high-cost"].trigger)


def test_the_jobs_command_lists_runs_and_refuses_an_unknown_job(engine):
    runner = CliRunner()
    assert runner.invoke(app, ["jobs", "run-once", "expire-holds"]).output == (
        "ok: 0 hold(s) expired\n"
    )
    listed = runner.invoke(app, ["jobs", "list"]).output.splitlines()
    assert listed[0].startswith("expire-holds\tevery 60 s\tlast run ")
    unknown = runner.invoke(app, ["jobs", "run-once", "nightly"])
    assert unknown.exit_code == 2 and "jobs: expire-holds, deliver" in unknown.output


def _usage(engine, request_id: str, at: datetime, *, model: str = "gpt-4o", tokens: int = 1000,
           operation: str = "chat_message") -> None:  # fmt: skip
    record_usage(
        engine,
        UsageEvent(
            request_id=request_id, account_id="acme", user_id="acme", operation=operation,
            provider="openai", model=model, input_tokens=tokens, output_tokens=500, created_at=at,
        ),
    )  # fmt: skip


def test_the_weekly_summary_sums_the_last_seven_days_once_per_week(engine, smtp):  # noqa: F811
    monday = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    create_account(engine, "acme", name="Acme", user_id="acme", email="ann@example.com",
                   opening_credit=Decimal(50), now=monday - timedelta(days=30))  # fmt: skip
    _usage(engine, "before", monday - timedelta(days=8))  # Nov 15: the week before
    for k in range(2):
        _usage(engine, f"big-{k}", monday - timedelta(days=6))  # Nov 17
    for k in range(3):
        _usage(engine, f"small-{k}", monday - timedelta(days=3), model="gpt-4o-mini",
               operation="code_completion")  # fmt: skip
    _usage(engine, "today", monday)  # Monday itself: next week's
    expected = 2 * price("gpt-4o", 1000, 500) + 3 * price("gpt-4o-mini", 1000, 500)

    assert (
        run_once(engine, "weekly-summary", now=monday)
        == "ok: 1 summary(ies) for 2026-11-16..2026-11-22"
    )
    assert (
        run_once(engine, "weekly-summary", now=monday)
        == "ok: 0 summary(ies) for 2026-11-16..2026-11-22"
    )
    deliver_notifications(engine, now=monday)
    [summary] = smtp.messages
    total = format_money(expected)
    assert summary["Subject"] == f"Acme: {total} spent from 2026-11-16 to 2026-11-22"
    text = summary.get_body(("plain",)).get_content()
    assert "(5 requests)" in text
    mini, big = (
        format_money(3 * price("gpt-4o-mini", 1000, 500)),
        format_money(2 * price("gpt-4o", 1000, 500)),
    )
    assert f"Top models: gpt-4o {big}, gpt-4o-mini {mini}" in text
    assert f"Top operations: chat_message {big}, code_completion {mini}" in text


def test_a_jump_in_spending_emails_the_account_and_the_admins_once_a_day(
    engine,
    monkeypatch,
    smtp,  # noqa: F811
):
    monkeypatch.setenv("PRICING_ADMIN_EMAILS", "ops@example.com")
    from pricing_core.config import get_settings

    get_settings.cache_clear()
    now = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    create_account(engine, "acme", name="Acme", user_id="acme", email="ann@example.com",
                   opening_credit=Decimal(50), now=now - timedelta(days=30))  # fmt: skip
    for day in range(1, 15):  # a small baseline: one call a day
        _usage(engine, f"base-{day}", now - timedelta(days=day))
    for k in range(8):  # today: 8 calls of 100,000 input tokens, about $2.58
        _usage(engine, f"jump-{k}", now - timedelta(minutes=k), tokens=100_000)
    assert run_once(engine, "unusual-spend", now=now) == "ok: 1 account(s) with a jump"
    run_once(engine, "unusual-spend", now=now + timedelta(hours=1))  # the next hourly run
    deliver_notifications(engine, now=now)
    subjects = sorted((m["To"], m["Subject"]) for m in smtp.messages)
    today = format_money(8 * price("gpt-4o", 100_000, 500))
    assert subjects == [
        ("ann@example.com", f"Unusual spending on Acme: {today} on 2026-11-20"),
        ("ops@example.com", "Spending jumped on 2026-11-20"),
    ]


def test_an_old_price_catalog_is_reported_to_the_admins_once_a_week(engine, monkeypatch, smtp):  # noqa: F811
    monkeypatch.setenv("PRICING_ADMIN_EMAILS", "ops@example.com")
    monkeypatch.setenv("PRICING_CATALOG_MAX_AGE_DAYS", "3650")
    from pricing_core.config import get_settings

    get_settings.cache_clear()
    assert "within 3650" in run_once(engine, "catalog-check")
    monkeypatch.setenv("PRICING_CATALOG_MAX_AGE_DAYS", "1")
    get_settings.cache_clear()
    assert run_once(engine, "catalog-check").endswith("over 1; admins told")
    run_once(engine, "catalog-check")
    deliver_notifications(engine)
    [stale] = smtp.messages
    assert stale["Subject"].startswith("The price catalog is ") and stale["To"] == "ops@example.com"


@pytest.mark.postgres
def test_two_jobs_run_processes_side_by_side_run_each_job_once_per_schedule(pg_engine, pg_url):
    import os
    import subprocess
    import time

    from tests.integration.test_api_serve import CLI, stop

    env = {**os.environ, "PRICING_DATABASE_URL": pg_url}
    processes = [
        subprocess.Popen(
            [str(CLI), "jobs", "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )  # fmt: skip
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 90  # the minute jobs fire on the next whole minute
        ran = 0
        while time.monotonic() < deadline and ran < 2:
            time.sleep(1)
            with pg_engine.connect() as conn:
                ran = conn.execute(sa.text(
                    "SELECT COUNT(*) FROM job_runs WHERE job IN ('expire-holds', 'deliver') "
                    "AND finished_at IS NOT NULL"
                )).scalar_one()  # fmt: skip
        assert all(p.poll() is None for p in processes)  # both still scheduling
    finally:
        for p in processes:
            stop(p)
    with pg_engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT job, slot FROM job_runs ORDER BY job, slot")).all()
    per_slot = {(job, slot) for job, slot in runs}
    assert len(runs) == len(per_slot) >= 2  # each (job, minute) once, though two schedulers
    assert {job for job, _ in runs} >= {"expire-holds", "deliver"}
