"""Processes started together on a fresh SQLite file all create the schema without tripping over each other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

START = """
import sys, time
from pathlib import Path
from nas_service.config import Settings
from nas_service.worker import Worker
print("ready", flush=True)
go = Path(sys.argv[2])
while not go.exists():  # every process imported: now all open the fresh database at the same moment
    time.sleep(0.001)
Worker(Settings(database_url=f"sqlite:///{sys.argv[1]}")).close()
"""


@pytest.mark.slow
@pytest.mark.long
def test_four_workers_starting_together_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    for attempt in range(20):
        db, go = tmp_path / f"race-{attempt}.db", tmp_path / f"go-{attempt}"
        procs = [subprocess.Popen([sys.executable, "-c", START, str(db), str(go)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        go.touch()
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert all(p.returncode == 0 for p in procs), f"attempt {attempt}: " + "\n".join(e[-600:] for e in errors)
        engine = sa.create_engine(f"sqlite:///{db}")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM nas_alembic_version")).scalar() == 1
            assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1
        engine.dispose()
