"""Who is looking: the principal (user, account, role) and permission checks.

The dashboard never reads identity itself: it calls `current_principal(...)` (tests
patch this one function). With sign-in configured, the OIDC identity (`st.user`'s
claims) resolves to a user row (`identity.sign_in`, which provisions on first
sign-in); in demo mode (never in production) the viewer picks an account.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, select

from pricing_core.access.identity import Identity, sign_in
from pricing_core.adapters.schema import accounts, users
from pricing_core.config import get_settings
from pricing_core.domain.errors import PermissionDenied, UnknownAccount
from pricing_core.domain.ordering import natural_key
from pricing_core.domain.principal import Principal


def demo_principal(engine: Engine, account_id: str, *, role: str = "member") -> Principal:
    """The principal for a demo viewer looking at `account_id` as its first user.

    Raises: UnknownAccount.
    """
    with engine.connect() as conn:
        row = conn.execute(
            select(users.c.id, users.c.email)
            .where(users.c.account_id == account_id)
            .order_by(users.c.created_at, users.c.id)
            .limit(1)
        ).first()
    if row is None:
        raise UnknownAccount(f"unknown account {account_id!r}")
    return Principal(row.id, account_id, role=role, email=row.email, demo=True)


def list_accounts(engine: Engine) -> list[tuple[str, str]]:
    """(id, name) of every account, by name then id, numbers in them compared as
    numbers ("trace-user-2" before "trace-user-10"; demo picker, admin search)."""
    with engine.connect() as conn:
        rows = [(r.id, r.name) for r in conn.execute(select(accounts.c.id, accounts.c.name))]
    return sorted(rows, key=lambda r: (natural_key(r[1]), natural_key(r[0])))


def current_principal(
    engine: Engine,
    *,
    demo_account: str | None,
    demo_role: str = "member",
    claims: Mapping[str, Any] | None = None,
    demo: bool = True,
) -> Principal:
    """The viewer of this dashboard session.

    Args:
        claims: the signed-in user's OIDC claims (`st.user`), if signed in: they win.
        demo_account / demo_role: demo mode's sidebar choice, used only when `demo`
            is true (the caller passes whether demo mode is on) and not in production.
    Raises: UnknownAccount, InvalidUsage, PermissionDenied when no identity is available.
    """
    if claims is not None:
        return sign_in(engine, Identity.from_claims(claims))
    if not demo or get_settings().env == "production":
        raise PermissionDenied("not signed in")
    if demo_account is None:
        raise PermissionDenied("not signed in")
    return demo_principal(engine, demo_account, role=demo_role)
