"""`pricing-core users ...`: team accounts, invitations and roles (as the operator)."""

from __future__ import annotations

from typing import Annotated

import typer

from pricing_core.access.teams import create_team_account, invite_user, list_members, set_user_role
from pricing_core.adapters.storage import open_database
from pricing_core.cli.common import operator_principal

app = typer.Typer(help="Users, team accounts, invitations and roles.", no_args_is_help=True)


@app.command("create-team")
def create_team_command(name: Annotated[str, typer.Option(help="The team's name.")]) -> None:
    """Create an empty team account and print its id."""

    typer.echo(create_team_account(open_database(), operator_principal(), name=name))


@app.command("invite")
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


@app.command("set-role")
def set_role_command(
    user: Annotated[str, typer.Option(help="The user id.")],
    role: Annotated[str, typer.Option(help="member or admin.")],
) -> None:
    """Make a user an admin or a member."""

    set_user_role(open_database(), operator_principal(), user_id=user, role=role)
    typer.echo(f"user {user} is now {role}")


@app.command("list")
def list_users_command(account: Annotated[str, typer.Option(help="The account id.")]) -> None:
    """The users of an account (pending = invited, never signed in)."""

    for m in list_members(open_database(), operator_principal(), account):
        state = "pending" if m.pending else "active"
        typer.echo(f"{m.user_id}\t{m.email or '-'}\t{m.role}\t{state}")
