"""API keys: hashed at rest, shown once, revocable, last_used_at, one account, and
failed authentications rate-limited per client address."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pricing_core.access.apikeys import (
    FailedAuthLimiter,
    InvalidApiKey,
    TooManyAttempts,
    UnknownApiKey,
    authenticate_api_key,
    create_api_key,
    hash_key,
    list_api_keys,
    revoke_api_key,
)
from pricing_core.adapters.schema import api_keys, audit_log
from pricing_core.cli.main import app as cli
from pricing_core.domain.errors import PermissionDenied
from pricing_core.domain.principal import Principal
from pricing_core.ledger.wallets import create_account

ALICE = Principal("alice", "alice", email="alice@example.com")
BOB = Principal("bob", "bob", email="bob@example.com")
ADMIN = Principal("ops", "ops", role="admin", email="ops@example.com")
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def seeded(engine):
    for who in ("alice", "bob"):
        create_account(engine, who, name=who.title(), email=f"{who}@example.com")
    return engine


def limiter(n: int = 100) -> FailedAuthLimiter:
    return FailedAuthLimiter(n, 60, clock=Clock())


def test_a_key_is_stored_only_as_its_hash_and_authenticates_as_its_account(seeded):
    key = create_api_key(seeded, ALICE, name="shop backend", now=T0)
    assert key.secret.startswith("pck_") and len(key.secret) >= 40
    with seeded.connect() as conn:
        row = conn.execute(sa.select(api_keys)).one()
    stored = " ".join(str(v) for v in row)
    assert key.secret not in stored and row.key_hash == hash_key(key.secret)
    assert row.prefix == key.secret[:12]
    viewer = authenticate_api_key(
        seeded, f"Bearer {key.secret}", client="10.0.0.1", limiter=limiter(), now=T0
    )
    assert (viewer.account_id, viewer.role) == ("alice", "member")
    # no secret in the audit row either
    with seeded.connect() as conn:
        audit = " ".join(str(v) for v in conn.execute(sa.select(audit_log)).one())
    assert key.secret not in audit


def test_last_used_at_is_recorded(seeded):
    key = create_api_key(seeded, ALICE, now=T0)
    assert list_api_keys(seeded, ALICE)[0].last_used_at is None
    authenticate_api_key(
        seeded, key.secret, client="c", limiter=limiter(), now=T0 + timedelta(hours=1)
    )
    assert list_api_keys(seeded, ALICE)[0].last_used_at == T0 + timedelta(hours=1)


def test_a_revoked_key_stops_working_at_once(seeded):
    key = create_api_key(seeded, ALICE)
    revoked = revoke_api_key(seeded, ALICE, key.id)
    assert not revoked.active
    with pytest.raises(InvalidApiKey):
        authenticate_api_key(seeded, f"Bearer {key.secret}", client="c", limiter=limiter())
    assert revoke_api_key(seeded, ALICE, key.id).revoked_at == revoked.revoked_at  # idempotent


def test_another_accounts_key_looks_like_a_missing_one(seeded):
    key = create_api_key(seeded, ALICE)
    with pytest.raises(UnknownApiKey, match="unknown API key"):
        revoke_api_key(seeded, BOB, key.id)
    assert list_api_keys(seeded, BOB) == []
    with pytest.raises(PermissionDenied):
        list_api_keys(seeded, BOB, account_id="alice")
    with pytest.raises(PermissionDenied):
        create_api_key(seeded, BOB, account_id="alice")
    assert list_api_keys(seeded, ALICE)[0].active  # untouched


def test_an_admin_creates_and_revokes_keys_for_any_account(seeded):
    key = create_api_key(seeded, ADMIN, account_id="bob")
    assert key.account_id == "bob"
    assert not revoke_api_key(seeded, ADMIN, key.id).active


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer nope",
        "Basic pck_xxxxxxxxxxxxxxxxxxxxxxxx",
        "pck_" + "A" * 43,
        "Bearer pck_" + "x" * 300,
    ],
)
def test_bad_keys_are_refused(seeded, header):
    with pytest.raises(InvalidApiKey):
        authenticate_api_key(seeded, header, client="c", limiter=limiter())


def test_failed_attempts_are_rate_limited_per_address_and_key_prefix(seeded):
    key = create_api_key(seeded, ALICE)
    guess = key.secret[:12] + "x" * (len(key.secret) - 12)  # the shown prefix, then guessing
    clock = Clock()
    gate = FailedAuthLimiter(3, 60, clock=clock)
    for _ in range(3):
        with pytest.raises(InvalidApiKey):
            authenticate_api_key(seeded, f"Bearer {guess}", client="1.2.3.4", limiter=gate)
    # over the limit: that prefix from that address is refused, even with the right key,
    # without looking it up
    with pytest.raises(TooManyAttempts) as blocked:
        authenticate_api_key(seeded, key.secret, client="1.2.3.4", limiter=gate)
    assert 1 <= blocked.value.retry_after <= 61
    # another address is not affected, nor another key behind the same address (NAT)
    assert (
        authenticate_api_key(seeded, key.secret, client="5.6.7.8", limiter=gate).account_id
        == "alice"
    )
    other = create_api_key(seeded, ALICE)
    assert other.secret[:12] != key.secret[:12]
    assert (
        authenticate_api_key(seeded, other.secret, client="1.2.3.4", limiter=gate).account_id
        == "alice"
    )
    # a client with a bad key, however many, never locks out a good key on its address
    for n in range(10):
        with pytest.raises(InvalidApiKey):
            authenticate_api_key(
                seeded, f"Bearer pck_wrong{n}wrongwrongwrong", client="1.2.3.4", limiter=gate
            )
    assert authenticate_api_key(seeded, other.secret, client="1.2.3.4", limiter=gate)
    # the window slides
    clock.t += 61
    assert (
        authenticate_api_key(seeded, key.secret, client="1.2.3.4", limiter=gate).account_id
        == "alice"
    )


def test_the_cli_creates_a_key_once_lists_it_without_the_secret_and_revokes_it(seeded):
    runner = CliRunner()
    created = runner.invoke(cli, ["apikeys", "create", "--account", "alice", "--name", "shop"])
    assert created.exit_code == 0, created.output
    secret = created.output.strip().splitlines()[-1]
    assert secret.startswith("pck_")
    listed = runner.invoke(cli, ["apikeys", "list", "--account", "alice"])
    assert listed.exit_code == 0 and secret not in listed.output and secret[:12] in listed.output
    key_id = listed.output.split("\t")[0]
    revoked = runner.invoke(cli, ["apikeys", "revoke", key_id])
    assert revoked.exit_code == 0, revoked.output
    with pytest.raises(InvalidApiKey):
        authenticate_api_key(seeded, secret, client="c", limiter=limiter())
