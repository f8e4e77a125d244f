"""Property-based tests of every operation in the OpenAPI schema: no input gives a 500, every answer matches it."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from nas_service.api import create_app
from nas_service.config import Settings
from nas_service.db import make_engine, session_factory, upgrade_head
from nas_service.services import tokens

CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance)

# The app is built at collection time (building it touches no database); the database behind it is
# migrated and filled by the fixture below, before the first case runs.
ROOT = Path(tempfile.mkdtemp(prefix="nas-fuzz-"))
SETTINGS = Settings(database_url=f"sqlite:///{ROOT / 'nas.db'}", artifacts_dir=ROOT / "artifacts")
APP = create_app(SETTINGS)
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", APP)
HEADERS: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def database() -> Iterator[None]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from synthetic_job import seed_job

    engine = make_engine(SETTINGS.database_url)
    upgrade_head(engine)
    with session_factory(engine)() as session:
        HEADERS["Authorization"] = f"Bearer {tokens.create_token(session, 'alice').token}"
        seed_job(session, "alice", 40, seed=1)  # job 1 has results, so /jobs/1/... answers with data too
    engine.dispose()
    yield
    APP.state.ctx.engine.dispose()
    shutil.rmtree(ROOT, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=HEADERS, checks=CHECKS)
