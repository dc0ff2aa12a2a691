"""Email notifications against a real SMTP server on 127.0.0.1 (aiosmtpd): once per
crossing under concurrent charges, preferences and the one-click unsubscribe link,
retries with backoff when the server fails, and nothing lost."""

from __future__ import annotations

import email
import re
import socket
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email import policy

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from starlette.applications import Starlette

from pricing_core.adapters.outbox import Kind
from pricing_core.api.http import routes
from pricing_core.config import get_settings
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.wallets import EntryKind, create_account, credit, ensure_user, get_wallet
from pricing_core.metering.record import record_request_usage, record_usage
from pricing_core.notify.deliver import deliver_notifications, notification_log
from pricing_core.notify.preferences import preferences, set_low_balance_line, set_preference
from tests.admin_support import ADMIN


class Inbox:
    """An aiosmtpd handler that keeps every message, or refuses them all (451)."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []
        self.refusing = False

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        if self.refusing:
            return "451 4.3.0 mailbox busy, try again later"
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def to(self, address: str) -> list[email.message.Message]:
        return [m for m in self.messages if m["To"] == address]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp(monkeypatch):
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    monkeypatch.setenv("PRICING_SMTP_URL", f"smtp://127.0.0.1:{controller.port}")
    monkeypatch.setenv("PRICING_NOTIFICATION_SECRET", "test-notification-secret-0123456789")
    get_settings.cache_clear()
    yield inbox
    controller.stop()


def account(engine, balance: str) -> None:
    create_account(engine, "acme", name="Acme", opening_credit=Decimal(balance))
    ensure_user(engine, "acme", "ann", email="ann@example.com", name="Ann")


def charge(engine, request_id: str, record=record_usage) -> None:
    record(
        engine,
        UsageEvent(
            request_id=request_id,
            account_id="acme",
            user_id="ann",
            operation="chat_message",
            provider="openai",
            model="gpt-4o",
            input_tokens=1000,
            output_tokens=500,
        ),  # fmt: skip  ($0.009375 each)
    )


def charge_concurrently(engine, prefix: str, count: int = 32) -> None:
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            charge(engine, f"{prefix}-{k}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]


@pytest.mark.postgres
def test_32_concurrent_charges_below_one_dollar_send_one_email_per_crossing(pg_engine, smtp):
    account(pg_engine, "1.10")  # 32 x $0.009375 = $0.30: crosses $1.00 once
    charge_concurrently(pg_engine, "a")
    assert get_wallet(pg_engine, "acme").balance == Decimal("1.10") - 32 * Decimal("0.009375")
    report = deliver_notifications(pg_engine)
    assert report.sent == 1
    [message] = smtp.to("ann@example.com")
    # the charge that crossed: the 11th, 1.10 - 11 x 0.009375 = 0.996875, read in cents
    assert message["Subject"] == "Low balance on Acme: $1.00"
    assert deliver_notifications(pg_engine).sent == 0  # nothing twice

    credit(pg_engine, "acme", Decimal("0.50"), kind=EntryKind.GRANT, idempotency_key="top-up")
    charge_concurrently(pg_engine, "b")  # $1.30 -> $1.00: not below yet
    charge(pg_engine, "c")  # $0.990625: the second crossing
    deliver_notifications(pg_engine)
    assert len(smtp.to("ann@example.com")) == 2
    assert all(m["Subject"].startswith("Low balance") for m in smtp.messages)


def test_a_user_who_turned_it_off_gets_nothing_and_the_link_turns_it_off(engine, smtp):
    account(engine, "1.00")
    ensure_user(engine, "acme", "bob", email="bob@example.com", name="Bob")
    set_preference(engine, Principal("bob", "acme"), Kind.LOW_BALANCE, False)
    charge(engine, "x1")
    deliver_notifications(engine)
    assert [m["To"] for m in smtp.messages] == ["ann@example.com"]
    body = smtp.messages[0].get_body(("plain",)).get_content()
    assert "fell to $0.99, below $1.00" in body and "/buy_credits" in body  # $0.990625
    link = re.search(r"Stop these emails: (\S+)", body).group(1)
    with TestClient(Starlette(routes=routes())) as http:
        answer = http.get(link.replace(get_settings().public_url, ""))
        assert answer.status_code == 200 and "no longer get low balance" in answer.text
        tampered = http.get(link.replace(get_settings().public_url, "")[:-3] + "abc")
        assert tampered.status_code == 400
    assert preferences(engine, Principal("ann", "acme"))[Kind.LOW_BALANCE] is False
    credit(engine, "acme", Decimal("0.01"), kind=EntryKind.GRANT, idempotency_key="g")
    charge(engine, "x2")  # $1.000625 -> $0.99125: a second crossing; both opted out
    assert deliver_notifications(engine).skipped == 1
    assert len(smtp.messages) == 1


def test_a_failing_smtp_server_means_retries_then_failed_then_sent(engine, smtp):
    account(engine, "1.00")
    charge(engine, "f1")
    smtp.refusing = True
    start = datetime.now(UTC)
    attempts = []
    for minutes in (0, 1, 3):  # due after 1, then 2 more minutes
        report = deliver_notifications(engine, now=start + timedelta(minutes=minutes))
        [row] = notification_log(engine, ADMIN)
        attempts.append((report.retried, row.status, row.attempts))
    assert attempts == [(1, "pending", 1), (1, "pending", 2), (1, "failed", 3)]
    assert "451" in row.last_error
    assert deliver_notifications(engine, now=start + timedelta(minutes=30)).retried == 0  # waits
    smtp.refusing = False
    assert deliver_notifications(engine, now=start + timedelta(minutes=64)).sent == 1
    [row] = notification_log(engine, ADMIN)
    assert (row.status, row.recipients) == ("sent", "ann@example.com")
    assert len(smtp.messages) == 1


def test_budget_alerts_are_emailed_once_with_the_figures(engine, smtp):
    from pricing_core.limits.budgets import save_budget

    account(engine, "50")
    save_budget(engine, Principal("ann", "acme"), monthly_limit=Decimal("0.01"), thresholds=(50,))
    charge(engine, "b1", record_request_usage)  # $0.009375: 93.75 % of $0.01
    charge(engine, "b2", record_request_usage)
    deliver_notifications(engine)
    [message] = smtp.messages
    assert message["Subject"] == "Acme used 50 % of its monthly budget"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM notifications")).scalar_one() == 1


def test_a_users_own_low_balance_line_replaces_the_default_for_them(engine, smtp):
    from pricing_core.admin.accounts import adjust_balance
    from pricing_core.notify.preferences import low_balance_line, set_low_balance_line

    account(engine, "5.005")
    ensure_user(engine, "acme", "bob", email="bob@example.com", name="Bob")
    ann = Principal("ann", "acme")
    with pytest.raises(InvalidUsage, match="0.01 to 1000000 USD in cents"):
        set_low_balance_line(engine, ann, "5.001")
    set_low_balance_line(engine, ann, "5")
    assert low_balance_line(engine, ann) == Decimal(5)
    charge(engine, "l1")  # $5.005 -> $4.995625: Ann's line
    deliver_notifications(engine)
    assert [(m["To"], m["Subject"]) for m in smtp.messages] == [
        ("ann@example.com", "Low balance on Acme: $5.00")  # $4.995625 in cents
    ]
    adjust_balance(engine, ADMIN, "acme", "-3.99", reason="test", idempotency_key="down")
    charge(engine, "l2")  # $1.005625 -> $0.99625: the default line, for Bob only
    deliver_notifications(engine)
    assert [m["To"] for m in smtp.messages] == ["ann@example.com", "bob@example.com"]
    set_low_balance_line(engine, ann, None)
    assert low_balance_line(engine, ann) is None


def test_in_credits_the_low_balance_email_reads_in_credits(engine, smtp, monkeypatch):
    monkeypatch.setenv("PRICING_UNIT", "credits")
    monkeypatch.setenv("PRICING_CREDITS_PER_USD", "10")
    get_settings.cache_clear()
    account(engine, "1.00")
    charge(engine, "k1")  # $0.990625 = 9.90625 credits, below $1.00 = 10 credits
    deliver_notifications(engine)
    [message] = smtp.messages
    assert message["Subject"] == "Low balance on Acme: 9.91 credits"
    body = message.get_body(("plain",)).get_content()
    assert "fell to 9.91 credits, below 10 credits" in body


def test_a_users_own_line_is_crossed_on_every_charge_path(engine, smtp):
    """The one-call charge (PostgreSQL) reads the users' own lines in its statement:
    a charge across Ann's $5.00 line is handed to the general path and notifies."""
    account(engine, "5.01")
    set_low_balance_line(engine, Principal("ann", "acme"), "5")
    charge(engine, "own-1")  # $5.000625: above the line
    assert deliver_notifications(engine).sent == 0
    charge(engine, "own-2")  # $4.99125: across it
    deliver_notifications(engine)
    [message] = smtp.to("ann@example.com")
    assert message["Subject"] == "Low balance on Acme: $4.99"
    assert get_wallet(engine, "acme").balance == Decimal("5.01") - 2 * Decimal("0.009375")
