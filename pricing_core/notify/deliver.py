"""Delivering the outbox (`adapters.outbox`): each due notification is rendered from
its Jinja2 templates (text and HTML) and sent by email to its recipients, with
retries and backoff; every outcome is recorded on its row.

Recipients: for an account's kinds, the account's users with an email who did not
turn the kind off; for admin kinds, `PRICING_ADMIN_EMAILS` and admin users. A
message never holds another account's data or any secret.

Retries: after a failed attempt the row stays `pending` and is retried after 1, 2,
then 4 minutes; after `QUICK_ATTEMPTS` it is `failed` and retried hourly, so nothing
is lost when the server comes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy import Engine, select, update

from pricing_core.adapters.outbox import Kind
from pricing_core.adapters.schema import accounts, users
from pricing_core.adapters.schema_notify import notifications
from pricing_core.adapters.storage import run_write
from pricing_core.config import get_settings
from pricing_core.domain.errors import ConfigurationError
from pricing_core.domain.principal import Principal, require_admin
from pricing_core.notify.email import Email, SendFailed, send
from pricing_core.notify.preferences import lines_of_on, opted_out_on, unsubscribe_link

QUICK_ATTEMPTS = 3
LEASE = timedelta(minutes=5)  # a claimed row is not claimed again meanwhile
SUBJECTS = {
    Kind.LOW_BALANCE: "Low balance on {account_name}: {balance}",
    Kind.CRITICAL_BALANCE: "Almost out of credit on {account_name}: {balance}",
    Kind.BUDGET_THRESHOLD: "{account_name} used {percent} % of its monthly budget",
    Kind.UNUSUAL_SPEND: "Unusual spending on {account_name}: {recent} on {day}",
    Kind.WEEKLY_SUMMARY: "{account_name}: {spend} spent from {start} to {end}",
    Kind.PAYMENT_FAILED: "A payment of {amount} for {account_name} failed",
    Kind.HIGH_COST_REPORT: "High-cost accounts on {day}",
    Kind.SPEND_ANOMALIES: "Spending jumped on {day}",
    Kind.CATALOG_STALE: "The price catalog is {age} days old",
    Kind.LEDGER_CHECK_FAILED: "The ledger check found {count} violation(s)",
}
PAGES = {  # where each kind's email links back to ("": Overview)
    Kind.LOW_BALANCE: "buy_credits",
    Kind.CRITICAL_BALANCE: "buy_credits",
    Kind.BUDGET_THRESHOLD: "budget",
    Kind.UNUSUAL_SPEND: "usage",
    Kind.WEEKLY_SUMMARY: "",
    Kind.PAYMENT_FAILED: "buy_credits",
    Kind.HIGH_COST_REPORT: "admin_usage",
    Kind.SPEND_ANOMALIES: "admin_usage",
    Kind.CATALOG_STALE: "admin_integrity",
    Kind.LEDGER_CHECK_FAILED: "admin_integrity",
}
# Payload fields that hold Decimal USD strings, at any depth (lists of accounts, models).
MONEY_FIELDS = frozenset(
    {"balance", "threshold", "spend", "limit", "amount", "recent", "baseline", "projected"}
)


def _shown(value: Any, key: str = "") -> Any:
    """A payload value for people: amounts in the display unit (`DisplayUnit.format`:
    USD to the cent, a sub-cent amount never "$0.00"; or credits), inside lists and
    mappings too."""
    if isinstance(value, dict):
        return {k: _shown(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown(v) for v in value]
    if key in MONEY_FIELDS and isinstance(value, str):
        return get_settings().display_unit.format(Decimal(value))
    return value


@cache
def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("pricing_core.notify", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def render(kind: Kind, values: dict[str, Any], *, unsubscribe: str | None) -> tuple[str, str, str]:
    """(subject, text, html) of a notification. Amount fields are USD decimal strings."""
    shown = _shown(values)
    base = get_settings().public_url.rstrip("/")
    context = {**shown, "link": f"{base}/{PAGES[kind]}", "unsubscribe": unsubscribe}
    env = _templates()
    return (
        SUBJECTS[kind].format(**shown),
        env.get_template(f"{kind}.txt").render(context),
        env.get_template(f"{kind}.html").render(context),
    )


def _recipients(
    engine: Engine, kind: Kind, account_id: str | None, payload: dict[str, Any]
) -> tuple[list[tuple[str, str]], str]:
    """([(user id or "", email)], account name) of a notification: without those who
    turned the kind off; about one user's budget, that user only; a low-balance line,
    to the users whose line it is (their own, or the default when they chose none)."""
    u = users.c
    with engine.connect() as conn:
        if kind.for_admins:
            configured = [e.strip() for e in get_settings().admin_emails.split(",") if e.strip()]
            admins = conn.execute(
                select(u.id, u.email).where(u.role == "admin", u.email.is_not(None))
            ).all()
            found = [("", e) for e in configured] + [(i, e) for i, e in admins]
            name = "the operator"
        else:
            found = [tuple(r) for r in conn.execute(
                select(u.id, u.email).where(u.account_id == account_id, u.email.is_not(None))
            )]  # fmt: skip
            name = conn.execute(
                select(accounts.c.name).where(accounts.c.id == account_id)
            ).scalar() or str(account_id)
        ids = [i for i, _ in found if i]
        off = opted_out_on(conn, ids, kind)
        if payload.get("user_id"):
            found = [(i, e) for i, e in found if i == payload["user_id"]]
        if kind is Kind.LOW_BALANCE:
            own = lines_of_on(conn, ids)
            line, custom = Decimal(payload["threshold"]), bool(payload.get("custom"))
            found = [(i, e) for i, e in found if (own.get(i) == line if custom else i not in own)]
    unique: dict[str, tuple[str, str]] = {}
    for user_id, email in found:
        if user_id not in off:
            unique.setdefault(email.lower(), (user_id, email))
    return list(unique.values()), name


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one `deliver_notifications` run did."""

    sent: int
    retried: int
    skipped: int  # nobody to send to (no email, or every recipient opted out)


def deliver_notifications(
    engine: Engine, *, now: datetime | None = None, limit: int = 200
) -> DeliveryReport:
    """Send the due notifications (oldest first, at most `limit`). Safe to run in
    several processes: each row is claimed before it is sent.

    Raises: ConfigurationError (no PRICING_SMTP_URL) before claiming anything."""
    if get_settings().smtp_url is None:
        raise ConfigurationError("email is not configured: set PRICING_SMTP_URL")
    at = now or datetime.now(UTC)
    n = notifications.c

    def claim(conn: Any) -> list[Any]:
        due = conn.execute(
            select(n.id).where(n.status.in_(("pending", "failed")), n.next_attempt_at <= at)
            .order_by(n.id).limit(limit)
        ).scalars().all()  # fmt: skip
        if not due:
            return []
        return conn.execute(
            update(notifications)
            .where(n.id.in_(due), n.next_attempt_at <= at, n.status.in_(("pending", "failed")))
            .values(next_attempt_at=at + LEASE)
            .returning(n.id, n.kind, n.account_id, n.payload, n.attempts)
        ).all()  # fmt: skip

    sent = retried = skipped = 0
    for row in run_write(engine, claim):
        kind = Kind(row.kind)
        recipients, name = _recipients(engine, kind, row.account_id, row.payload)
        values: dict[str, Any] = {"account_name": name, **row.payload}
        if not recipients:
            _finish(engine, row.id, status="skipped", at=at)
            skipped += 1
            continue
        try:
            for user_id, email in recipients:
                link = unsubscribe_link(user_id, kind) if user_id else None
                subject, text, html = render(kind, values, unsubscribe=link)
                send(Email((email,), subject, text, html))
        except SendFailed as exc:
            attempts = row.attempts + 1
            quick = attempts < QUICK_ATTEMPTS
            wait = timedelta(minutes=2 ** (attempts - 1)) if quick else timedelta(hours=1)
            _finish(
                engine, row.id, status="pending" if quick else "failed", at=at,
                attempts=attempts, error=str(exc), retry_at=at + wait,
            )  # fmt: skip
            retried += 1
            continue
        _finish(engine, row.id, status="sent", at=at, attempts=row.attempts + 1,
                recipients=", ".join(e for _, e in recipients))  # fmt: skip
        sent += 1
    return DeliveryReport(sent, retried, skipped)


def _finish(
    engine: Engine,
    notification_id: int,
    *,
    status: str,
    at: datetime,
    attempts: int | None = None,
    error: str | None = None,
    retry_at: datetime | None = None,
    recipients: str | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "last_error": error}
    if attempts is not None:
        values["attempts"] = attempts
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    if status == "sent":
        values.update(sent_at=at, recipients=recipients)
    run_write(
        engine,
        lambda conn: conn.execute(
            update(notifications).where(notifications.c.id == notification_id).values(**values)
        ),
    )


@dataclass(frozen=True, slots=True)
class NotificationRow:
    """One outbox row for the admin log."""

    id: int
    kind: str
    account_id: str | None
    status: str
    attempts: int
    recipients: str | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


def notification_log(
    engine: Engine, viewer: Principal, *, status: str | None = None, limit: int = 200
) -> list[NotificationRow]:
    """The latest notifications (newest first), optionally of one status. Raises:
    PermissionDenied."""
    require_admin(viewer)
    n = notifications.c
    stmt = select(
        n.id, n.kind, n.account_id, n.status, n.attempts, n.recipients, n.last_error,
        n.created_at, n.sent_at,
    ).order_by(n.id.desc()).limit(limit)  # fmt: skip
    if status:
        stmt = stmt.where(n.status == status)
    with engine.connect() as conn:
        return [NotificationRow(*r) for r in conn.execute(stmt)]
