"""Sign-in: an OpenID Connect identity -> a `users` row -> the `Principal`.

The identity's stable key is (issuer, subject). The first sign-in either claims an
invitation (a user row an admin created for that email, with no subject yet) or
provisions a personal account with the welcome credit. Provisioning is exactly once
even when two tabs sign in at the same moment:

- the personal account's id and its user's id are derived from (issuer, subject), so
  two concurrent first sign-ins insert the same primary keys and the loser's
  transaction fails on the unique constraint (PostgreSQL) or waits for the winner's
  write lock and then finds its rows (SQLite `BEGIN IMMEDIATE`);
- the welcome credit is a ledger entry keyed `welcome:<account>` (unique per account);
- `users (oidc_issuer, oidc_subject)` is unique.

A loser simply reads the winner's rows. Emails are compared lower-cased. An email
counts for invitations and for `PRICING_ADMIN_EMAILS` only when the provider does not
say it is unverified (`email_verified: false`), or, with
`PRICING_REQUIRE_VERIFIED_EMAIL=true`, only when it says it is verified.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from pricing_core.adapters.schema import accounts, users, wallets
from pricing_core.adapters.storage import run_write
from pricing_core.config import Settings, get_settings
from pricing_core.domain.errors import InvalidUsage, PermissionDenied
from pricing_core.domain.money import ZERO
from pricing_core.domain.principal import Principal
from pricing_core.ledger.wallets import EntryKind, post_entry

SIGN_IN_REFRESH = timedelta(minutes=5)  # how often `last_sign_in_at` is refreshed
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the OIDC provider says signed in (claims of the ID token, `st.user`)."""

    issuer: str
    subject: str
    email: str | None = None
    email_verified: bool | None = None
    name: str | None = None

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Identity:
        """From ID-token claims (`sub`, `iss`, `email`, `email_verified`, `name`).

        Raises: InvalidUsage when `sub` is missing or a claim is malformed.
        """
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip():
            raise InvalidUsage("the sign-in provider sent no subject ('sub' claim)")
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or not issuer.strip():
            issuer = f"provider:{claims.get('provider') or 'default'}"
        email = claims.get("email")
        verified = claims.get("email_verified")
        name = claims.get("name")
        return cls(
            issuer=issuer.strip(),
            subject=subject.strip(),
            email=email if isinstance(email, str) else None,
            email_verified=verified if isinstance(verified, bool) else None,
            name=name if isinstance(name, str) else None,
        )


def normalize_email(email: str | None) -> str | None:
    """Lower-cased, trimmed email, or None if empty. Raises: InvalidUsage if malformed."""
    if email is None or not email.strip():
        return None
    value = email.strip().lower()
    if len(value) > 320 or not EMAIL.match(value):
        raise InvalidUsage(f"not an email address: {email[:80]!r}")
    return value


def admin_emails(settings: Settings) -> frozenset[str]:
    """`PRICING_ADMIN_EMAILS`, lower-cased."""
    return frozenset(e.strip().lower() for e in settings.admin_emails.split(",") if e.strip())


def trusted_email(identity: Identity, settings: Settings) -> str | None:
    """The identity's email if it may be used for invitations and admin lists."""
    email = normalize_email(identity.email)
    if email is None or identity.email_verified is False:
        return None
    if settings.require_verified_email and identity.email_verified is not True:
        return None
    return email


def personal_ids(identity: Identity) -> tuple[str, str]:
    """(account id, user id) of the identity's personal account: derived from
    (issuer, subject), so concurrent first sign-ins collide on the primary keys."""
    digest = hashlib.sha256(f"{identity.issuer}\n{identity.subject}".encode()).hexdigest()[:24]
    return f"acct_{digest}", f"usr_{digest}"


def sign_in(
    engine: Engine,
    identity: Identity,
    *,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> Principal:
    """The principal of a signed-in identity, provisioning on first sign-in.

    Order: the user with this (issuer, subject); else an invitation (a user row with
    this trusted email and no subject yet), which is claimed; else a new personal
    account with its wallet and the welcome credit (`PRICING_WELCOME_CREDIT` USD, a
    `grant` entry keyed `welcome:<account>`), all in one transaction.

    Role: `admin` if the user row says so or the trusted email is in
    `PRICING_ADMIN_EMAILS`; otherwise `member`.

    Raises: InvalidUsage (malformed identity), PermissionDenied (the email already
    belongs to another sign-in).
    """
    settings = settings or get_settings()
    at = now or datetime.now(UTC)
    if len(identity.issuer) > 500 or len(identity.subject) > 255:
        raise InvalidUsage("the sign-in identity is too long (issuer > 500 or subject > 255)")
    email = trusted_email(identity, settings)
    with engine.connect() as conn:
        known = _by_subject(conn, identity)
    if (
        known is not None
        and known.last_sign_in_at is not None
        and (at - known.last_sign_in_at < SIGN_IN_REFRESH)
    ):
        return _principal(known, email, settings)  # every page rerun: a read, no write

    def work(conn: Connection) -> Row[Any]:
        row = _by_subject(conn, identity)
        if row is None and email is not None:
            row = _claim_invitation(conn, identity, email, at)
        if row is None:
            row = _provision(conn, identity, email, at, settings)
        conn.execute(update(users).where(users.c.id == row.id).values(last_sign_in_at=at))
        return row

    try:
        row = run_write(engine, work)
    except IntegrityError:
        # A concurrent first sign-in of the same identity won: use its rows.
        row = run_write(engine, work)
    return _principal(row, email, settings)


def _principal(row: Row[Any], email: str | None, settings: Settings) -> Principal:
    role = (
        "admin" if row.role == "admin" or (email and email in admin_emails(settings)) else "member"
    )
    return Principal(row.id, row.account_id, role=role, email=row.email)


def _by_subject(conn: Connection, identity: Identity) -> Any:
    return conn.execute(
        select(
            users.c.id, users.c.account_id, users.c.email, users.c.role, users.c.last_sign_in_at
        ).where(users.c.oidc_issuer == identity.issuer, users.c.oidc_subject == identity.subject)
    ).first()


def _by_email(conn: Connection, email: str) -> Any:
    return conn.execute(
        select(
            users.c.id, users.c.account_id, users.c.email, users.c.role, users.c.oidc_subject
        ).where(func.lower(users.c.email) == email)
    ).first()


def _claim_invitation(
    conn: Connection, identity: Identity, email: str, at: datetime
) -> Row[Any] | None:
    invited = _by_email(conn, email)
    if invited is None:
        return None
    if invited.oidc_subject is not None:
        # A concurrent first sign-in of this same identity committed its user between
        # our subject lookup and this one: that row is ours, not another sign-in's.
        mine = _by_subject(conn, identity)
        if mine is not None:
            return mine
        raise PermissionDenied(
            f"the email {email!r} is already linked to another sign-in; ask an admin"
        )
    claimed = conn.execute(
        update(users)
        .where(users.c.id == invited.id, users.c.oidc_subject.is_(None))
        .values(oidc_issuer=identity.issuer, oidc_subject=identity.subject)
    ).rowcount
    return _by_subject(conn, identity) if claimed else None


def _provision(
    conn: Connection, identity: Identity, email: str | None, at: datetime, settings: Settings
) -> Row[Any]:
    account_id, user_id = personal_ids(identity)
    name = (identity.name or email or "Personal account").strip()[:200] or "Personal account"
    if email is not None and _by_email(conn, email) is not None:
        email = None  # taken (e.g. unverified duplicate): never block a sign-in on it
    conn.execute(insert(accounts).values(id=account_id, name=name, kind="personal", created_at=at))
    conn.execute(
        insert(users).values(
            id=user_id,
            account_id=account_id,
            email=email,
            name=name,
            role="member",
            created_at=at,
            oidc_issuer=identity.issuer,
            oidc_subject=identity.subject,
        )
    )
    conn.execute(
        insert(wallets).values(
            account_id=account_id, balance=ZERO, held=ZERO, version=0, updated_at=at
        )
    )
    if settings.welcome_credit > 0:
        post_entry(
            conn,
            account_id=account_id,
            amount=settings.welcome_credit,
            kind=EntryKind.GRANT,
            idempotency_key=f"welcome:{account_id}",
            reason="welcome credit",
            now=at,
        )
    row = _by_subject(conn, identity)
    assert row is not None
    return row
