"""Team accounts and invitations (admin actions, audited).

An invitation is a `users` row in the team's account with the invitee's email and no
sign-in subject yet; the invitee's first sign-in with that email claims it (see
`identity.sign_in`), so they land in the team account instead of a new personal one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.engine import Connection

from pricing_core.access.identity import normalize_email
from pricing_core.adapters.audit import actor_of, write_audit
from pricing_core.adapters.schema import accounts, users, wallets
from pricing_core.adapters.storage import run_write
from pricing_core.domain.errors import InvalidUsage, UnknownAccount
from pricing_core.domain.money import ZERO
from pricing_core.domain.principal import Principal, require_account, require_admin


class Role(StrEnum):
    MEMBER = "member"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Member:
    """A user of an account. `pending` = invited, never signed in."""

    user_id: str
    email: str | None
    name: str | None
    role: str
    pending: bool
    last_sign_in_at: datetime | None


def create_team_account(
    engine: Engine, principal: Principal, *, name: str, now: datetime | None = None
) -> str:
    """Create an empty team account (wallet at 0 USD). Returns its id.

    Raises: PermissionDenied unless admin; InvalidUsage for an empty name.
    """
    require_admin(principal)
    clean = (name or "").strip()
    if not clean or len(clean) > 200:
        raise InvalidUsage(f"a team needs a name of 1 to 200 characters, got {name!r}")
    account_id = f"team_{secrets.token_hex(10)}"
    at = now or datetime.now(UTC)

    def work(conn: Connection) -> str:
        conn.execute(insert(accounts).values(id=account_id, name=clean, kind="team", created_at=at))
        conn.execute(
            insert(wallets).values(
                account_id=account_id, balance=ZERO, held=ZERO, version=0, updated_at=at
            )
        )
        write_audit(
            conn,
            actor=actor_of(principal),
            action="account.create_team",
            now=at,
            account_id=account_id,
            after={"name": clean, "kind": "team"},
        )
        return account_id

    return run_write(engine, work)


def invite_user(
    engine: Engine,
    principal: Principal,
    *,
    account_id: str,
    email: str,
    role: Role | str = Role.MEMBER,
    name: str | None = None,
    now: datetime | None = None,
) -> str:
    """Invite `email` into `account_id`: their first sign-in lands in that account.
    Inviting the same email to the same account again returns the same user id.

    Returns: the (pending) user id.
    Raises: PermissionDenied unless admin; UnknownAccount; InvalidUsage for a bad email
        or role, or an email that already belongs to another account.
    """
    require_admin(principal)
    address = normalize_email(email)
    if address is None:
        raise InvalidUsage("an invitation needs an email address")
    try:
        kind = Role(role)
    except ValueError:
        raise InvalidUsage(f"unknown role {role!r} (member or admin)") from None
    at = now or datetime.now(UTC)

    def work(conn: Connection) -> str:
        if conn.execute(select(accounts.c.id).where(accounts.c.id == account_id)).first() is None:
            raise UnknownAccount(f"unknown account {account_id!r}")
        existing = conn.execute(
            select(users.c.id, users.c.account_id).where(func.lower(users.c.email) == address)
        ).first()
        if existing is not None:
            if existing.account_id == account_id:
                return str(existing.id)
            raise InvalidUsage(f"{address!r} already belongs to another account")
        user_id = f"usr_{secrets.token_hex(12)}"
        conn.execute(
            insert(users).values(
                id=user_id,
                account_id=account_id,
                email=address,
                name=(name or address).strip()[:200],
                role=str(kind),
                created_at=at,
                invited_by=actor_of(principal),
            )
        )
        write_audit(
            conn,
            actor=actor_of(principal),
            action="user.invite",
            now=at,
            account_id=account_id,
            target=user_id,
            after={"email": address, "role": str(kind)},
        )
        return user_id

    return run_write(engine, work)


def set_user_role(
    engine: Engine,
    principal: Principal,
    *,
    user_id: str,
    role: Role | str,
    now: datetime | None = None,
) -> None:
    """Make a user an admin or a member (audited).

    Raises: PermissionDenied unless admin (an admin cannot demote themselves);
        InvalidUsage for an unknown user or role.
    """
    require_admin(principal)
    try:
        kind = Role(role)
    except ValueError:
        raise InvalidUsage(f"unknown role {role!r} (member or admin)") from None
    if user_id == principal.user_id and kind is not Role.ADMIN:
        raise InvalidUsage("you cannot remove your own admin role")
    at = now or datetime.now(UTC)

    def work(conn: Connection) -> None:
        row = conn.execute(
            select(users.c.account_id, users.c.role).where(users.c.id == user_id)
        ).first()
        if row is None:
            raise InvalidUsage(f"unknown user {user_id!r}")
        conn.execute(update(users).where(users.c.id == user_id).values(role=str(kind)))
        write_audit(
            conn,
            actor=actor_of(principal),
            action="user.set_role",
            now=at,
            account_id=row.account_id,
            target=user_id,
            before={"role": row.role},
            after={"role": str(kind)},
        )

    run_write(engine, work)


def list_members(
    engine: Engine, principal: Principal, account_id: str | None = None
) -> list[Member]:
    """The users of the principal's account (or, for admins, of `account_id`).

    Raises: PermissionDenied when a member asks for another account.
    """
    target = account_id or principal.account_id
    require_account(principal, target)
    u = users.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(u.id, u.email, u.name, u.role, u.oidc_subject, u.last_sign_in_at)
            .where(u.account_id == target)
            .order_by(u.created_at, u.id)
        )
        return [
            Member(r.id, r.email, r.name, r.role, r.oidc_subject is None, r.last_sign_in_at)
            for r in rows
        ]
