"""Sign-in: provisioning exactly once, invitations, admin roles (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from pricing_core.access import auth
from pricing_core.access.identity import Identity, personal_ids, sign_in
from pricing_core.access.teams import create_team_account, invite_user, list_members, set_user_role
from pricing_core.adapters.schema import accounts, ledger_entries, users
from pricing_core.config import get_settings
from pricing_core.domain.errors import InvalidUsage, PermissionDenied
from pricing_core.ledger.wallets import create_account, get_wallet

ISS = "http://127.0.0.1:9/"
ADMIN = auth.Principal("ops", "ops", role="admin", email="ops@example.com")


def count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(table).where(*where)
        ).scalar_one()


def welcome_grants(engine, account_id: str) -> int:
    return count(
        engine,
        ledger_entries,
        ledger_entries.c.account_id == account_id,
        ledger_entries.c.idempotency_key == f"welcome:{account_id}",
    )


def test_a_first_sign_in_provisions_a_personal_account_with_the_welcome_credit(engine, monkeypatch):
    monkeypatch.setenv("PRICING_WELCOME_CREDIT", "7.5")
    get_settings.cache_clear()
    who = Identity(ISS, "sub-1", email="Dana@Example.com", name="Dana")
    viewer = sign_in(engine, who)
    assert viewer.role == "member" and viewer.email == "dana@example.com"
    assert (viewer.account_id, viewer.user_id) == personal_ids(who)
    assert get_wallet(engine, viewer.account_id).balance == Decimal("7.5")
    assert welcome_grants(engine, viewer.account_id) == 1
    # signing in again finds the same user and grants nothing more
    again = sign_in(engine, who)
    assert again == viewer
    assert count(engine, accounts) == 1 and welcome_grants(engine, viewer.account_id) == 1
    assert get_wallet(engine, viewer.account_id).balance == Decimal("7.5")


def test_the_same_subject_at_another_issuer_is_another_person(engine):
    a = sign_in(engine, Identity("https://a.example", "same"))
    b = sign_in(engine, Identity("https://b.example", "same"))
    assert a.account_id != b.account_id


def _concurrent_sign_ins(engine, who: Identity, n: int) -> list[object]:
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = sign_in(engine, who)
        except Exception as exc:  # collected and asserted below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_two_concurrent_first_sign_ins_create_one_account_and_one_welcome_grant(engine):
    who = Identity(ISS, "twin-tabs", email="twin@example.com")
    results = _concurrent_sign_ins(engine, who, 2)
    assert all(isinstance(r, auth.Principal) for r in results), results
    assert results[0] == results[1]
    assert count(engine, accounts) == 1
    assert count(engine, users) == 1
    assert welcome_grants(engine, results[0].account_id) == 1
    assert get_wallet(engine, results[0].account_id).balance == get_settings().welcome_credit


@pytest.mark.postgres
def test_eight_concurrent_first_sign_ins_on_postgresql_still_make_one_account(pg_engine):
    who = Identity(ISS, "many-tabs", email="many@example.com")
    results = _concurrent_sign_ins(pg_engine, who, 8)
    assert all(isinstance(r, auth.Principal) for r in results), results
    assert len({r.account_id for r in results}) == 1
    assert count(pg_engine, accounts) == 1
    assert count(pg_engine, ledger_entries) == 1


def test_an_admin_email_from_the_settings_gets_the_admin_role(engine, monkeypatch):
    monkeypatch.setenv("PRICING_ADMIN_EMAILS", "root@example.com, OPS@example.com")
    get_settings.cache_clear()
    assert sign_in(engine, Identity(ISS, "o", email="ops@EXAMPLE.com")).is_admin
    assert not sign_in(engine, Identity(ISS, "m", email="member@example.com")).is_admin


def test_an_unverified_email_never_makes_an_admin(engine, monkeypatch):
    monkeypatch.setenv("PRICING_ADMIN_EMAILS", "ops@example.com")
    get_settings.cache_clear()
    viewer = sign_in(engine, Identity(ISS, "x", email="ops@example.com", email_verified=False))
    assert not viewer.is_admin and viewer.email is None


def test_requiring_verified_emails_ignores_an_email_without_the_claim(engine, monkeypatch):
    monkeypatch.setenv("PRICING_ADMIN_EMAILS", "ops@example.com")
    monkeypatch.setenv("PRICING_REQUIRE_VERIFIED_EMAIL", "true")
    get_settings.cache_clear()
    assert not sign_in(engine, Identity(ISS, "x", email="ops@example.com")).is_admin
    assert sign_in(
        engine, Identity(ISS, "y", email="ops@example.com", email_verified=True)
    ).is_admin


def test_the_admin_role_in_the_database_makes_an_admin(engine):
    viewer = sign_in(engine, Identity(ISS, "promoted", email="p@example.com"))
    set_user_role(engine, ADMIN, user_id=viewer.user_id, role="admin")
    assert sign_in(engine, Identity(ISS, "promoted", email="p@example.com")).is_admin


def test_an_invited_user_signs_in_to_the_team_account_without_a_personal_one(engine):
    team = create_team_account(engine, ADMIN, name="Shop team")
    invited = invite_user(engine, ADMIN, account_id=team, email="Erin@Example.com")
    viewer = sign_in(engine, Identity(ISS, "erin", email="erin@example.com"))
    assert (viewer.account_id, viewer.user_id) == (team, invited)
    assert count(engine, accounts) == 1  # the team only
    assert get_wallet(engine, team).balance == 0  # no welcome credit for a team invite
    members = list_members(engine, viewer)
    assert [(m.email, m.pending) for m in members] == [("erin@example.com", False)]


def test_an_invitation_is_not_claimed_by_an_unverified_email(engine):
    team = create_team_account(engine, ADMIN, name="Shop team")
    invite_user(engine, ADMIN, account_id=team, email="erin@example.com")
    viewer = sign_in(
        engine, Identity(ISS, "mallory", email="erin@example.com", email_verified=False)
    )
    assert viewer.account_id != team


def test_an_email_linked_to_another_sign_in_is_refused(engine):
    sign_in(engine, Identity(ISS, "first", email="same@example.com"))
    with pytest.raises(PermissionDenied, match="already linked"):
        sign_in(engine, Identity("https://other.example", "second", email="same@example.com"))


def test_a_member_cannot_invite_or_create_teams_or_change_roles(engine):
    create_account(engine, "alice", name="Alice", email="alice@example.com")
    member = auth.Principal("alice", "alice", email="alice@example.com")
    with pytest.raises(PermissionDenied):
        create_team_account(engine, member, name="Mine")
    with pytest.raises(PermissionDenied):
        invite_user(engine, member, account_id="alice", email="x@example.com")
    with pytest.raises(PermissionDenied):
        set_user_role(engine, member, user_id="alice", role="admin")


def test_inviting_an_email_of_another_account_is_refused(engine):
    create_account(engine, "alice", name="Alice", email="alice@example.com")
    team = create_team_account(engine, ADMIN, name="T")
    with pytest.raises(InvalidUsage, match="already belongs"):
        invite_user(engine, ADMIN, account_id=team, email="ALICE@example.com")
    assert invite_user(engine, ADMIN, account_id=team, email="b@example.com") == invite_user(
        engine, ADMIN, account_id=team, email="b@example.com"
    )


def test_a_member_cannot_list_another_accounts_members(engine):
    create_account(engine, "alice", name="Alice", email="alice@example.com")
    create_account(engine, "bob", name="Bob", email="bob@example.com")
    with pytest.raises(PermissionDenied):
        list_members(engine, auth.Principal("alice", "alice"), "bob")


@pytest.mark.parametrize(
    "claims",
    [{}, {"sub": ""}, {"sub": "   "}, {"sub": 5}, {"sub": "x", "email": "not-an-email"}],
)
def test_malformed_claims_are_refused_with_a_clear_error(engine, claims):
    with pytest.raises(InvalidUsage):
        auth.current_principal(engine, demo_account=None, claims=claims)


def test_current_principal_ignores_the_demo_choice_in_production(engine, monkeypatch):
    create_account(engine, "alice", name="Alice")
    monkeypatch.setenv("PRICING_ENV", "production")
    get_settings.cache_clear()
    with pytest.raises(PermissionDenied, match="not signed in"):
        auth.current_principal(engine, demo_account="alice", demo_role="admin")


def test_a_first_sign_in_that_lost_the_race_to_its_own_twin_takes_the_twins_user(engine):
    """The race behind a rare failure of the eight-sign-ins test: the twin committed the
    user after this sign-in's subject lookup, so the email now names a user with a
    subject, and that subject is this identity's own, not another sign-in's."""
    from pricing_core.access.identity import _claim_invitation

    who = Identity(ISS, "twin", email="twin@example.com")
    first = sign_in(engine, who)
    with engine.begin() as conn:
        row = _claim_invitation(conn, who, "twin@example.com", datetime.now(UTC))
    assert row is not None and row.id == first.user_id
    stranger = Identity(ISS, "someone-else", email="twin@example.com")
    with engine.begin() as conn, pytest.raises(PermissionDenied, match="already linked"):
        _claim_invitation(conn, stranger, "twin@example.com", datetime.now(UTC))
