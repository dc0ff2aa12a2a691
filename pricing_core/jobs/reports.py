"""What the scheduled jobs put in the outbox (`adapters.outbox`), each once per its
period: the daily high-cost report, unusual spending (each account, and a list for
the admins), the weekly summary of each account that used anything, a price catalog
older than `PRICING_CATALOG_MAX_AGE_DAYS`, and the ledger check's failure."""

from __future__ import annotations

import urllib.request
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from pricing_core.adapters.outbox import Kind, enqueue_on
from pricing_core.adapters.storage import run_write
from pricing_core.admin.catalog import catalog_status, load_catalog_file
from pricing_core.analytics.account import overview
from pricing_core.analytics.prices import catalog_staleness
from pricing_core.analytics.revenue import top_accounts
from pricing_core.analytics.spend_watch import high_cost_accounts, spend_anomalies
from pricing_core.analytics.usage import usage_report
from pricing_core.catalog.snapshots import MAX_CATALOG_BYTES, sha256_of
from pricing_core.config import get_settings
from pricing_core.domain.errors import PricingError
from pricing_core.domain.principal import Principal
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.plans.advice import advise_plan

JOBS_PRINCIPAL = Principal("job:scheduler", "", role="admin")
MAX_LISTED = 500


def high_cost_report(engine: Engine, *, now: datetime) -> str:
    """Enqueue today's report of the accounts that spent at least
    `PRICING_HIGH_COST_USD` (with the month-end projection and the recommended plan),
    once per local day; nothing when no account did. Returns a one-line outcome."""
    day = now.astimezone(get_settings().tz).date()
    found = high_cost_accounts(engine, JOBS_PRINCIPAL, limit=MAX_LISTED, now=now)
    if not found:
        return f"no account spent {get_settings().high_cost_usd} USD or more on {day}"
    listed = []
    for a in found:
        try:
            plan = advise_plan(engine, JOBS_PRINCIPAL, account_id=a.account_id, now=now)
            recommended = plan.recommendation.recommended
        except PricingError:
            recommended = "-"
        listed.append(
            {
                "account_id": a.account_id,
                "name": a.name,
                "spend": str(a.spend_today),
                "projected": str(a.projected_month_end),
                "plan": recommended,
            }
        )
    payload = {"day": day.isoformat(), "threshold": str(get_settings().high_cost_usd),
               "accounts": listed}  # fmt: skip
    written = run_write(
        engine,
        lambda conn: enqueue_on(
            conn, key=f"high_cost:{day}", kind=Kind.HIGH_COST_REPORT, account_id=None,
            payload=payload, now=now,
        ),
    )  # fmt: skip
    return f"{len(listed)} account(s) listed" + ("" if written else " (already sent today)")


def ledger_check(engine: Engine, *, now: datetime) -> str:
    """Verify the whole ledger; on a violation, enqueue one email to the admins per day."""
    report = verify_ledger(engine)
    if report.ok:
        return f"ledger OK: {report.wallets} wallets, {report.entries} entries"
    day = now.astimezone(get_settings().tz).date()
    run_write(
        engine,
        lambda conn: enqueue_on(
            conn, key=f"ledger_check:{day}", kind=Kind.LEDGER_CHECK_FAILED, account_id=None,
            payload={"count": len(report.violations), "violations": list(report.violations[:50])},
            now=now,
        ),
    )  # fmt: skip
    raise RuntimeError(f"{len(report.violations)} ledger violation(s); the admins are emailed")


def _enqueue(engine: Engine, **fields: Any) -> bool:
    return bool(run_write(engine, lambda conn: enqueue_on(conn, **fields)))


def unusual_spend(engine: Engine, *, now: datetime) -> str:
    """Tell each account whose spend rate jumped today (`spend_anomalies`), and the
    admins the list, once per local day."""
    day = now.astimezone(get_settings().tz).date()
    jumps = spend_anomalies(engine, JOBS_PRINCIPAL, now=now)
    listed = [
        {"account_id": a.account_id, "name": a.name, "recent": str(a.recent_daily),
         "baseline": str(a.baseline_daily), "ratio": str(a.ratio or "new")}
        for a in jumps
    ]  # fmt: skip
    for entry in listed:
        _enqueue(
            engine, key=f"unusual:{entry['account_id']}:{day}", kind=Kind.UNUSUAL_SPEND,
            account_id=entry["account_id"], payload={"day": day.isoformat(), **entry}, now=now,
        )  # fmt: skip
    if listed:
        _enqueue(
            engine, key=f"anomalies:{day}", kind=Kind.SPEND_ANOMALIES, account_id=None,
            payload={"day": day.isoformat(), "accounts": listed}, now=now,
        )  # fmt: skip
    return f"{len(listed)} account(s) with a jump"


def weekly_summaries(engine: Engine, *, now: datetime) -> str:
    """Each account that spent anything in the last 7 complete local days gets its
    summary (spend, requests, top models and operations, balance and runway), once
    per ISO week."""
    today = now.astimezone(get_settings().tz).date()
    start, end = today - timedelta(days=7), today - timedelta(days=1)
    week = f"{end.isocalendar().year}-W{end.isocalendar().week:02d}"
    spenders = top_accounts(engine, JOBS_PRINCIPAL, start=start, end=end, limit=1000)
    written = 0
    for account in spenders:
        report = usage_report(engine, JOBS_PRINCIPAL, start=start, end=end,
                              account_id=account.account_id).daily  # fmt: skip
        glance = overview(engine, JOBS_PRINCIPAL, account_id=account.account_id, now=now)
        payload = {
            "start": start.isoformat(), "end": end.isoformat(), "spend": str(account.spend),
            "requests": int(report["requests"].sum()), "balance": str(glance.balance),
            "runway": glance.forecast.message,
            "models": _top(report, "model"), "operations": _top(report, "operation"),
        }  # fmt: skip
        written += _enqueue(
            engine, key=f"weekly:{account.account_id}:{week}", kind=Kind.WEEKLY_SUMMARY,
            account_id=account.account_id, payload=payload, now=now,
        )  # fmt: skip
    return f"{written} summary(ies) for {start}..{end}"


def _top(report: Any, column: str, count: int = 3) -> list[dict[str, str]]:
    """The `count` costliest values of `column` in a usage report, exact USD strings."""
    spent: dict[str, Decimal] = {}
    for name, cost in zip(report[column], report["cost"], strict=True):
        spent[name] = spent.get(name, Decimal(0)) + cost
    ranked = sorted(spent.items(), key=lambda item: (-item[1], item[0]))[:count]
    return [{"name": name, "spend": str(cost)} for name, cost in ranked]


def catalog_check(engine: Engine, *, now: datetime) -> str:
    """Tell the admins, once per ISO week, when the price catalog knows no price change
    newer than `PRICING_CATALOG_MAX_AGE_DAYS`."""
    stale = catalog_staleness(engine, JOBS_PRINCIPAL, now=now)
    limit = get_settings().catalog_max_age_days
    as_of = stale.snapshot_prices_as_of
    today = now.astimezone(get_settings().tz).date()
    age = None if as_of is None else (today - as_of).days
    if age is not None and age <= limit:
        return f"catalog prices up to {as_of}: {age} days old, within {limit}"
    week = f"{today.isocalendar().year}-W{today.isocalendar().week:02d}"
    _enqueue(
        engine, key=f"catalog:{week}", kind=Kind.CATALOG_STALE, account_id=None,
        payload={"version": stale.catalog_version, "as_of": str(as_of or "unknown"),
                 "age": age if age is not None else "unknown", "max_age": limit},
        now=now,
    )  # fmt: skip
    return f"catalog prices up to {as_of}: {age} days old, over {limit}; admins told"


def catalog_update(engine: Engine, *, now: datetime) -> str:
    """Re-read `PRICING_UPDATE_SOURCE` (a genai-prices data file: a path or an
    http(s) URL) and load it when it differs from the newest loaded catalog."""
    source = get_settings().update_source
    if not source:
        return "no PRICING_UPDATE_SOURCE: the bundled catalog stays in use"
    try:
        if source.startswith(("http://", "https://")):
            with urllib.request.urlopen(source, timeout=30) as response:  # noqa: S310
                text = response.read(MAX_CATALOG_BYTES + 1).decode()
        else:
            text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"could not read {source}: {exc}"
    status = catalog_status(engine, JOBS_PRINCIPAL)
    if status.sha256 == sha256_of(text):
        return f"{source} unchanged"
    loaded = load_catalog_file(engine, JOBS_PRINCIPAL, text, source=source, now=now)
    return f"loaded {source}: {loaded.models} models, {len(loaded.diff)} changed"
