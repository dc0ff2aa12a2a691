"""B3: every analytics function behind every page, p50 and p95, against the naive way
(load the range's events into pandas and group them).

`QUERIES` lists the calls the pages make, as (page, label, scope, call). To cover a
new page, add its calls here; a function that does not exist (yet) is reported as
skipped, not as an error. `scope` picks the naive baseline: "account" loads one
account's events for the range, "all" loads every account's.
"""

from __future__ import annotations

import gc
import importlib
import statistics
import time as clock
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from bench.results import Measurement
from pricing_core.adapters import schema, storage
from pricing_core.domain.principal import Principal

P95_TARGET_MS = 50.0  # issue 14
RATIO_TARGET = 100.0


@dataclass(frozen=True, slots=True)
class Context:
    """What the pages would pass: the engine, a member of the busiest account, an
    admin, and the default date ranges (90 days for members, 30 for admins)."""

    engine: sa.Engine
    member: Principal
    admin: Principal
    chat_id: str | None
    member_range: tuple[date, date]
    admin_range: tuple[date, date]


def _fn(path: str) -> Callable[..., Any]:
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(f"pricing_core.{module}"), name)


def _member(ctx: Context, path: str, *args: Any, **kwargs: Any) -> Any:
    return _fn(path)(ctx.engine, ctx.member, *args, **kwargs)


def _admin(ctx: Context, path: str, **kwargs: Any) -> Any:
    return _fn(path)(ctx.engine, ctx.admin, **kwargs)


def _mr(ctx: Context) -> dict[str, date]:
    return {"start": ctx.member_range[0], "end": ctx.member_range[1]}


def _ar(ctx: Context) -> dict[str, date]:
    return {"start": ctx.admin_range[0], "end": ctx.admin_range[1]}


def _question(ctx: Context, group: str = "model", *, admin: bool = False) -> Any:
    explore = importlib.import_module("pricing_core.analytics.explore")
    days = ctx.admin_range if admin else ctx.member_range
    if admin and group in ("api_key", "plan"):  # every account's events: a week at most
        days = (days[1] - timedelta(days=explore.MAX_HOURLY_DAYS - 1), days[1])
    return explore.Question(*days, group=explore.Group(group))


# (page, label, scope, call)
QUERIES: list[tuple[str, str, str, Callable[[Context], Any]]] = [
    ("overview", "analytics.overview", "account", lambda c: _member(c, "analytics.overview")),
    ("overview", "limits.budgets.budget_status", "account",
     lambda c: _member(c, "limits.budgets.budget_status")),
    # as the Chats page asks: the latest 100 (pages/chats.py CHATS_SHOWN), and the count
    ("chats", "analytics.list_chats", "account",
     lambda c: _member(c, "analytics.list_chats", limit=100)),
    ("chats", "analytics.count_chats", "account", lambda c: _member(c, "analytics.count_chats")),
    ("chats", "analytics.chat_detail", "account",
     lambda c: _member(c, "analytics.chat_detail", c.chat_id)),
    ("usage", "analytics.usage_range", "account", lambda c: _member(c, "analytics.usage_range")),
    ("explore", "analytics.explore.explore", "account",
     lambda c: _member(c, "analytics.explore.explore", _question(c))),
    ("explore", "analytics.explore.explore (every account)", "all",
     lambda c: _admin(c, "analytics.explore.explore", question=_question(c), account_id="*")),
    # the groups only usage events know (chats, API keys, plans) read usage_events
    *(("explore", f"analytics.explore.explore ({group})", "account",
       lambda c, group=group: _member(c, "analytics.explore.explore", _question(c, group)))
      for group in ("chat", "api_key", "plan")),
    ("explore", "analytics.explore.explore (plan, every account)", "all",
     lambda c: _admin(c, "analytics.explore.explore", question=_question(c, "plan", admin=True),
                      account_id="*")),
    ("explore", "analytics.explore.dimension_values", "account",
     lambda c: _member(c, "analytics.explore.dimension_values", **_mr(c))),
    ("usage", "analytics.usage_report", "account",
     lambda c: _member(c, "analytics.usage_report", **_mr(c))),
    ("transactions", "analytics.ledger_span", "account",
     lambda c: _member(c, "analytics.ledger_span")),
    ("transactions", "analytics.ledger_view", "account",
     lambda c: _member(c, "analytics.ledger_view", **_mr(c))),
    ("transactions", "analytics.usage_entries_of_day", "account",
     lambda c: _member(c, "analytics.usage_entries_of_day", day=c.member_range[1] - timedelta(1))),
    ("budget", "limits.budgets.budget_status", "account",
     lambda c: _member(c, "limits.budgets.budget_status")),
    ("plans", "plans.advice.advise_plan", "account",
     lambda c: _member(c, "plans.advice.advise_plan")),
    ("admin_offers", "billing.packages.list_packages", "all",
     lambda c: _fn("billing.packages.list_packages")(c.engine)),
    ("pricing", "analytics.public_prices.price_list", "account",
     lambda c: _member(c, "analytics.public_prices.price_list")),
    ("billing", "plans.records.list_billing_records", "account",
     lambda c: _member(c, "plans.records.list_billing_records")),
    ("billing", "billing.invoices.list_invoices", "account",
     lambda c: _member(c, "billing.invoices.list_invoices")),
    ("billing", "billing.autotopup.recent_topups", "account",
     lambda c: _member(c, "billing.autotopup.recent_topups")),
    ("notifications", "notify.preferences.preferences", "account",
     lambda c: _member(c, "notify.preferences.preferences")),
    ("notifications", "notify.preferences.low_balance_line", "account",
     lambda c: _member(c, "notify.preferences.low_balance_line")),
    # on every page: the sidebar balance and the enforcement grace banner
    ("overview", "metering.grace.grace_status", "account",
     lambda c: _fn("metering.grace.grace_status")(c.engine, c.member.account_id)),
    ("buy_credits", "ledger.wallets.wallet_for", "account",
     lambda c: _member(c, "ledger.wallets.wallet_for")),
    ("buy_credits", "billing.packages.list_packages", "account",
     lambda c: _fn("billing.packages.list_packages")(c.engine)),
    ("buy_credits", "billing.checkout.list_purchases", "account",
     lambda c: _member(c, "billing.checkout.list_purchases")),
    ("admin_revenue", "analytics.revenue.usage_span", "all",
     lambda c: _admin(c, "analytics.revenue.usage_span")),
    ("admin_revenue", "analytics.revenue.revenue_report", "all",
     lambda c: _admin(c, "analytics.revenue.revenue_report", **_ar(c))),
    ("admin_revenue", "analytics.revenue.liability", "all",
     lambda c: _admin(c, "analytics.revenue.liability")),
    ("admin_revenue", "analytics.revenue.revenue_breakdown(model)", "all",
     lambda c: _admin(c, "analytics.revenue.revenue_breakdown", by="model", **_ar(c))),
    ("admin_revenue", "analytics.revenue.revenue_breakdown(operation)", "all",
     lambda c: _admin(c, "analytics.revenue.revenue_breakdown", by="operation", **_ar(c))),
    ("admin_revenue", "analytics.revenue.top_accounts", "all",
     lambda c: _admin(c, "analytics.revenue.top_accounts", limit=10, **_ar(c))),
    ("admin_revenue", "analytics.sales.revenue_by_plan", "all",
     lambda c: _admin(c, "analytics.sales.revenue_by_plan", **_ar(c))),
    ("admin_revenue", "analytics.sales.package_sales", "all",
     lambda c: _admin(c, "analytics.sales.package_sales", **_ar(c))),
    ("admin_usage", "analytics.revenue.revenue_series(provider)", "all",
     lambda c: _admin(c, "analytics.revenue.revenue_series", granularity="day", by="provider",
                      **_ar(c))),
    ("admin_usage", "analytics.spend_watch.high_cost_accounts", "all",
     lambda c: _admin(c, "analytics.spend_watch.high_cost_accounts", as_of=c.admin_range[1])),
    ("admin_usage", "analytics.spend_watch.spend_anomalies", "all",
     lambda c: _admin(c, "analytics.spend_watch.spend_anomalies", as_of=c.admin_range[1])),
    ("admin_usage", "analytics.spend_watch.unpriced_queue", "all",
     lambda c: _admin(c, "analytics.spend_watch.unpriced_queue")),
    ("admin_prices", "analytics.prices.price_book", "all",
     lambda c: _admin(c, "analytics.prices.price_book")),
    ("admin_prices", "analytics.prices.catalog_staleness", "all",
     lambda c: _admin(c, "analytics.prices.catalog_staleness")),
    ("admin_prices", "analytics.prices.price_history", "all",
     lambda c: _admin(c, "analytics.prices.price_history")),
    ("admin_accounts", "analytics.accounts.search_accounts", "all",
     lambda c: _admin(c, "analytics.accounts.search_accounts")),
    ("admin_accounts", "analytics.accounts.account_summary", "account",
     lambda c: _fn("analytics.accounts.account_summary")(c.engine, c.admin, c.member.account_id)),
    ("admin_accounts", "analytics.accounts.account_usage", "account",
     lambda c: _fn("analytics.accounts.account_usage")(
         c.engine, c.admin, c.member.account_id, start=c.admin_range[0], end=c.admin_range[1])),
    ("admin_integrity", "admin.integrity.rollout_report", "all",
     lambda c: _admin(c, "admin.integrity.rollout_report")),
    ("admin_integrity", "notify.deliver.notification_log", "all",
     lambda c: _admin(c, "notify.deliver.notification_log")),
    ("admin_integrity", "admin.integrity.integrity_report", "all",
     lambda c: _admin(c, "admin.integrity.integrity_report")),
    ("admin_integrity", "admin.integrity.provider_shape_report", "all",
     lambda c: _admin(c, "admin.integrity.provider_shape_report")),
    ("admin_billing", "analytics.payments.payment_metrics", "all",
     lambda c: _admin(c, "analytics.payments.payment_metrics", **_ar(c))),
    ("admin_billing", "plans.records.all_billing_records", "all",
     lambda c: _admin(c, "plans.records.all_billing_records")),
    ("admin_billing", "billing.invoices.all_invoices", "all",
     lambda c: _admin(c, "billing.invoices.all_invoices")),
    ("admin_truth", "admin.catalog.custom_model_list", "all",
     lambda c: _admin(c, "admin.catalog.custom_model_list")),
    ("admin_truth", "admin.catalog.catalog_status", "all",
     lambda c: _admin(c, "admin.catalog.catalog_status")),
    ("admin_truth", "admin.provider_bills.reconcile", "all",
     lambda c: _admin(c, "admin.provider_bills.reconcile", provider="openai", **_ar(c))),
]  # fmt: skip


def context(engine: sa.Engine) -> Context:
    """The busiest account's first user, an admin, and the last day with usage."""
    with engine.connect() as conn:
        account = conn.execute(
            sa.text(
                "SELECT account_id FROM usage_daily GROUP BY account_id "
                "ORDER BY SUM(requests) DESC LIMIT 1"
            )
        ).scalar_one()
        one = {"a": account}
        user = conn.execute(
            sa.text("SELECT id FROM users WHERE account_id = :a ORDER BY id LIMIT 1"), one
        ).scalar_one()
        chat = conn.execute(
            sa.text(
                "SELECT chat_id FROM chats WHERE account_id = :a ORDER BY last_at DESC LIMIT 1"
            ),
            one,
        ).scalar()
        last = conn.execute(sa.text("SELECT MAX(day) FROM usage_daily")).scalar_one()
    last = date.fromisoformat(str(last)[:10])
    return Context(
        engine=engine,
        member=Principal(user, account),
        admin=Principal("bench-admin", account, role="admin"),
        chat_id=chat,
        member_range=(last - timedelta(days=89), last),
        admin_range=(last - timedelta(days=29), last),
    )


def naive(ctx: Context, scope: str) -> pd.DataFrame:
    """The peers' way: the range's events into pandas, grouped by day and model."""
    start, end = ctx.member_range if scope == "account" else ctx.admin_range
    e = schema.usage_events.c
    query = sa.select(
        e.created_at, e.model, e.operation, e.price, e.provider_cost,
        e.input_tokens, e.output_tokens,
    ).where(
        e.created_at >= datetime.combine(start, time.min, tzinfo=UTC),
        e.created_at < datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC),
    )  # fmt: skip
    if scope == "account":
        query = query.where(e.account_id == ctx.member.account_id)
    with ctx.engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).all(), columns=list(query.selected_columns.keys()))
    frame["day"] = pd.to_datetime(frame["created_at"], utc=True).dt.date
    return frame.groupby(["day", "model", "operation"])[["price", "provider_cost"]].sum()


def _timings(call: Callable[[], Any], runs: int) -> list[float]:
    call()  # warm-up: imports, first connection, the database's own caches
    out = []
    for _ in range(runs):
        started = clock.perf_counter()
        call()
        out.append((clock.perf_counter() - started) * 1000)
    return out


def _p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def run_backend(
    url: str, *, runs: int = 20, naive_runs: int = 3, pages: set[str] | None = None
) -> list[dict]:
    """Per query (of `pages` only, when given): p50/p95 ms of the function and of the
    naive way for its scope."""
    engine = storage.make_engine(url)
    ctx = context(engine)
    gc.collect()
    gc.freeze()  # as the servers do after start-up (app.py, api.http.asgi_app)
    baselines: dict[str, list[float]] = {}
    rows = []
    for page, label, scope, call in QUERIES:
        if pages and page not in pages:
            continue
        try:
            times = _timings(lambda call=call: call(ctx), runs)
        except (AttributeError, ImportError) as exc:
            rows.append({"page": page, "function": label, "skipped": str(exc)})
            continue
        if scope not in baselines:
            baselines[scope] = _timings(lambda scope=scope: naive(ctx, scope), naive_runs)
        base = baselines[scope]
        rows.append(
            {
                "page": page,
                "function": label,
                "scope": scope,
                "p50_ms": round(statistics.median(times), 2),
                "p95_ms": round(_p95(times), 2),
                "naive_p50_ms": round(statistics.median(base), 1),
                "naive_p95_ms": round(_p95(base), 1),
                "ratio": round(statistics.median(base) / statistics.median(times), 1),
            }
        )
    engine.dispose()
    return rows


def measure(
    urls: dict[str, str], *, runs: int = 20, pages: set[str] | None = None
) -> tuple[Measurement, dict]:
    per_backend = {b: run_backend(url, runs=runs, pages=pages) for b, url in urls.items()}
    measured = [(b, r) for b, rows in per_backend.items() for r in rows if "p95_ms" in r]
    worst_b, worst = max(measured, key=lambda br: br[1]["p95_ms"])
    lowest = min(r["ratio"] for _, r in measured)
    misses = [
        f"{b}:{r['function']}"
        for b, r in measured
        if r["p95_ms"] >= P95_TARGET_MS or r["ratio"] < RATIO_TARGET
    ]
    measurement = Measurement(
        what=f"{len(measured)} analytics calls behind the pages ({', '.join(urls)}); value: the "
        f"slowest p95 ({worst_b}: {worst['function']}); ratio: the lowest naive/function "
        f"p50 ratio; misses: {', '.join(misses) or 'none'}",
        value=worst["p95_ms"],
        unit="ms (p95)",
        baseline=worst["naive_p95_ms"],
        baseline_unit="ms (p95, naive pandas groupby of the range's events)",
        ratio=lowest,
        target=f"p95 < {P95_TARGET_MS:.0f} ms on each back end; ratio >= {RATIO_TARGET:.0f}x",
        met=not misses,
    )
    return measurement, per_backend
