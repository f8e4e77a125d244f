"""`nas search`, `nas jobs`, `nas pareto` and `nas export --front` through the real CLI entry point."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nas_service.cli import app
from tests.test_search_service import latency_limit

runner = CliRunner()


def nas(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_search_then_jobs_and_pareto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path / 'nas.db'}"
    spec = tmp_path / "job.yaml"
    spec.write_text(f"training: {{scorer: estimate}}\nbudget: {{trials: 5}}\n"
                    f"constraints: {{max_latency_ms: {latency_limit(0.8):.3f}}}\n")
    out = nas("search", "--spec", str(spec), "--trials", "12", "--name", "dry", "--db", db)
    assert "Pareto front of job 1" in out and "nas pareto 1" in out
    assert "12/12" in out  # the flag overrides the file
    counts = re.search(r"12 trials: (\d+) trained(?:, (\d+) infeasible \(not trained\))?; front: (\d+) members, "
                       r"(\d+) from the sampler, 0 from the warm start", out)
    assert counts, out
    members = json.loads(nas("pareto", "1", "--json", "--db", db))
    assert int(counts[3]) == len(members) and all(m["origin"] == "sampler" for m in members)

    listing = json.loads(nas("jobs", "--json", "--db", db))
    assert listing[0]["name"] == "dry" and listing[0]["status"] == "completed" and listing[0]["trials_done"] == 12

    members = json.loads(nas("pareto", "1", "--json", "--db", db))
    assert members and {"arch", "accuracy", "latency_ms"} <= set(members[0])
    assert [m["latency_ms"] for m in members] == sorted(m["latency_ms"] for m in members)
    rows = list(csv.DictReader(io.StringIO(nas("pareto", "1", "--csv", "--db", db))))
    assert [r["arch"] for r in rows] == [m["arch"] for m in members]


def test_bad_spec_and_unknown_job_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from nas_service.cli.errors import run_cli

    db = f"sqlite:///{tmp_path / 'nas.db'}"
    cases = {("search", "--sampler", "annealing"): "sampler", ("pareto", "99"): "job 99 not found",
             ("export", "99", "--front", "--out", str(tmp_path)): "job 99 not found"}
    for args, expected in cases.items():
        monkeypatch.setattr("sys.argv", ["nas", *args, "--db", db])
        assert run_cli(app) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.tf
def test_real_training_search_exports_its_front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NAS_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    db = f"sqlite:///{tmp_path / 'nas.db'}"
    nas("search", "--scorer", "train", "--trials", "1", "--epochs", "1", "--initial", "small", "--resolution", "16",
        "--db", db)
    members = json.loads(nas("pareto", "1", "--json", "--db", db))
    assert len(members) == 1 and members[0]["accuracy"] > 0.2 and members[0]["int8_accuracy"] is not None
    out = nas("export", "1", "--front", "--out", str(tmp_path / "front"), "--db", db)
    files = sorted((tmp_path / "front").glob("*.tflite"))
    assert len(files) == 1 and files[0].read_bytes()[4:8] == b"TFL3" and "front.json" in out


def test_search_refuses_a_dataset_that_cannot_load_before_creating_the_job(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from nas_service.cli.errors import run_cli

    db = f"sqlite:///{tmp_path / 'nas.db'}"
    (tmp_path / "corrupt.npz").write_bytes(b"\x93NUMPY" + bytes(300))
    for dataset in (str(tmp_path / "missing.npz"), str(tmp_path / "corrupt.npz")):
        monkeypatch.setattr("sys.argv", ["nas", "search", "--scorer", "estimate", "--dataset", dataset, "--db", db])
        assert run_cli(app) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and dataset in err
    assert json.loads(nas("jobs", "--json", "--db", db)) == []
