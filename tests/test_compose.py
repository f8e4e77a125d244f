"""docker-compose.yml is valid for the compose client installed here (v2 plugin or Debian's docker-compose 1.29)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_config_validates() -> None:
    command = compose_command()
    if command is None:
        pytest.skip("no docker compose client (CI installs Debian's docker-compose)")
    result = subprocess.run([*command, "-f", str(ROOT / "docker-compose.yml"), "config"], capture_output=True,
                            text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) == {"postgres", "migrate", "api", "worker"}
    assert "healthcheck" in services["postgres"] and "pgdata" in config["volumes"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for role in ("api", "worker"):
        assert services[role]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[role]["environment"]["NAS_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "ports" not in services["worker"] and "container_name" not in services["worker"]  # --scale worker=N
    assert services["api"]["command"][:2] == ["nas", "serve"]


def test_dockerfile_installs_the_checkout() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "pip install -e ." in text and "COPY migrations migrations" in text
