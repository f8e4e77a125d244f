"""An API over a fresh, migrated SQLite database, with two users (alice, bob) and their tokens."""

from __future__ import annotations

import random
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import latency_models
from nas_service.api import create_app
from nas_service.config import Settings
from nas_service.db import make_engine, session_factory, upgrade_head
from nas_service.services import tokens
from nas_service.spec import JobSpec
from search_spaces import load_space


def median_latency_ms(space: str = JobSpec().space, resolution: int = JobSpec().resolution or 32,
                      samples: int = 24) -> float:
    """The median predicted latency of random members of `space`: a limit that makes about half infeasible,
    whatever the calibration of the latency model is today."""
    rng = random.Random(0)
    search_space = load_space(space)
    choices = {k: v for k, v in search_space.choices().items() if len(v) > 1 and k != "resolution"}
    latencies = [latency_models.predict(search_space.build({k: rng.choice(v) for k, v in choices.items()},
                                                           num_classes=10, resolution=resolution)).total_ms
                 for _ in range(samples)]
    return round(statistics.median(latencies), 3)


@dataclass
class Api:
    settings: Settings
    client: TestClient
    alice: dict[str, str]
    bob: dict[str, str]


def make_api(database_url: str, artifacts: Path) -> Iterator[Api]:
    settings = Settings(database_url=database_url, artifacts_dir=artifacts)
    engine = make_engine(database_url)
    upgrade_head(engine)
    with session_factory(engine)() as session:
        headers = {user: {"Authorization": f"Bearer {tokens.create_token(session, user).token}"}
                   for user in ("alice", "bob")}
    engine.dispose()
    with TestClient(create_app(settings)) as client:
        yield Api(settings, client, headers["alice"], headers["bob"])


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("api")
    yield from make_api(f"sqlite:///{root / 'nas.db'}", root / "artifacts")
