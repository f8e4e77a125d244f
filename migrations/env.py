"""Alembic environment for the service's tables only.

Optuna's RDB storage shares the database with its own tables and its own `alembic_version`; ours
are versioned in `nas_alembic_version` and `include_object` keeps every table that is not ours
out of autogenerate and `alembic check`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context

from nas_service.db.migrate import VERSION_TABLE, include_object
from nas_service.db.models import Base

config = context.config


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from nas_service.config import Settings

    return Settings().database_url


def _configure(**kwargs: Any) -> None:
    context.configure(target_metadata=Base.metadata, version_table=VERSION_TABLE, include_object=include_object,
                      compare_type=True, render_as_batch=True, **kwargs)


def run_migrations_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = sa.create_engine(_url(), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        _configure(connection=conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
