"""Budget alerts: stored once per (account, user, month, threshold), optionally POSTed.

After usage is recorded, `record_alerts_on` compares this month's spend with each
budget's thresholds and inserts a `budget_alerts` row for every threshold newly
reached (`ON CONFLICT DO NOTHING` on the unique (account, user, period, threshold):
concurrent recorders cannot alert twice), and the matching email in the outbox
(`adapters.outbox`). The period is the calendar month in
`PRICING_TIMEZONE`, so alerts start afresh on the 1st.

When `PRICING_BUDGET_WEBHOOK_URL` is set, `deliver_alerts` POSTs each new alert as
JSON, signed like Stripe signs its webhooks: header
`X-Pricing-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">` with
`PRICING_BUDGET_WEBHOOK_SECRET`; a 2xx answer sets `notified_at`. Failed deliveries
stay un-notified and are retried by the next delivery (`pricing-core budgets notify`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.engine import Connection

from pricing_core.adapters.outbox import Kind, enqueue_on
from pricing_core.adapters.schema import budget_alerts
from pricing_core.adapters.storage import dialect_insert, run_write
from pricing_core.config import get_settings
from pricing_core.domain.money import usd_str
from pricing_core.domain.periods import month_period
from pricing_core.limits.budget_rules import budget_rules_on, crossed_thresholds
from pricing_core.limits.spend import spend_on

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """A budget threshold reached in a month. `user_id` "" = the account's budget.
    Decimal USD."""

    id: int
    account_id: str
    user_id: str
    period: str
    threshold: int
    spend: Decimal
    budget: Decimal
    created_at: datetime
    notified_at: datetime | None


def _alert(row: object) -> BudgetAlert:
    return BudgetAlert(*(getattr(row, f) for f in BudgetAlert.__slots__))  # type: ignore[attr-defined]


def record_alerts_on(
    conn: Connection, *, account_id: str, user_id: str | None, now: datetime
) -> list[BudgetAlert]:
    """Insert the alerts newly reached by the account's and the user's budgets this
    month, inside `conn`'s transaction. Returns: the alerts inserted now."""
    period = month_period(now, get_settings().tz)
    new: list[BudgetAlert] = []
    for rule in budget_rules_on(conn, account_id, user_id):
        spend = spend_on(
            conn,
            account_id=account_id,
            period=period,
            user_id=rule.user_id or None,
            include_holds=False,
        )
        for threshold in crossed_thresholds(rule.monthly_limit, rule.thresholds, spend):
            stmt = dialect_insert(conn, budget_alerts).values(
                account_id=account_id,
                user_id=rule.user_id,
                period=period.label,
                threshold=threshold,
                spend=spend,
                budget=rule.monthly_limit,
                created_at=now,
            )
            row = conn.execute(
                stmt.on_conflict_do_nothing(
                    index_elements=["account_id", "user_id", "period", "threshold"]
                ).returning(*budget_alerts.c)
            ).first()
            if row is not None:
                new.append(_alert(row))
                enqueue_on(  # the email, in the same transaction, once per alert
                    conn,
                    key=f"budget:{account_id}:{rule.user_id}:{period.label}:{threshold}",
                    kind=Kind.BUDGET_THRESHOLD,
                    account_id=account_id,
                    payload={
                        "user_id": rule.user_id or None,  # a user's budget: to that user
                        "percent": threshold,
                        "period": period.label,
                        "spend": str(spend),
                        "limit": str(rule.monthly_limit),
                    },
                    now=now,
                )
    return new


def list_alerts(engine: Engine, account_id: str, *, period: str | None = None) -> list[BudgetAlert]:
    """The account's alerts (of one "YYYY-MM" period, or all), newest first."""
    a = budget_alerts.c
    stmt = select(budget_alerts).where(a.account_id == account_id)
    if period is not None:
        stmt = stmt.where(a.period == period)
    with engine.connect() as conn:
        return [_alert(r) for r in conn.execute(stmt.order_by(a.created_at.desc(), a.id.desc()))]


def alert_payload(alert: BudgetAlert) -> bytes:
    """The JSON body POSTed for an alert (amounts as decimal strings)."""
    body = {
        "type": "budget.threshold_reached",
        "id": alert.id,
        "account_id": alert.account_id,
        "user_id": alert.user_id or None,
        "period": alert.period,
        "threshold_percent": alert.threshold,
        "spend": usd_str(alert.spend),
        "budget": usd_str(alert.budget),
        "created_at": alert.created_at.isoformat(),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign_payload(payload: bytes, secret: str, timestamp: int) -> str:
    """The `X-Pricing-Signature` header value for `payload` at unix time `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def deliver_alerts(
    engine: Engine,
    *,
    now: datetime | None = None,
    timeout: float = 3.0,  # seconds per POST, not money
) -> int:
    """POST every un-notified alert to the operator's webhook, signed. No-op without a
    webhook URL. Returns: the number delivered (2xx)."""
    settings = get_settings()
    if not settings.budget_webhook_url:
        return 0
    secret = (
        settings.budget_webhook_secret.get_secret_value() if settings.budget_webhook_secret else ""
    )
    with engine.connect() as conn:
        pending = [
            _alert(r)
            for r in conn.execute(
                select(budget_alerts)
                .where(budget_alerts.c.notified_at.is_(None))
                .order_by(budget_alerts.c.id)
                .limit(500)
            )
        ]
    delivered = 0
    for alert in pending:
        at = now or datetime.now(UTC)
        payload = alert_payload(alert)
        request = urllib.request.Request(
            settings.budget_webhook_url,
            data=payload,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "X-Pricing-Signature": sign_payload(payload, secret, int(at.timestamp())),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                ok = 200 <= response.status < 300
        except (urllib.error.URLError, OSError) as exc:
            log.warning("budget alert %s not delivered: %s", alert.id, exc)
            continue
        if ok:
            mark = (
                update(budget_alerts)
                .where(budget_alerts.c.id == alert.id, budget_alerts.c.notified_at.is_(None))
                .values(notified_at=at)
            )
            run_write(engine, partial(_execute, statement=mark))
            delivered += 1
    return delivered


def _execute(conn: Connection, *, statement: Any) -> None:
    conn.execute(statement)
