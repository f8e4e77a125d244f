"""Shared fixtures. PostgreSQL tests skip outside CI when the server is down, and fail loudly in CI."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_admin_url() -> str:
    return os.environ.get("NAS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema-isolated database URL for one test, dropped afterwards."""
    import sqlalchemy as sa

    admin_url = _postgres_admin_url()
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            name = f"nas_test_{uuid.uuid4().hex[:12]}"
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        engine.dispose()
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {admin_url} is unreachable in CI: {exc}")
        pytest.skip(f"PostgreSQL at {admin_url} is unreachable (set NAS_TEST_POSTGRES_URL): {exc.orig}")
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
