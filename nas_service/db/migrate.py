"""Run our Alembic migrations programmatically: `upgrade_head(engine)` at every start, `check(engine)` in tests.

The Alembic environment lives in the top-level `migrations/` directory next to `alembic.ini`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from nas_service.config import Settings

VERSION_TABLE = "nas_alembic_version"
TABLE_PREFIX = "nas_"


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Only our `nas_*` tables (and their indexes/constraints) take part in autogenerate and `alembic check`."""
    if type_ == "table":
        return bool(name) and str(name).startswith(TABLE_PREFIX)
    table = getattr(obj, "table", None)
    return table is None or str(table.name).startswith(TABLE_PREFIX)


def migrations_dir() -> Path:
    """The `migrations/` directory: beside the package in a checkout or editable install, else inside it."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "migrations", package / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(f"no Alembic environment (migrations/env.py) beside or inside {package}")


def alembic_config(connection: sa.Connection | None = None, settings: Settings | None = None) -> Any:
    import sys

    from alembic.config import Config

    # Alembic's default `stdout` is bound when alembic is first imported; name the current stream instead,
    # or a process whose stdout was swapped meanwhile (a CLI runner, a daemon) writes to a closed file.
    config = Config(stdout=sys.stdout)
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    if settings is not None:  # migrations that move files read where they are and where they go (0004)
        config.attributes["settings"] = settings
    return config


SCHEMA_LOCK_KEY = 0x6E61735F736368  # any constant shared by every process of the service


@contextmanager
def schema_lock(engine: sa.Engine) -> Iterator[None]:
    """Serialise schema changes of processes starting together (ours and Optuna's table creation): a
    PostgreSQL advisory lock, or on SQLite an exclusive `flock` on `<database file>.lock` beside it (without
    it, `nas worker & nas worker &` on a fresh file fails all but one with "table ... already exists")."""
    if engine.dialect.name == "sqlite":
        with _file_lock(engine.url.database):
            yield
        return
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK_KEY})
            conn.commit()


@contextmanager
def _file_lock(database: str | None) -> Iterator[None]:
    """An exclusive lock on the file beside an SQLite database; none for in-memory databases."""
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    import fcntl

    path = Path(database).expanduser()
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade_head(engine: sa.Engine, *, lock: bool = True, settings: Settings | None = None) -> None:
    """Bring the service's tables to the newest revision; a no-op when they already are. `lock=False`
    when the caller already holds `schema_lock`; `settings` name the artifact store and directory a data
    migration uses (default: `Settings()` from the environment).

    On SQLite, foreign keys are off while migrations run: Alembic's batch mode rebuilds a table by copying it and
    dropping the original, and with them on, the drop fires the `ON DELETE` actions of the tables referring to it
    (rebuilding `nas_candidates` in 0005 set every trial's `candidate_id` to NULL)."""
    from alembic import command

    sqlite = engine.dialect.name == "sqlite"
    with schema_lock(engine) if lock else nullcontext(), engine.connect() as conn:
        if sqlite:  # see the docstring; SQLite ignores the pragma inside a transaction
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                command.upgrade(alembic_config(conn, settings), "head")
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def check(engine: sa.Engine) -> None:
    """Raise `alembic.util.exc.AutogenerateDiffsDetected` when the models and the migrations differ."""
    from alembic import command

    with engine.connect() as conn:
        command.check(alembic_config(conn))
