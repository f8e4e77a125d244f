"""`nas tokens create/revoke` as a user runs them, and the API honouring what they did."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nas_service.api import create_app
from nas_service.cli import app
from nas_service.cli.errors import run_cli
from nas_service.config import Settings


def nas(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["nas", *args])
    code = run_cli(app)
    out, err = capsys.readouterr()
    return code, out, err


def test_create_use_and_revoke(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                               tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'nas.db'}"
    code, out, _ = nas(monkeypatch, capsys, "tokens", "create", "--user", "carol", "--db", db)
    assert code == 0 and "carol" in out
    token = out.strip().splitlines()[-1]
    code, quiet, _ = nas(monkeypatch, capsys, "tokens", "create", "--user", "carol", "--quiet", "--db", db)
    assert code == 0 and quiet.strip().startswith("nas_") and quiet.strip() != token
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(Settings(database_url=db))) as client:
        assert client.get("/api/v1/me", headers=headers).json() == {"user": "carol"}
    code, out, _ = nas(monkeypatch, capsys, "tokens", "revoke", "--user", "carol", "--db", db)
    assert code == 0 and "revoked 2" in out
    with TestClient(create_app(Settings(database_url=db))) as client:
        assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_bad_user_name_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                   tmp_path: Path) -> None:
    code, _, err = nas(monkeypatch, capsys, "tokens", "create", "--user", "two words", "--db",
                       f"sqlite:///{tmp_path / 'nas.db'}")
    assert code == 2 and err.count("\n") == 1 and "'two words'" in err and "letters, digits" in err
