"""Bulk grants: the same credit to many accounts (ids or emails, pasted or uploaded),
once per (batch key, account) however often the batch is re-submitted, each with
its ledger entry and audit row."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.audit import actor_of, audit_reason
from pricing_core.adapters.schema import (
    accounts,
    users,
)
from pricing_core.admin.accounts import BATCH_KEY, admin_amount, audit_balance_change, held_of
from pricing_core.config import get_settings
from pricing_core.domain.errors import (
    IdempotencyConflict,
    InvalidUsage,
)
from pricing_core.domain.principal import Principal, require_admin
from pricing_core.ledger.wallets import (
    EntryKind,
    idempotent_write,
    post_entry,
)

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
    value = admin_amount(amount, positive=True)
    text = audit_reason(reason)
    if not isinstance(batch_key, str) or not BATCH_KEY.match(batch_key):
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
        held = held_of(conn, account_id)
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
        audit_balance_change(conn, principal, posting, action="balance.grant", held=held, now=at)
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
