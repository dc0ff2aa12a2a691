"""`pricing-core users ...` (teams, invitations, roles) and `pricing-core apikeys ...`.

The command-line user is the operator: commands run as an admin principal (see
`cli.admin.operator_principal`), recorded as the actor in the audit log.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pricing_core.access.apikeys import create_api_key, list_api_keys, revoke_api_key
from pricing_core.access.teams import create_team_account, invite_user, list_members, set_user_role
from pricing_core.adapters.storage import open_database
from pricing_core.cli.admin import operator_principal

users_app = typer.Typer(help="Users, team accounts, invitations and roles.", no_args_is_help=True)
apikeys_app = typer.Typer(help="API keys (hashed at rest, shown once).", no_args_is_help=True)


@users_app.command("create-team")
def create_team_command(name: Annotated[str, typer.Option(help="The team's name.")]) -> None:
    """Create an empty team account and print its id."""

    typer.echo(create_team_account(open_database(), operator_principal(), name=name))


@users_app.command("invite")
def invite_command(
    account: Annotated[str, typer.Option(help="The account to invite into.")],
    email: Annotated[str, typer.Option(help="The invitee's email (their sign-in email).")],
    role: Annotated[str, typer.Option(help="member or admin.")] = "member",
) -> None:
    """Invite an email into an account: their first sign-in lands there."""

    user_id = invite_user(
        open_database(), operator_principal(), account_id=account, email=email, role=role
    )
    typer.echo(f"invited {email} into {account} as user {user_id}")


@users_app.command("set-role")
def set_role_command(
    user: Annotated[str, typer.Option(help="The user id.")],
    role: Annotated[str, typer.Option(help="member or admin.")],
) -> None:
    """Make a user an admin or a member."""

    set_user_role(open_database(), operator_principal(), user_id=user, role=role)
    typer.echo(f"user {user} is now {role}")


@users_app.command("list")
def list_users_command(account: Annotated[str, typer.Option(help="The account id.")]) -> None:
    """The users of an account (pending = invited, never signed in)."""

    for m in list_members(open_database(), operator_principal(), account):
        state = "pending" if m.pending else "active"
        typer.echo(f"{m.user_id}\t{m.email or '-'}\t{m.role}\t{state}")


@apikeys_app.command("create")
def create_key_command(
    account: Annotated[str, typer.Option(help="The account the key acts for.")],
    name: Annotated[str, typer.Option(help="A label, e.g. the app's name.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Create a key and print it ONCE (only its hash is stored)."""

    key = create_api_key(open_database(), operator_principal(), account_id=account, name=name)
    if as_json:
        typer.echo(json.dumps({"id": key.id, "account_id": key.account_id, "key": key.secret}))
        return
    typer.echo(f"API key {key.id} for account {key.account_id} (shown once, store it now):")
    typer.echo(key.secret)


@apikeys_app.command("list")
def list_keys_command(account: Annotated[str, typer.Option(help="The account id.")]) -> None:
    """The account's keys: id, prefix, name, created, last used, revoked."""

    for k in list_api_keys(open_database(), operator_principal(), account_id=account):
        used = k.last_used_at.isoformat() if k.last_used_at else "never"
        revoked = k.revoked_at.isoformat() if k.revoked_at else "active"
        typer.echo(
            f"{k.id}\t{k.prefix}...\t{k.name or '-'}\t{k.created_at.isoformat()}\t{used}\t{revoked}"
        )


@apikeys_app.command("revoke")
def revoke_key_command(key_id: Annotated[str, typer.Argument(help="The key id.")]) -> None:
    """Revoke a key: it stops working at once."""

    info = revoke_api_key(open_database(), operator_principal(), key_id)
    typer.echo(f"revoked {info.id} ({info.prefix}...) of account {info.account_id}")
