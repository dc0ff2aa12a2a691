"""Gradual rollout on both back ends: enforcement for accounts created after a day only,
a grace period that reports the refusal (header, banner) without refusing, billing
for a cohort, and the Integrity page's view of who is where."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette

from pricing_core.access.apikeys import create_api_key, reset_default_limiter
from pricing_core.admin import integrity
from pricing_core.admin.integrity import rollout_report
from pricing_core.api.http import routes
from pricing_core.billing.checkout import create_checkout
from pricing_core.config import get_settings
from pricing_core.domain.errors import ConfigurationError, InsufficientBalance
from pricing_core.domain.principal import Principal
from pricing_core.domain.rollout import Stage
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account, get_wallet
from pricing_core.limits.budget_rules import save_budget_rule
from pricing_core.limits.rollout import billing_enabled
from pricing_core.limits.rules import SpendLimitExceeded
from pricing_core.metering.authorize import authorize, authorize_request
from pricing_core.metering.grace import grace_status
from tests.admin_support import ADMIN

NOW = datetime.now(UTC).replace(microsecond=0)
CUTOFF = (NOW - timedelta(days=30)).date()  # the rollout's day


def configure(monkeypatch, **settings: str) -> None:
    for name, value in settings.items():
        monkeypatch.setenv(f"PRICING_{name.upper()}", value)
    get_settings.cache_clear()


def accounts(engine) -> None:
    """`old` was created before the cutoff, `new` after; both with an empty wallet."""
    for account_id, created in (
        ("old", NOW - timedelta(days=60)),
        ("new", NOW - timedelta(days=2)),
    ):
        create_account(
            engine, account_id, name=account_id.title(), user_id=account_id,
            opening_credit=Decimal(0), now=created,
        )  # fmt: skip


def ask(engine, account_id: str, request_id: str, **kw):
    return authorize_request(
        engine, account_id=account_id, user_id=account_id, model="gpt-4o-mini",
        estimated_input_tokens=1000, max_output_tokens=500, request_id=request_id, **kw,
    )  # fmt: skip


def test_created_after_enforces_for_new_accounts_only(engine, monkeypatch):
    configure(monkeypatch, enforcement_rollout=f"created_after:{CUTOFF}")
    accounts(engine)
    with pytest.raises(InsufficientBalance):
        ask(engine, "new", "n1")
    allowed = ask(engine, "old", "o1")
    assert allowed.hold.amount > 0 and allowed.grace_notice is None
    assert get_wallet(engine, "old").held == allowed.hold.amount
    assert get_wallet(engine, "new").held == 0
    assert verify_ledger(engine).ok


def test_the_grace_period_reports_the_refusal_without_refusing_then_enforces(engine, monkeypatch):
    configure(
        monkeypatch, enforcement_rollout=f"created_after:{CUTOFF}", enforcement_grace_days="7"
    )
    accounts(engine)
    graced = ask(engine, "new", "g1")  # created 2 days ago: 5 days of grace left
    assert graced.grace_notice and "insufficient balance" in graced.grace_notice
    assert get_wallet(engine, "new").held == graced.hold.amount
    status = grace_status(engine, "new", now=NOW)
    assert status is not None and status.ends_at == NOW - timedelta(days=2) + timedelta(days=7)
    assert any("insufficient balance" in r for r in status.would_refuse)
    with pytest.raises(InsufficientBalance):  # a week after creation
        ask(engine, "new", "g2", now=NOW + timedelta(days=6))
    assert grace_status(engine, "old", now=NOW) is None  # not in the cohort at all
    assert ask(engine, "old", "o1").grace_notice is None


def test_a_budget_refusal_in_grace_is_reported_too(engine, monkeypatch):
    # every account, for a day from its creation; holds outlive the test's two hours
    configure(monkeypatch, enforcement_grace_days="1", hold_timeout_seconds="86400")
    at = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)  # mid-month: one budget period
    create_account(
        engine, "rich", name="Rich", user_id="rich", opening_credit=Decimal(50),
        now=at - timedelta(hours=23),
    )  # fmt: skip
    save_budget_rule(
        engine, account_id="rich", user_id="", monthly_limit=Decimal("0.01"),
        thresholds=(100,), block=True, actor="test",
    )  # fmt: skip
    notices = [ask(engine, "rich", f"b{k}", now=at).grace_notice for k in range(40)]
    assert notices[0] is None and any(n and "monthly_budget" in n for n in notices)
    with pytest.raises(SpendLimitExceeded, match="monthly_budget"):  # the day is over
        ask(engine, "rich", "late", now=at + timedelta(hours=2))


def test_the_api_answers_a_graced_request_with_the_header_and_refuses_after(engine, monkeypatch):
    configure(
        monkeypatch, enforcement_rollout=f"created_after:{CUTOFF}", enforcement_grace_days="1"
    )
    create_account(engine, "fresh", name="Fresh", user_id="fresh", opening_credit=Decimal(0))
    create_account(
        engine, "week", name="Week", user_id="week", opening_credit=Decimal(0),
        now=NOW - timedelta(days=7),
    )  # fmt: skip
    reset_default_limiter()
    keys = {
        a: {"Authorization": f"Bearer {create_api_key(engine, Principal(a, a)).secret}"}
        for a in ("fresh", "week")
    }
    body = {
        "request_id": "h1", "user_id": "fresh", "model": "gpt-4o-mini",
        "estimated_input_tokens": 1000, "max_output_tokens": 500,
    }  # fmt: skip
    with TestClient(Starlette(routes=routes())) as http:
        graced = http.post("/api/v1/authorize", json=body, headers=keys["fresh"])
        assert graced.status_code == 200, graced.text
        assert graced.headers["X-Pricing-Grace"].startswith("insufficient balance")
        refused = http.post(
            "/api/v1/authorize", json=body | {"user_id": "week"}, headers=keys["week"]
        )
        assert refused.status_code == 402 and "X-Pricing-Grace" not in refused.headers


def test_billing_reaches_only_its_cohort(engine, monkeypatch, fake_stripe):
    configure(monkeypatch, billing_rollout=f"created_after:{CUTOFF}")
    accounts(engine)
    assert (billing_enabled(engine, "new"), billing_enabled(engine, "old")) == (True, False)
    started = create_checkout(engine, Principal("new", "new"), package_id="popular-v1")
    assert started.url
    with pytest.raises(ConfigurationError, match="not offered to account 'old'"):
        create_checkout(engine, Principal("old", "old"), package_id="popular-v1")


def test_the_integrity_report_shows_who_is_in_which_cohort(engine, monkeypatch):
    configure(
        monkeypatch,
        enforcement_rollout=f"created_after:{CUTOFF}",
        enforcement_grace_days="7",
        billing_rollout="percent:0",
    )
    accounts(engine)
    create_account(engine, "newest", name="Newest", opening_credit=Decimal(1), now=NOW)
    report = rollout_report(engine, ADMIN, now=NOW + timedelta(days=6))
    stages = {r.account_id: r.enforcement for r in report.rows}
    assert stages == {"newest": Stage.GRACE, "new": Stage.ON, "old": Stage.OFF}
    assert [r.account_id for r in report.rows] == ["newest", "new", "old"]
    assert (report.count(Stage.GRACE), report.billing_on) == (1, 0)
    assert report.enforcement == f"created_after:{CUTOFF}, grace 7 days"


@pytest.mark.parametrize("uniform", [True, False])
def test_the_report_counts_every_account_but_lists_only_the_newest(engine, monkeypatch, uniform):
    if uniform:
        configure(monkeypatch, enforcement_rollout="all", billing_rollout="none")
    else:
        configure(monkeypatch, enforcement_rollout=f"created_after:{CUTOFF}", billing_rollout="all")
    monkeypatch.setattr(integrity, "ROLLOUT_ROWS", 2)
    accounts(engine)
    create_account(engine, "newest", name="Newest", opening_credit=Decimal(1), now=NOW)
    report = rollout_report(engine, ADMIN, now=NOW + timedelta(days=6))
    assert [r.account_id for r in report.rows] == ["newest", "new"]
    assert report.accounts == 3
    # old was created before the cutoff: the only one outside a created_after rollout
    on, off = (3, 0) if uniform else (2, 1)
    assert (report.count(Stage.ON), report.count(Stage.OFF), report.count(Stage.GRACE)) == (
        on, off, 0,
    )  # fmt: skip
    assert report.billing_on == (0 if uniform else 3)


def test_enforcement_off_for_everyone_still_wins(engine, monkeypatch):
    configure(monkeypatch, enable_budget_enforcement="false", enforcement_rollout="all")
    accounts(engine)
    assert authorize(
        engine, account_id="new", user_id="new", model="gpt-4o-mini",
        estimated_input_tokens=10, max_output_tokens=10, request_id="x",
    ).amount > 0  # fmt: skip
