"""Who is looking: the principal (user, account, role) and the permission checks.

Pure values and rules; `access.auth` finds the principal of a dashboard session.
"""

from __future__ import annotations

from dataclasses import dataclass

from pricing_core.domain.errors import PermissionDenied


@dataclass(frozen=True, slots=True)
class Principal:
    """The signed-in (or demo) viewer."""

    user_id: str
    account_id: str
    role: str = "member"  # member | admin
    email: str | None = None
    demo: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def require_admin(principal: Principal) -> None:
    """Raises: PermissionDenied unless the principal is an admin."""
    if not principal.is_admin:
        raise PermissionDenied(f"user {principal.user_id!r} is not an admin")


def require_account(principal: Principal, account_id: str) -> None:
    """Raises: PermissionDenied if a member touches another account (admins may)."""
    if principal.account_id != account_id and not principal.is_admin:
        raise PermissionDenied(f"account {account_id!r} is not visible to {principal.user_id!r}")


def target_account(principal: Principal, account_id: str | None = None) -> str:
    """The account a user-facing call acts on: the principal's own, or `account_id`
    when given, which only an admin may name for another account.

    Raises: PermissionDenied when a member names another account.
    """
    target = account_id or principal.account_id
    require_account(principal, target)
    return target
