"""`nas tokens create --user NAME`: issue an API token (shown once; only its hash is stored)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from nas_service.cli.output import make_console
from nas_service.config import Settings
from nas_service.db import make_engine, session_factory, upgrade_head
from nas_service.services import tokens

tokens_app = typer.Typer(help="API tokens for the REST API and the dashboard.", no_args_is_help=True)

DbOption = Annotated[str | None, typer.Option("--db", help="Database URL (default: NAS_DATABASE_URL or sqlite:///nas.db).")]


@contextmanager
def _session(db: str | None) -> Iterator[Session]:
    """A session on the migrated database named by `--db` or the settings."""
    settings = Settings(database_url=db) if db else Settings()
    engine = make_engine(settings.database_url, busy_timeout_s=settings.sqlite_busy_timeout_s)
    try:
        upgrade_head(engine)
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


@tokens_app.command("create")
def create(
    user: Annotated[str, typer.Option("--user", help="The user the token acts as; created on first use.")],
    label: Annotated[str | None, typer.Option(help="A note to tell tokens apart, e.g. the machine.")] = None,
    db: DbOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the token.")] = False,
) -> None:
    """Create an API token for USER and print it. Send it as `Authorization: Bearer <token>`."""
    with _session(db) as session:
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
    db: DbOption = None,
) -> None:
    """Revoke every token of USER (running API processes forget them within 10 s)."""
    with _session(db) as session:
        count = tokens.revoke_tokens(session, user)
    typer.echo(f"revoked {count} token(s) of {user}")
