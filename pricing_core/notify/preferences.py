"""Who wants which notification: each user's choice per kind (default on), and the
signed one-click unsubscribe links (itsdangerous, `PRICING_NOTIFICATION_SECRET`;
they expire after `UNSUBSCRIBE_DAYS`)."""

from __future__ import annotations

from datetime import UTC, datetime

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.outbox import Kind
from pricing_core.adapters.schema_notify import notification_preferences
from pricing_core.adapters.storage import dialect_insert, run_write
from pricing_core.config import get_settings
from pricing_core.domain.errors import InvalidUsage, PermissionDenied
from pricing_core.domain.principal import Principal

UNSUBSCRIBE_DAYS = 60
_SALT = "pricing-core-unsubscribe"


def member_kinds(viewer: Principal) -> list[Kind]:
    """The kinds `viewer` may choose: the account's, and the admins' for an admin."""
    return [k for k in Kind if viewer.is_admin or not k.for_admins]


def preferences(engine: Engine, viewer: Principal) -> dict[Kind, bool]:
    """The viewer's choice per kind they may receive (True: send)."""
    p = notification_preferences.c
    with engine.connect() as conn:
        stored = dict(
            conn.execute(select(p.kind, p.enabled).where(p.user_id == viewer.user_id)).all()
        )
    return {k: bool(stored.get(str(k), True)) for k in member_kinds(viewer)}


def _store_on(conn: Connection, user_id: str, kind: Kind, enabled: bool, now: datetime) -> None:
    conn.execute(
        dialect_insert(conn, notification_preferences)
        .values(user_id=user_id, kind=str(kind), enabled=enabled, updated_at=now)
        .on_conflict_do_update(
            index_elements=["user_id", "kind"], set_={"enabled": enabled, "updated_at": now}
        )
    )


def set_preference(engine: Engine, viewer: Principal, kind: Kind, enabled: bool) -> None:
    """Turn one kind on or off for the viewer. Raises: PermissionDenied (an admin kind
    for a member)."""
    if kind not in member_kinds(viewer):
        raise PermissionDenied(f"{kind} notifications are for admins")
    run_write(engine, lambda conn: _store_on(conn, viewer.user_id, kind, enabled, _now()))


def opted_out_on(conn: Connection, user_ids: list[str], kind: Kind) -> set[str]:
    """The users among `user_ids` who turned `kind` off."""
    p = notification_preferences.c
    return set(
        conn.execute(
            select(p.user_id).where(
                p.user_id.in_(user_ids), p.kind == str(kind), p.enabled.is_(False)
            )
        ).scalars()
    )


def _serializer() -> URLSafeTimedSerializer | None:
    secret = get_settings().notification_secret
    if secret is None:
        return None
    return URLSafeTimedSerializer(secret.get_secret_value(), salt=_SALT)


def unsubscribe_link(user_id: str, kind: Kind) -> str | None:
    """A one-click link that turns `kind` off for `user_id`, or None without
    `PRICING_NOTIFICATION_SECRET` (the email links to the Notifications page then)."""
    serializer = _serializer()
    if serializer is None:
        return None
    token = serializer.dumps([user_id, str(kind)])
    return f"{get_settings().public_url.rstrip('/')}/unsubscribe?token={token}"


def unsubscribe(engine: Engine, token: str) -> tuple[str, Kind]:
    """Apply an unsubscribe link. Returns (user id, kind) turned off.
    Raises: InvalidUsage (bad, tampered or expired token)."""
    serializer = _serializer()
    if serializer is None:
        raise InvalidUsage("unsubscribe links are not configured")
    try:
        user_id, kind = serializer.loads(token, max_age=UNSUBSCRIBE_DAYS * 86_400)
        chosen = Kind(kind)
    except (BadSignature, ValueError, TypeError):
        raise InvalidUsage("this unsubscribe link is not valid or has expired") from None
    run_write(engine, lambda conn: _store_on(conn, str(user_id), chosen, False, _now()))
    return str(user_id), chosen


def _now() -> datetime:
    return datetime.now(UTC)
