"""The `--db` option of every command that opens the database, and opening it migrated, in one place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from nas_service.config import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

DbOpt = Annotated[str | None, typer.Option("--db", help="Database URL (default: NAS_DATABASE_URL or sqlite:///nas.db).")]


def settings_for(db: str | None) -> Settings:
    """The settings, with `--db` (when given) written over the configured database URL."""
    return Settings(database_url=db) if db else Settings()


def migrated_engine(settings: Settings) -> Engine:
    """An engine on the settings' database, upgraded to the newest migration, as every start does."""
    from nas_service.db import make_engine, upgrade_head

    engine = make_engine(settings.database_url, busy_timeout_s=settings.sqlite_busy_timeout_s)
    upgrade_head(engine)
    return engine


def session_maker(settings: Settings) -> sessionmaker[Session]:
    from nas_service.db import session_factory

    return session_factory(migrated_engine(settings))


@contextmanager
def open_session(db: str | None) -> Iterator[Session]:
    """One session on the migrated database named by `--db` or the settings; the engine is closed after."""
    from nas_service.db import session_factory

    engine = migrated_engine(settings_for(db))
    try:
        with session_factory(engine)() as s:
            yield s
    finally:
        engine.dispose()
