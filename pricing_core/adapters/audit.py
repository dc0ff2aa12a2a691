"""The audit log: who did what to which account, when, before/after, and why.

Admin actions write their audit row with `write_audit(conn, ...)` inside the same
transaction as the change itself, so there is never a change without its audit row
(or an audit row for a change that was rolled back). `before`/`after` are JSON
objects; money in them is a decimal string (never a float).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import audit_log
from pricing_core.domain.errors import InvalidUsage
from pricing_core.domain.money import usd_str
from pricing_core.domain.principal import Principal, require_admin


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit row. `before`/`after`: JSON objects (money as decimal strings)."""

    id: int
    created_at: datetime
    actor: str
    action: str
    account_id: str | None
    target: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None


def actor_of(principal: Principal) -> str:
    """The name an admin action is recorded under: the email, else the user id."""
    return principal.email or principal.user_id


def jsonable(values: dict[str, Any]) -> dict[str, Any]:
    """Make a before/after mapping JSON-safe: Decimal -> decimal string, datetime ->
    ISO 8601; never a float."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Decimal):
            out[key] = usd_str(value)
        elif isinstance(value, datetime):
            out[key] = value.isoformat()
        elif isinstance(value, float):
            raise TypeError(f"audit values must not be floats: {key}={value!r}")
        else:
            out[key] = value
    return out


def write_audit(
    conn: Connection,
    *,
    actor: str,
    action: str,
    now: datetime,
    account_id: str | None = None,
    target: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> int:
    """Append one audit row inside `conn`'s (write) transaction. Returns its id."""
    return conn.execute(
        insert(audit_log)
        .values(
            account_id=account_id,
            actor=actor,
            action=action,
            target=target,
            before=jsonable(before) if before is not None else None,
            after=jsonable(after) if after is not None else None,
            reason=reason,
            created_at=now,
        )
        .returning(audit_log.c.id)
    ).scalar_one()


def list_audit(
    engine: Engine,
    principal: Principal,
    *,
    account_id: str | None = None,
    action_prefix: str | None = None,
    limit: int = 200,
) -> list[AuditEntry]:
    """The newest audit rows first, optionally for one account or action family
    (e.g. "price." or "balance.").

    Raises: PermissionDenied unless the principal is an admin.
    """
    require_admin(principal)
    a = audit_log.c
    query = select(audit_log).order_by(a.created_at.desc(), a.id.desc()).limit(limit)
    if account_id is not None:
        query = query.where(a.account_id == account_id)
    if action_prefix:
        query = query.where(a.action.startswith(action_prefix, autoescape=True))
    with engine.connect() as conn:
        return [
            AuditEntry(
                r.id,
                r.created_at,
                r.actor,
                r.action,
                r.account_id,
                r.target,
                r.before,
                r.after,
                r.reason,
            )
            for r in conn.execute(query)
        ]


MAX_REASON = 1000  # characters


def audit_reason(reason: object) -> str:
    """The reason an operator gives for an audited change, stripped.

    Raises: InvalidUsage when it is missing, blank or longer than MAX_REASON.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidUsage("a reason is required")
    text = reason.strip()
    if len(text) > MAX_REASON:
        raise InvalidUsage(f"the reason is longer than {MAX_REASON} characters ({len(text)})")
    return text
