"""Engines for SQLite (embedded default: WAL, busy timeout, foreign keys) and PostgreSQL (chosen by URL)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker


def is_sqlite(url: str | sa.URL) -> bool:
    return sa.make_url(url).get_backend_name() == "sqlite"


def sqlite_connect_args(busy_timeout_s: float) -> dict[str, Any]:
    """Connect arguments shared by our engine and Optuna's, so both wait for locks the same way."""
    return {"timeout": busy_timeout_s, "check_same_thread": False}


def make_engine(url: str, *, busy_timeout_s: float = 30.0, echo: bool = False) -> sa.Engine:
    """An engine for `url`. SQLite files get WAL (readers never block the writer) and a busy timeout."""
    if is_sqlite(url):
        engine = sa.create_engine(url, echo=echo, connect_args=sqlite_connect_args(busy_timeout_s))
        timeout_ms = int(busy_timeout_s * 1000)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if sa.make_url(url).database not in (None, "", ":memory:"):
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={timeout_ms}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return sa.create_engine(url, echo=echo, pool_pre_ping=True)


def session_factory(engine: sa.Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
