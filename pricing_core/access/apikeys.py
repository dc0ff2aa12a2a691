"""API keys for the REST API: hashed at rest, shown once, revocable, scoped to one
account, with `last_used_at`; failed authentications rate-limited per client address.

A key is `pck_` + 43 URL-safe random characters (256 bits). Only its SHA-256 is
stored (a key is high-entropy, so a fast hash is enough: nobody can brute-force the
preimage); `prefix` (its first 12 characters) is kept to tell keys apart in lists.
A key authenticates as a member principal of its own account, so every
`pricing_core` function that takes the principal confines it to that account.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.engine import Connection

from pricing_core.adapters.audit import actor_of, write_audit
from pricing_core.adapters.schema import accounts, api_keys
from pricing_core.adapters.server_calls import call_row, is_postgres
from pricing_core.adapters.storage import run_write
from pricing_core.config import get_settings
from pricing_core.domain.errors import InvalidUsage, PricingError, UnknownAccount
from pricing_core.domain.principal import Principal, require_account

KEY_PREFIX = "pck_"
SHOWN_PREFIX_CHARS = 12
LAST_USED_RESOLUTION = timedelta(minutes=1)  # last_used_at is refreshed at most this often


KEY_PRINCIPAL_PREFIX = "apikey:"  # user_id of a key's principal: "apikey:<key id>"


class InvalidApiKey(PricingError):
    """The API key is missing, malformed, unknown or revoked (HTTP 401)."""


class UnknownApiKey(PricingError):
    """No such key in the caller's account (HTTP 404)."""


class TooManyAttempts(PricingError):
    """Too many failed authentications from this client address (HTTP 429).

    Attributes: retry_after: whole seconds until the next attempt is accepted.
    """

    def __init__(self, client: str, retry_after: int) -> None:
        super().__init__(
            f"too many failed API key attempts from {client}; retry in {retry_after} s"
        )
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key just created. `secret` is the full key: shown once, never stored."""

    id: str
    account_id: str
    name: str
    prefix: str
    secret: str


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """A key as lists show it (no secret, no hash)."""

    id: str
    account_id: str
    name: str | None
    prefix: str
    created_at: datetime
    created_by: str | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


_INFO = [
    api_keys.c[name]
    for name in (
        "id",
        "account_id",
        "name",
        "prefix",
        "created_at",
        "created_by",
        "last_used_at",
        "revoked_at",
    )
]


def hash_key(secret: str) -> str:
    """SHA-256 hex of a key (what is stored)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_api_key(
    engine: Engine,
    principal: Principal,
    *,
    account_id: str | None = None,
    name: str = "",
    now: datetime | None = None,
) -> NewApiKey:
    """Create a key for the principal's account (admins: any `account_id`).

    Returns: NewApiKey, whose `secret` must be shown to the user now: it cannot be
        recovered later.
    Raises: PermissionDenied (a member naming another account), UnknownAccount,
        InvalidUsage (name over 200 characters).
    """
    target = account_id or principal.account_id
    require_account(principal, target)
    label = (name or "").strip()
    if len(label) > 200:
        raise InvalidUsage(f"an API key name is at most 200 characters, got {len(label)}")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = f"key_{secrets.token_hex(8)}"
    at = now or datetime.now(UTC)

    def work(conn: Connection) -> None:
        if conn.execute(select(accounts.c.id).where(accounts.c.id == target)).first() is None:
            raise UnknownAccount(f"unknown account {target!r}")
        conn.execute(
            insert(api_keys).values(
                id=key_id,
                account_id=target,
                name=label or None,
                prefix=secret[:SHOWN_PREFIX_CHARS],
                key_hash=hash_key(secret),
                created_at=at,
                created_by=actor_of(principal),
            )
        )
        write_audit(
            conn,
            actor=actor_of(principal),
            action="apikey.create",
            now=at,
            account_id=target,
            target=key_id,
            after={"name": label, "prefix": secret[:SHOWN_PREFIX_CHARS]},
        )

    run_write(engine, work)
    return NewApiKey(key_id, target, label, secret[:SHOWN_PREFIX_CHARS], secret)


def list_api_keys(
    engine: Engine, principal: Principal, *, account_id: str | None = None
) -> list[ApiKeyInfo]:
    """The keys of the principal's account (admins: of `account_id`), newest first.

    Raises: PermissionDenied when a member names another account.
    """
    target = account_id or principal.account_id
    require_account(principal, target)
    k = api_keys.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(*_INFO).where(k.account_id == target).order_by(k.created_at.desc(), k.id)
        )
        return [ApiKeyInfo(*r) for r in rows]


def revoke_api_key(
    engine: Engine, principal: Principal, key_id: str, *, now: datetime | None = None
) -> ApiKeyInfo:
    """Revoke a key of the principal's account (admins: any key). Revoking twice is
    harmless. The key stops authenticating at once.

    Raises: UnknownApiKey when the key does not exist in the principal's account
        (another account's key id is reported exactly like a missing one).
    """
    at = now or datetime.now(UTC)
    k = api_keys.c

    def work(conn: Connection) -> ApiKeyInfo:
        query = select(k.account_id, k.revoked_at).where(k.id == key_id)
        if not principal.is_admin:
            query = query.where(k.account_id == principal.account_id)
        row = conn.execute(query).first()
        if row is None:
            raise UnknownApiKey(f"unknown API key {key_id!r}")
        if row.revoked_at is None:
            conn.execute(update(api_keys).where(k.id == key_id).values(revoked_at=at))
            write_audit(
                conn,
                actor=actor_of(principal),
                action="apikey.revoke",
                now=at,
                account_id=row.account_id,
                target=key_id,
            )
        return ApiKeyInfo(*conn.execute(select(*_INFO).where(k.id == key_id)).one())

    return run_write(engine, work)


class FailedAuthLimiter:
    """At most `max_failures` failed authentications per client in a sliding window
    of `window_seconds`; after that, every attempt of that client is refused (even
    with a valid key) until old failures leave the window. A client is what
    `authenticate_api_key` names: an address and the key prefix presented.

    In memory, per process (a deployment with several processes gets a limit per
    process). Thread-safe; remembers at most `max_clients` addresses.
    """

    def __init__(
        self,
        max_failures: int,
        window_seconds: float,  # not money
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 100_000,
    ) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self._clock = clock
        self._max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        """Raises: TooManyAttempts when `client` is over the limit."""
        with self._lock:
            recent = self._recent(client)
            if recent is not None and len(recent) >= self.max_failures:
                retry = max(1, int(recent[0] + self.window - self._clock()) + 1)
                raise TooManyAttempts(client, retry)

    def record_failure(self, client: str) -> None:
        with self._lock:
            recent = self._recent(client) or deque()
            recent.append(self._clock())
            self._failures[client] = recent
            self._failures.move_to_end(client)
            while len(self._failures) > self._max_clients:
                self._failures.popitem(last=False)

    def _recent(self, client: str) -> deque[float] | None:
        recent = self._failures.get(client)
        if recent is None:
            return None
        horizon = self._clock() - self.window
        while recent and recent[0] <= horizon:
            recent.popleft()
        if not recent:
            del self._failures[client]
            return None
        return recent


_limiter: FailedAuthLimiter | None = None
_limiter_lock = threading.Lock()


def default_limiter() -> FailedAuthLimiter:
    """The process's limiter, from `PRICING_API_AUTH_MAX_FAILURES` per
    `PRICING_API_AUTH_WINDOW_SECONDS`."""
    global _limiter
    with _limiter_lock:
        if _limiter is None:
            s = get_settings()
            _limiter = FailedAuthLimiter(s.api_auth_max_failures, s.api_auth_window_seconds)
        return _limiter


def reset_default_limiter() -> None:
    """Forget the process's limiter (tests; settings changes)."""
    global _limiter
    with _limiter_lock:
        _limiter = None


def authenticate_api_key(
    engine: Engine,
    authorization: str | None,
    *,
    client: str,
    limiter: FailedAuthLimiter | None = None,
    now: datetime | None = None,
) -> Principal:
    """The principal of a request's `Authorization: Bearer <key>` header.

    Args:
        authorization: the header's value (or the bare key).
        client: the caller's address. Failures are throttled per address and key
            prefix, so one client with a bad key behind a shared address (NAT) does
            not lock out the others' keys.
    Returns: a member Principal of the key's account (`user_id` = "apikey:<key id>").
    Raises: TooManyAttempts (before looking at the key when the address is over the
        limit), InvalidApiKey (missing, malformed, unknown or revoked; counted as a
        failure).
    """
    limiter = limiter or default_limiter()
    secret = _bearer(authorization)
    client = f"{client} key {_credential(authorization)[:SHOWN_PREFIX_CHARS]!r}"
    limiter.check(client)
    row = None if secret is None else _active_key(engine, hash_key(secret))
    if row is None:
        limiter.record_failure(client)
        raise InvalidApiKey("missing, unknown or revoked API key")
    at = now or datetime.now(UTC)
    if row.last_used_at is None or at - row.last_used_at >= LAST_USED_RESOLUTION:
        run_write(
            engine,
            lambda conn: conn.execute(
                update(api_keys).where(api_keys.c.id == row.id).values(last_used_at=at)
            ),
        )
    return Principal(f"{KEY_PRINCIPAL_PREFIX}{row.id}", row.account_id, role="member")


def key_id_of(principal: Principal) -> str:
    """The id of the API key behind a principal of `authenticate_api_key`."""
    return principal.user_id.removeprefix(KEY_PRINCIPAL_PREFIX)


_ACTIVE_KEY = (
    "SELECT id, account_id, last_used_at FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL"
)


def _active_key(engine: Engine, key_hash: str) -> Any:
    """(id, account_id, last_used_at) of the unrevoked key with this hash, or None.
    On PostgreSQL one round trip on the hot path's connection: every API call pays it."""
    if is_postgres(engine):
        row = call_row(engine, _ACTIVE_KEY, (key_hash,))
        return None if row is None else _KeyRow(*row)
    k = api_keys.c
    with engine.connect() as conn:
        return conn.execute(
            select(k.id, k.account_id, k.last_used_at).where(
                k.key_hash == key_hash, k.revoked_at.is_(None)
            )
        ).first()


class _KeyRow(NamedTuple):
    id: str
    account_id: str
    last_used_at: datetime | None


def _credential(authorization: str | None) -> str:
    """What the header presents after an optional `Bearer ` ("" when nothing)."""
    value = (authorization or "").strip()
    scheme, _, rest = value.partition(" ")
    return rest.strip() if rest and scheme.lower() == "bearer" else value


def _bearer(authorization: str | None) -> str | None:
    """The key presented, or None when it cannot be one of ours (malformed)."""
    value = _credential(authorization)
    if not value.startswith(KEY_PREFIX) or not 20 <= len(value) <= 100:
        return None
    return value
