"""Admin account management: search, one account's state, balance adjustments and
bulk grants, each written to the ledger AND the audit log in one transaction.

- `adjust_balance`: a signed amount with a required reason. Amounts of at least the
  `admin_confirm_usd` setting (either sign) need `confirmed=True` (the page's
  confirmation step). Keyed by the caller's idempotency key: a double submit applies
  once.
- `bulk_grant`: one `grant` entry per account, keyed `grant:<batch key>`, each in its
  own transaction with its audit row. Re-submitting the same batch (after a crash
  halfway, or a double click) grants each account exactly once and reports the rest
  as already applied.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Engine, func, or_, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.audit import actor_of, write_audit
from pricing_core.adapters.schema import (
    accounts,
    holds,
    ledger_entries,
    usage_daily,
    users,
    wallets,
)
from pricing_core.config import get_settings
from pricing_core.domain.errors import (
    IdempotencyConflict,
    InvalidUsage,
    PricingError,
    UnknownAccount,
)
from pricing_core.domain.money import ZERO, format_usd, round_nano, to_usd
from pricing_core.domain.periods import month_period
from pricing_core.domain.principal import Principal, require_admin
from pricing_core.ledger.wallets import (
    EntryKind,
    LedgerEntry,
    Posting,
    idempotent_write,
    post_entry,
)
from pricing_core.plans.subscriptions import plan_on

MAX_ADMIN_AMOUNT = Decimal(1_000_000)  # USD per adjustment or grant: above is a typo
MAX_REASON = 1000
_BATCH_KEY = re.compile(r"^[A-Za-z0-9._:@-]{1,64}$")


class ConfirmationRequired(PricingError):
    """A large adjustment was submitted without the confirmation step."""


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """An account as the admin list shows it. Decimal USD."""

    account_id: str
    name: str
    kind: str
    emails: tuple[str, ...]
    balance: Decimal
    held: Decimal
    spend_this_month: Decimal
    plan: str
    created_at: datetime

    @property
    def available(self) -> Decimal:
        return self.balance - self.held


@dataclass(frozen=True, slots=True)
class HoldRow:
    id: str
    amount: Decimal
    request_id: str | None
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One day x model of an account's usage (from the rollups). USD."""

    day: date
    model: str
    operation: str
    requests: int
    input_tokens: int
    output_tokens: int
    price: Decimal
    provider_cost: Decimal


def _summaries(conn: Connection, ids: Sequence[str], now: datetime) -> list[AccountSummary]:
    if not ids:
        return []
    rows = conn.execute(
        select(accounts, wallets.c.balance, wallets.c.held)
        .join(wallets, wallets.c.account_id == accounts.c.id)
        .where(accounts.c.id.in_(ids))
    ).all()
    emails: dict[str, list[str]] = {}
    for account_id, email in conn.execute(
        select(users.c.account_id, users.c.email)
        .where(users.c.account_id.in_(ids), users.c.email.is_not(None))
        .order_by(users.c.email)
    ):
        emails.setdefault(account_id, []).append(email)
    d = usage_daily.c
    spend = dict(
        conn.execute(
            select(d.account_id, func.sum(d.price))
            .where(d.account_id.in_(ids), d.day >= month_period(now, get_settings().tz).first_day)
            .group_by(d.account_id)
        ).all()
    )
    by_id = {
        r.id: AccountSummary(
            r.id,
            r.name,
            r.kind,
            tuple(emails.get(r.id, ())),
            r.balance,
            r.held,
            spend.get(r.id) or ZERO,
            plan_on(conn, r.id, now).name,
            r.created_at,
        )
        for r in rows
    }
    return [by_id[i] for i in ids if i in by_id]


def search_accounts(
    engine: Engine,
    principal: Principal,
    query: str = "",
    *,
    limit: int = 50,
    now: datetime | None = None,
) -> list[AccountSummary]:
    """Accounts whose id, name or a user's email contains `query` (case-insensitive;
    empty: all), by name, at most `limit`. Spend is this calendar month's (configured
    zone), from the rollups. Raises: PermissionDenied.
    """
    require_admin(principal)
    at = now or datetime.now(UTC)
    needle = (query or "").strip().lower()[:320]
    a = accounts.c
    stmt = select(a.id).order_by(a.name, a.id).limit(max(1, min(int(limit), 500)))
    if needle:
        stmt = stmt.where(
            or_(
                func.lower(a.id).contains(needle, autoescape=True),
                func.lower(a.name).contains(needle, autoescape=True),
                a.id.in_(
                    select(users.c.account_id).where(
                        func.lower(users.c.email).contains(needle, autoescape=True)
                    )
                ),
            )
        )
    with engine.connect() as conn:
        ids = list(conn.execute(stmt).scalars())
        return _summaries(conn, ids, at)


def account_summary(
    engine: Engine, principal: Principal, account_id: str, *, now: datetime | None = None
) -> AccountSummary:
    """One account's balance, available balance, holds, spend this month and plan.

    Raises: PermissionDenied, UnknownAccount.
    """
    require_admin(principal)
    with engine.connect() as conn:
        found = _summaries(conn, [account_id], now or datetime.now(UTC))
    if not found:
        raise UnknownAccount(f"unknown account {account_id!r}")
    return found[0]


def account_holds(engine: Engine, principal: Principal, account_id: str) -> list[HoldRow]:
    """The account's active holds, newest first. Raises: PermissionDenied."""
    require_admin(principal)
    h = holds.c
    with engine.connect() as conn:
        return [
            HoldRow(r.id, r.amount, r.request_id, r.created_at, r.expires_at)
            for r in conn.execute(
                select(holds)
                .where(h.account_id == account_id, h.status == "active")
                .order_by(h.created_at.desc())
            )
        ]


def account_ledger(
    engine: Engine, principal: Principal, account_id: str, *, limit: int = 200
) -> list[LedgerEntry]:
    """The account's newest ledger entries first. Raises: PermissionDenied."""
    require_admin(principal)
    le = ledger_entries.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(ledger_entries)
            .where(le.account_id == account_id)
            .order_by(le.id.desc())
            .limit(max(1, min(int(limit), 5000)))
        ).all()
    return [LedgerEntry(**{f: getattr(r, f) for f in LedgerEntry.__slots__}) for r in rows]  # type: ignore[attr-defined]


def account_usage(
    engine: Engine, principal: Principal, account_id: str, *, start: date, end: date
) -> list[UsageRow]:
    """The account's usage per day, model and operation over [start, end], newest day
    first. Raises: PermissionDenied. Source: usage_daily."""
    require_admin(principal)
    d = usage_daily.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                d.day,
                d.provider,
                d.model,
                d.operation,
                func.sum(d.requests),
                func.sum(d.input_tokens),
                func.sum(d.output_tokens),
                func.sum(d.price),
                func.sum(d.provider_cost),
            )
            .where(d.account_id == account_id, d.day >= start, d.day <= end)
            .group_by(d.day, d.provider, d.model, d.operation)
            .order_by(d.day.desc(), d.provider, d.model, d.operation)
        ).all()
    return [
        UsageRow(r[0], f"{r[1]}/{r[2]}", r[3], int(r[4]), int(r[5]), int(r[6]), r[7], r[8])
        for r in rows
    ]


# ---------------------------------------------------------------- changes


def _reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidUsage("a reason is required")
    text = reason.strip()
    if len(text) > MAX_REASON:
        raise InvalidUsage(f"the reason is longer than {MAX_REASON} characters ({len(text)})")
    return text


def _amount(amount: object, *, positive: bool) -> Decimal:
    try:
        value = to_usd(amount)
    except ValueError as exc:
        raise InvalidUsage(f"amount: {exc}") from None
    if value == 0 or (positive and value < 0):
        raise InvalidUsage(f"the amount must be {'positive' if positive else 'non-zero'}: {value}")
    if value != round_nano(value):
        raise InvalidUsage(f"the amount {value} is finer than a nano-USD")
    if abs(value) > MAX_ADMIN_AMOUNT:
        raise InvalidUsage(f"the amount {value} is above the {MAX_ADMIN_AMOUNT} USD limit")
    return value


def _audit_change(
    conn: Connection,
    principal: Principal,
    posting: Posting,
    *,
    action: str,
    held: Decimal,
    now: datetime,
) -> None:
    entry = posting.entry
    before = entry.balance_after - entry.amount
    write_audit(
        conn,
        actor=actor_of(principal),
        action=action,
        now=now,
        account_id=entry.account_id,
        target=f"ledger_entry:{entry.id}",
        before={"balance": before, "available": before - held},
        after={
            "balance": entry.balance_after,
            "available": entry.balance_after - held,
            "amount": entry.amount,
            "idempotency_key": entry.idempotency_key,
        },
        reason=entry.reason,
    )


def _held(conn: Connection, account_id: str) -> Decimal:
    held = conn.execute(
        select(wallets.c.held).where(wallets.c.account_id == account_id)
    ).scalar_one_or_none()
    if held is None:
        raise UnknownAccount(f"unknown account {account_id!r}")
    return held


def adjust_balance(
    engine: Engine,
    principal: Principal,
    account_id: str,
    amount: object,
    *,
    reason: str,
    idempotency_key: str,
    confirmed: bool = False,
    now: datetime | None = None,
) -> Posting:
    """Add (positive) or take back (negative) credit, with a required reason.

    The `adjustment` ledger entry (actor, reason) and the audit row (actor, time,
    balance before/after, reason) are written in one transaction. A negative amount
    may not take the available balance below zero.
    Args:
        amount: signed USD (Decimal, int or str), non-zero, at most 1,000,000.
        idempotency_key: the form submission's key; the same key applies once.
        confirmed: required when |amount| >= the `admin_confirm_usd` setting.
    Returns: Posting (replayed=True if the key was already applied).
    Raises: PermissionDenied, InvalidUsage, ConfirmationRequired, UnknownAccount,
        InsufficientBalance, IdempotencyConflict.
    """
    require_admin(principal)
    value = _amount(amount, positive=False)
    text = _reason(reason)
    if not isinstance(idempotency_key, str) or not _BATCH_KEY.match(idempotency_key):
        raise InvalidUsage(f"bad idempotency key {idempotency_key!r:.80}")
    limit = get_settings().admin_confirm_usd
    if abs(value) >= limit and not confirmed:
        raise ConfirmationRequired(
            f"an adjustment of {format_usd(value, total=True)} is at least the "
            f"{format_usd(limit, total=True)} confirmation threshold: confirm it"
        )
    at = now or datetime.now(UTC)

    def work(conn: Connection) -> Posting:
        held = _held(conn, account_id)
        posting = post_entry(
            conn,
            account_id=account_id,
            amount=value,
            kind=EntryKind.ADJUSTMENT,
            idempotency_key=f"adjust:{idempotency_key}",
            reason=text,
            actor=actor_of(principal),
            now=at,
        )
        if not posting.replayed:
            _audit_change(conn, principal, posting, action="balance.adjust", held=held, now=at)
        return posting

    return idempotent_write(engine, work)


# ---------------------------------------------------------------- bulk grants


class GrantStatus(StrEnum):
    DONE = "done"
    ALREADY_APPLIED = "already applied"
    UNKNOWN_ACCOUNT = "unknown account"
    DUPLICATE = "duplicate in list"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class GrantRow:
    """One line of a bulk grant's report (`row` counts from 1)."""

    row: int
    target: str
    account_id: str | None
    status: GrantStatus
    detail: str = ""


_HEADER_NAMES = {"account_id", "account", "id", "email", "e-mail"}
_SPLIT = re.compile(r"[\s,;]+")


def parse_targets(data: str | bytes) -> list[str]:
    """Account ids or emails from pasted text or an uploaded file, in order.

    Accepts one per line, or separated by commas, semicolons or spaces; or a CSV whose
    header row names an `account_id`, `id` or `email` column (then only that column is
    read). Blank lines and lines starting with `#` are skipped.
    Raises: InvalidUsage for data above the `admin_upload_max_bytes` setting, binary
    or non-UTF-8 data, broken CSV quoting, or more than `admin_bulk_max_rows` targets.
    """
    settings = get_settings()
    raw = data if isinstance(data, bytes) else str(data).encode("utf-8", "replace")
    if len(raw) > settings.admin_upload_max_bytes:
        raise InvalidUsage(
            f"the list is {len(raw):,} bytes; the limit is {settings.admin_upload_max_bytes:,}"
        )
    if b"\x00" in raw:
        raise InvalidUsage(
            "the file looks binary (it contains NUL bytes); upload a text or CSV file"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidUsage(f"the file is not UTF-8 text (byte {exc.start})") from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return []
    targets: list[str] = []
    try:
        rows = list(csv.reader(io.StringIO("\n".join(lines))))
    except csv.Error as exc:
        raise InvalidUsage(f"the CSV could not be read: {exc}") from None
    header = [cell.strip().lower() for cell in rows[0]]
    column = next((i for i, name in enumerate(header) if name in _HEADER_NAMES), None)
    if column is not None:
        targets = [r[column].strip() for r in rows[1:] if len(r) > column and r[column].strip()]
    else:
        for line in lines:
            targets.extend(t for t in _SPLIT.split(line) if t)
    if len(targets) > settings.admin_bulk_max_rows:
        raise InvalidUsage(
            f"{len(targets):,} targets; the limit is {settings.admin_bulk_max_rows:,} per grant"
        )
    return targets


def _bad_target(target: str) -> str | None:
    if len(target) > 320:
        return "longer than 320 characters"
    if any(unicodedata.category(ch).startswith("C") for ch in target):
        return "contains control characters"
    return None


def _resolve(engine: Engine, targets: Sequence[str]) -> dict[str, str]:
    """target -> account id, for ids and (case-insensitive) emails that exist."""
    ids = {t for t in targets if "@" not in t}
    emails = {t.lower() for t in targets if "@" in t}
    found: dict[str, str] = {}
    with engine.connect() as conn:
        for chunk in _chunks(sorted(ids)):
            for (account_id,) in conn.execute(
                select(accounts.c.id).where(accounts.c.id.in_(chunk))
            ):
                found[account_id] = account_id
        for chunk in _chunks(sorted(emails)):
            for email, account_id in conn.execute(
                select(func.lower(users.c.email), users.c.account_id).where(
                    func.lower(users.c.email).in_(chunk)
                )
            ):
                found[email] = account_id
    keys = {t: t.lower() if "@" in t else t for t in targets}
    return {t: found[k] for t, k in keys.items() if k in found}


def _chunks(items: list[str], size: int = 500) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def bulk_grant(
    engine: Engine,
    principal: Principal,
    targets: Sequence[str],
    *,
    amount: object,
    reason: str,
    batch_key: str,
    now: datetime | None = None,
) -> list[GrantRow]:
    """Grant `amount` USD to each listed account once, with a per-row report.

    Each account gets one `grant` ledger entry keyed `grant:<batch_key>` and an audit
    row, in its own transaction. Rows: done / already applied (this batch key was
    applied to the account before) / unknown account / duplicate in list / invalid.
    Args:
        targets: account ids or user emails (see `parse_targets`).
        amount: positive USD, at most 1,000,000.
        batch_key: names the grant (1-64 of letters, digits, . _ : @ -); re-submitting
            the same key never grants twice.
    Raises: PermissionDenied, InvalidUsage (amount, reason, key, too many rows).
    """
    require_admin(principal)
    value = _amount(amount, positive=True)
    text = _reason(reason)
    if not isinstance(batch_key, str) or not _BATCH_KEY.match(batch_key):
        raise InvalidUsage(
            f"the batch key must be 1-64 letters, digits or . _ : @ -, got {batch_key!r:.80}"
        )
    if len(targets) > get_settings().admin_bulk_max_rows:
        raise InvalidUsage(
            f"{len(targets):,} targets; the limit is {get_settings().admin_bulk_max_rows:,}"
        )
    key = f"grant:{batch_key}"
    at = now or datetime.now(UTC)
    clean = [str(t).strip() for t in targets]
    resolved = _resolve(engine, [t for t in clean if t and _bad_target(t) is None])
    report: list[GrantRow] = []
    seen: dict[str, int] = {}
    for row, target in enumerate(clean, start=1):
        problem = "empty" if not target else _bad_target(target)
        if problem:
            report.append(GrantRow(row, target[:80], None, GrantStatus.INVALID, problem))
            continue
        account_id = resolved.get(target)
        if account_id is None:
            report.append(GrantRow(row, target, None, GrantStatus.UNKNOWN_ACCOUNT))
            continue
        if account_id in seen:
            report.append(
                GrantRow(
                    row,
                    target,
                    account_id,
                    GrantStatus.DUPLICATE,
                    f"same account as row {seen[account_id]}",
                )
            )
            continue
        seen[account_id] = row
        report.append(_grant_one(engine, principal, account_id, target, row, value, text, key, at))
    return report


def _grant_one(
    engine: Engine,
    principal: Principal,
    account_id: str,
    target: str,
    row: int,
    value: Decimal,
    reason: str,
    key: str,
    at: datetime,
) -> GrantRow:
    def work(conn: Connection) -> bool:
        held = _held(conn, account_id)
        posting = post_entry(  # IdempotencyConflict if the key was used for another amount
            conn,
            account_id=account_id,
            amount=value,
            kind=EntryKind.GRANT,
            idempotency_key=key,
            reference=key,
            reason=reason,
            actor=actor_of(principal),
            now=at,
        )
        if posting.replayed:
            return False
        _audit_change(conn, principal, posting, action="balance.grant", held=held, now=at)
        return True

    try:
        applied = idempotent_write(engine, work)
    except IdempotencyConflict as exc:
        return GrantRow(row, target, account_id, GrantStatus.INVALID, str(exc))
    return GrantRow(
        row, target, account_id, GrantStatus.DONE if applied else GrantStatus.ALREADY_APPLIED
    )


def grant_report_csv(report: Sequence[GrantRow]) -> str:
    """The per-row report as CSV text (cells that a spreadsheet would run as a formula
    are prefixed with a quote)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "target", "account_id", "status", "detail"])
    for r in report:
        writer.writerow(
            [r.row, _cell(r.target), r.account_id or "", str(r.status), _cell(r.detail)]
        )
    return out.getvalue()


def _cell(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def confirm_threshold() -> Decimal:
    """USD from which an adjustment needs the confirmation step (a setting)."""
    return get_settings().admin_confirm_usd
