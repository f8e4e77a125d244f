"""The `--db` option of every command that opens the database, and opening it migrated, in one place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import sqlalchemy as sa
import typer

from nas_service.config import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

DbOpt = Annotated[str | None, typer.Option("--db", help="Database URL (default: NAS_DATABASE_URL or sqlite:///nas.db).")]


class DatabaseOpenError(RuntimeError):
    """A database URL that names no database this command can open: a bad URL, a dead server, a missing database."""


URL_FORMS = "expected sqlite:///FILE or postgresql+psycopg://USER@HOST:PORT/DATABASE"


def shown_url(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


@contextmanager
def opening(url: str) -> Iterator[None]:
    """Turn the errors of opening `url` (not of using it later) into one `DatabaseOpenError` line."""
    try:
        yield
    except (sa.exc.NoSuchModuleError, sa.exc.ArgumentError) as exc:
        first = str(exc).splitlines()[0]
        raise DatabaseOpenError(f"database URL {shown_url(url)!r} cannot be opened ({first}): {URL_FORMS} "
                                "(--db or NAS_DATABASE_URL)") from None
    except sa.exc.OperationalError as exc:
        reason = " ".join(str(exc.orig).split()) if exc.orig is not None else str(exc).splitlines()[0]
        raise DatabaseOpenError(f"cannot connect to database {shown_url(url)}: {reason[:300]}; check that the server "
                                "runs and the database exists (createdb NAME), or give another --db") from None
    except OSError as exc:  # a SQLite file in a folder that does not exist (its schema lock file beside it)
        raise DatabaseOpenError(f"cannot connect to database {shown_url(url)}: {exc.strerror}: {exc.filename}; "
                                "create its folder, or give another --db") from None


def settings_for(db: str | None) -> Settings:
    """The settings, with `--db` (when given) written over the configured database URL."""
    return Settings(database_url=db) if db else Settings()


def migrated_engine(settings: Settings) -> Engine:
    """An engine on the settings' database, upgraded to the newest migration, as every start does."""
    from nas_service.db import make_engine, upgrade_head

    with opening(settings.database_url):
        engine = make_engine(settings.database_url, busy_timeout_s=settings.sqlite_busy_timeout_s)
        upgrade_head(engine, settings=settings)
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
