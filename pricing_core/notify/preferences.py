"""Who wants which notification: each user's choice per kind (default on), their own
low-balance line, and the signed one-click unsubscribe links (itsdangerous,
`PRICING_NOTIFICATION_SECRET`; they expire after `UNSUBSCRIBE_DAYS`)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.outbox import Kind
from pricing_core.adapters.schema_notify import notification_preferences
from pricing_core.adapters.storage import dialect_insert, run_write
from pricing_core.config import get_settings
from pricing_core.domain.errors import InvalidUsage, PermissionDenied
from pricing_core.domain.money import to_usd
from pricing_core.domain.principal import Principal
from pricing_core.ledger.crossings import forget_custom_lines

UNSUBSCRIBE_DAYS = 60
_SALT = "pricing-core-unsubscribe"


def member_kinds(viewer: Principal) -> list[Kind]:
    """The kinds `viewer` may choose: the account's, and the admins' for an admin."""
    return [k for k in Kind if viewer.is_admin or not k.for_admins]


def preferences(engine: Engine, viewer: Principal) -> dict[Kind, bool]:
    """The viewer's choice per kind they may receive (True: send)."""
    with engine.connect() as conn:
        stored = preferences_on(conn, viewer.user_id)
    return {k: stored.get(k, True) for k in member_kinds(viewer)}


def _store_on(
    conn: Connection,
    user_id: str,
    kind: Kind,
    enabled: bool,
    now: datetime,
    *,
    set_threshold: bool = False,
    threshold: Decimal | None = None,
) -> None:
    """Store a choice; the threshold is kept as it is unless `set_threshold`."""
    changes: dict[str, object] = {"enabled": enabled, "updated_at": now}
    if set_threshold:
        changes["threshold"] = threshold
    conn.execute(
        dialect_insert(conn, notification_preferences)
        .values(user_id=user_id, kind=str(kind), **changes)
        .on_conflict_do_update(index_elements=["user_id", "kind"], set_=changes)
    )


def set_preference(engine: Engine, viewer: Principal, kind: Kind, enabled: bool) -> None:
    """Turn one kind on or off for the viewer. Raises: PermissionDenied (an admin kind
    for a member)."""
    if kind not in member_kinds(viewer):
        raise PermissionDenied(f"{kind} notifications are for admins")
    run_write(engine, lambda conn: _store_on(conn, viewer.user_id, kind, enabled, _now()))


def low_balance_line(engine: Engine, viewer: Principal) -> Decimal | None:
    """The viewer's own low-balance line (Decimal USD), or None for the default."""
    p = notification_preferences.c
    with engine.connect() as conn:
        return conn.execute(  # type: ignore[no-any-return]
            select(p.threshold).where(p.user_id == viewer.user_id, p.kind == str(Kind.LOW_BALANCE))
        ).scalar()


def set_low_balance_line(engine: Engine, viewer: Principal, amount: object | None) -> None:
    """Email the viewer when the balance falls below `amount` USD instead of the
    default line (None: the default again). Applies to charges within a minute.
    Raises: InvalidUsage (not 0.01 to 1,000,000 USD in whole cents)."""
    line = None
    if amount not in (None, ""):
        try:
            line = to_usd(amount)
        except ValueError as exc:
            raise InvalidUsage(f"low-balance line: {exc}") from None
        if not Decimal("0.01") <= line <= Decimal(1_000_000) or line != line.quantize(
            Decimal("0.01")
        ):
            raise InvalidUsage(f"the low-balance line must be 0.01 to 1000000 USD in cents: {line}")
    now = _now()

    def work(conn: Connection) -> None:
        enabled = preferences_on(conn, viewer.user_id).get(Kind.LOW_BALANCE, True)
        _store_on(
            conn, viewer.user_id, Kind.LOW_BALANCE, enabled, now, set_threshold=True, threshold=line
        )

    run_write(engine, work)
    forget_custom_lines(viewer.account_id)


def preferences_on(conn: Connection, user_id: str) -> dict[Kind, bool]:
    p = notification_preferences.c
    rows = conn.execute(select(p.kind, p.enabled).where(p.user_id == user_id)).all()
    return {Kind(k): bool(e) for k, e in rows}


def lines_of_on(conn: Connection, user_ids: list[str]) -> dict[str, Decimal]:
    """The users among `user_ids` with their own low-balance line."""
    p = notification_preferences.c
    return dict(
        conn.execute(  # type: ignore[arg-type]
            select(p.user_id, p.threshold).where(
                p.user_id.in_(user_ids),
                p.kind == str(Kind.LOW_BALANCE),
                p.threshold.is_not(None),
            )
        ).all()
    )


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
