"""`pricing-core apikeys ...`: API keys (hashed at rest, shown once)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pricing_core.access.apikeys import create_api_key, list_api_keys, revoke_api_key
from pricing_core.adapters.storage import open_database
from pricing_core.cli.common import operator_principal

app = typer.Typer(help="API keys (hashed at rest, shown once).", no_args_is_help=True)


@app.command("create")
def create_key_command(
    account: Annotated[str, typer.Option(help="The account the key acts for.")],
    name: Annotated[str, typer.Option(help="A label, e.g. the app's name.")] = "",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object.", metavar="")
    ] = False,
) -> None:
    """Create a key and print it ONCE (only its hash is stored)."""

    key = create_api_key(open_database(), operator_principal(), account_id=account, name=name)
    if as_json:
        typer.echo(json.dumps({"id": key.id, "account_id": key.account_id, "key": key.secret}))
        return
    typer.echo(f"API key {key.id} for account {key.account_id} (shown once, store it now):")
    typer.echo(key.secret)


@app.command("list")
def list_keys_command(account: Annotated[str, typer.Option(help="The account id.")]) -> None:
    """The account's keys: id, prefix, name, created, last used, revoked."""

    for k in list_api_keys(open_database(), operator_principal(), account_id=account):
        used = k.last_used_at.isoformat() if k.last_used_at else "never"
        revoked = k.revoked_at.isoformat() if k.revoked_at else "active"
        typer.echo(
            f"{k.id}\t{k.prefix}...\t{k.name or '-'}\t{k.created_at.isoformat()}\t{used}\t{revoked}"
        )


@app.command("revoke")
def revoke_key_command(key_id: Annotated[str, typer.Argument(help="The key id.")]) -> None:
    """Revoke a key: it stops working at once."""

    info = revoke_api_key(open_database(), operator_principal(), key_id)
    typer.echo(f"revoked {info.id} ({info.prefix}...) of account {info.account_id}")
