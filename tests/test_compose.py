"""docker-compose.yml is valid for the compose client installed here (v2 plugin or Debian's docker-compose 1.29),
with its gpu profile."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def compose_config(command: list[str], *options: str) -> dict[str, Any]:
    result = subprocess.run([*command, "-f", str(ROOT / "docker-compose.yml"), *options, "config"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_compose_config_validates() -> None:
    command = compose_command()
    if command is None:
        pytest.skip("no docker compose client (CI installs Debian's docker-compose)")
    config = compose_config(command)
    services = config["services"]
    # Compose v2 leaves out a service whose profile is not asked for; Debian's 1.29 lists it with its profile.
    assert set(services) - {"worker-gpu"} == {"postgres", "migrate", "api", "worker"}
    assert "healthcheck" in services["postgres"] and "pgdata" in config["volumes"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for role in ("api", "worker"):
        assert services[role]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[role]["environment"]["NAS_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "ports" not in services["worker"] and "container_name" not in services["worker"]  # --scale worker=N
    assert services["api"]["command"][:2] == ["nas", "serve"]
    assert "profiles" not in services["worker"] and "TENSORFLOW" not in str(services["worker"].get("build"))


def test_the_gpu_worker_is_behind_its_profile() -> None:
    command = compose_command()
    if command is None:
        pytest.skip("no docker compose client (CI installs Debian's docker-compose)")
    gpu = compose_config(command, "--profile", "gpu")["services"]["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]  # `docker compose up` without --profile gpu leaves it out
    assert gpu["build"]["args"]["TENSORFLOW"] == "gpu" and gpu["image"] != "nas-service:latest"
    assert gpu["command"] == ["nas", "worker", "--device-class", "gpu"]
    assert gpu["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert gpu["environment"]["NAS_DATABASE_URL"].startswith("postgresql+psycopg://")
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


def test_dockerfile_installs_the_checkout() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG TENSORFLOW=cpu" in text and 'pip install -e ".[${TENSORFLOW}]"' in text  # the CPU wheel by default
    assert "pip install --no-deps -e ." in text and "COPY migrations migrations" in text
