"""`nas tokens create --user NAME`: issue an API token (shown once; only its hash is stored)."""

from __future__ import annotations

from typing import Annotated

import typer

from nas_service.cli.database import DbOpt, open_session
from nas_service.cli.output import make_console
from nas_service.services import tokens

tokens_app = typer.Typer(help="API tokens for the REST API and the dashboard.", no_args_is_help=True)

@tokens_app.command("create")
def create(
    user: Annotated[str, typer.Option("--user", help="The user the token acts as; created on first use.")],
    label: Annotated[str | None, typer.Option(help="A note to tell tokens apart, e.g. the machine.")] = None,
    db: DbOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the token.")] = False,
) -> None:
    """Create an API token for USER and print it. Send it as `Authorization: Bearer <token>`."""
    with open_session(db) as session:
        issued = tokens.create_token(session, user, label)
    if quiet:
        typer.echo(issued.token)
        return
    console = make_console()
    console.print(f"token for user [bold]{issued.user}[/] (shown once, store it now):", highlight=False)
    typer.echo(issued.token)


@tokens_app.command("revoke")
def revoke(
    user: Annotated[str, typer.Option("--user", help="Revoke every token of this user.")],
    db: DbOpt = None,
) -> None:
    """Revoke every token of USER (running API processes forget them within 10 s)."""
    with open_session(db) as session:
        count = tokens.revoke_tokens(session, user)
    typer.echo(f"revoked {count} token(s) of {user}")
