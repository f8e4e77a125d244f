"""`nas serve` in a subprocess on a fresh SQLite database, and headless Debian chromium driven by Playwright."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass
class Served:
    url: str
    database_url: str
    artifacts_dir: Path
    token: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nas(*args: str, env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", "from nas_service.cli import main; main()", *args], env=env,
                          check=True, capture_output=True, text=True, timeout=120).stdout


@contextmanager
def serving(database_url: str, root: Path, workers: int = 1, *, in_root: bool = False) -> Iterator[Served]:
    """`nas serve` on `database_url` with `workers` workers, and a token for alice. `in_root`: run in `root` with the
    default relative artifacts directory, as `make run` does."""
    env = {**os.environ, "NAS_DATABASE_URL": database_url, "NAS_POLL_INTERVAL_S": "0.2",
           "NAS_ARTIFACTS_DIR": "artifacts" if in_root else str(root / "artifacts")}
    token = nas("tokens", "create", "--user", "alice", "--quiet", env=env).strip()
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from nas_service.cli import main; main()", "serve",
                             "--port", str(port), "--workers", str(workers), "--log-level", "warning"], env=env,
                            cwd=root if in_root else None)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a loaded 2-core CI machine can take long to import
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/v1/health", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"nas serve did not answer on {url}")
                time.sleep(0.2)
        yield Served(url, database_url, root / "artifacts", token)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("serve")
    with serving(f"sqlite:///{root / 'nas.db'}", root) as served:
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} missing: apt-get install chromium (CI installs it in .ci/run)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
