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
from tests.test_search_service import db_url as db_url  # noqa: F401  (a fixture: SQLite and PostgreSQL)
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
                       r"(\d+) from the sampler, (\d+) from the warm start", out)
    assert counts, out
    members = json.loads(nas("pareto", "1", "--json", "--db", db))
    assert int(counts[3]) == len(members) and sum(m["origin"] == "sampler" for m in members) == int(counts[4])
    assert sum(m["origin"] == "initial" for m in members) == int(counts[5]) <= 1  # the default warm start

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
@pytest.mark.long  # real training, half a minute or more: `make test-long`
def test_real_training_search_exports_its_front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NAS_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    db = f"sqlite:///{tmp_path / 'nas.db'}"
    nas("search", "--scorer", "train", "--trials", "1", "--epochs", "1", "--initial", "small", "--resolution", "28",
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
    import numpy as np

    x = np.random.default_rng(0).random((20, 8, 8))
    np.savez(tmp_path / "label10.npz", x_train=x, y_train=np.arange(20) % 10 + (np.arange(20) == 19),
             x_test=x[:10], y_test=np.arange(10), classes=np.array([str(i) for i in range(10)]))
    x[3, 1, 1] = np.nan
    np.savez(tmp_path / "nan.npz", x_train=x, y_train=np.arange(20) % 2, x_test=x[:4], y_test=np.arange(4) % 2)
    for dataset in (str(tmp_path / "missing.npz"), str(tmp_path / "corrupt.npz"), str(tmp_path / "label10.npz"),
                    str(tmp_path / "nan.npz")):
        monkeypatch.setattr("sys.argv", ["nas", "search", "--scorer", "estimate", "--dataset", dataset, "--db", db])
        assert run_cli(app) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and dataset in err
    assert json.loads(nas("jobs", "--json", "--db", db)) == []


def test_manage_jobs_from_the_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Owner and trial counts in `nas jobs`; `nas trials` filters and exports; cancel, resume and rm."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NAS_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    db = f"sqlite:///{tmp_path / 'nas.db'}"
    out = nas("search", "--scorer", "estimate", "--trials", "8", "--max-latency-ms", f"{latency_limit(0.5):.4f}",
              "--user", "alice", "--db", db)
    assert "job 1 of alice" in out and "nas tokens create --user alice" in out
    job = json.loads(nas("jobs", "--json", "--db", db))[0]
    counts = job["trial_counts"]
    assert job["owner"] == "alice" and sum(counts.values()) == 8 and counts.get("infeasible", 0) >= 1
    table = nas("jobs", "--db", db)
    assert "alice" in table and f"{counts.get('complete', 0)}/0/{counts['infeasible']}/0" in table

    every = json.loads(nas("trials", "1", "--json", "--db", db))
    assert [t["number"] for t in every] == list(range(8))
    infeasible = json.loads(nas("trials", "1", "--state", "infeasible", "--json", "--db", db))
    assert len(infeasible) == counts["infeasible"] and {t["state"] for t in infeasible} == {"infeasible"}
    by_latency = list(csv.DictReader(io.StringIO(nas("trials", "1", "--sort", "latency_ms", "--desc", "--csv",
                                                     "--db", db))))
    latencies = [float(r["latency_ms"]) for r in by_latency]
    assert latencies == sorted(latencies, reverse=True)

    from nas_service.cli.database import session_maker, settings_for
    from nas_service.services import jobs
    from nas_service.spec import parse_spec

    with session_maker(settings_for(db))() as session:
        queued = jobs.create_job(session, parse_spec({"training": {"scorer": "estimate"}, "budget": {"trials": 3}}))
    assert f"job {queued.id} cancelled after 0 trials" in nas("cancel", str(queued.id), "--db", db)
    assert f"job {queued.id} queued: 0 trials kept" in nas("resume", str(queued.id), "--db", db)
    nas("worker", "--job", str(queued.id), "--exit-when-idle", "--db", db)
    assert json.loads(nas("jobs", "--json", "--db", db))[0]["status"] == "completed"
    from nas_service.cli.errors import run_cli

    for args, expected in ((["cancel", "1"], "job 1 is completed: only queued or running jobs can be cancelled"),
                           (["resume", "1"], "job 1 is completed: only cancelled or failed jobs can be resumed"),
                           (["trials", "1", "--state", "done"], "unknown state 'done'")):
        monkeypatch.setattr("sys.argv", ["nas", *args, "--db", db])
        assert run_cli(app) == 2
        err = capsys.readouterr().err
        assert expected in " ".join(err.split()) and "Traceback" not in err
    study = "nas-job-"
    assert "its Optuna study" in nas("rm", str(queued.id), "--db", db)
    assert [j["id"] for j in json.loads(nas("jobs", "--json", "--db", db))] == [1]
    import optuna

    assert sum(s.study_name.startswith(study) for s in optuna.get_all_study_summaries(db)) == 1


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_unusable_input_is_one_line_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str], backend: str,
                                                    request: pytest.FixtureRequest) -> None:
    """Each of these was a traceback: yaml's ParserError, IsADirectoryError, NotADirectoryError, SQLAlchemy's
    OperationalError (missing database, dead port) and NoSuchModuleError."""
    from nas_service.cli.errors import run_cli

    db = request.getfixturevalue("postgres_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'nas.db'}"
    (tmp_path / "broken.yaml").write_text("budget: {trials: 2\nsampler: [\n")
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "a_file").write_text("")
    missing_db = (db.rsplit("/", 1)[0] + "/no_such_database" if backend == "postgres"
                  else f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    dead_port = "postgresql+psycopg://postgres@127.0.0.1:1/test"
    cases = {
        ("search", "--spec", str(tmp_path / "broken.yaml"), "--db", db): "is not valid YAML at line 2, column 8",
        ("search", "--spec", str(tmp_path / "a_dir"), "--db", db): "is a directory: expected a YAML file",
        ("export", "1", "--front", "--out", str(tmp_path / "a_file" / "front"), "--db", db):
            "a_file is a file, not a directory",
        ("export", "small", "--out", str(tmp_path / "a_file" / "m.tflite")): "a_file is a file, not a directory",
        ("jobs", "--db", missing_db): "cannot connect to database",
        ("search", "--scorer", "estimate", "--db", dead_port): "cannot connect to database",
        ("worker", "--exit-when-idle", "--db", dead_port): "cannot connect to database",
        ("jobs", "--db", "foo://bar"): "database URL 'foo://bar' cannot be opened",
    }
    for args, expected in cases.items():
        monkeypatch.setattr("sys.argv", ["nas", *args])
        assert run_cli(app) == 2, args
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, (args, err)


def test_an_empty_spec_file_is_the_default_job(tmp_path: Path) -> None:
    from nas_service.spec import JobSpec, load_spec_file

    for text in ("", "# nothing but a comment\n", "\n\n"):
        (tmp_path / "empty.yaml").write_text(text)
        assert load_spec_file(tmp_path / "empty.yaml") == JobSpec()


def test_a_resolution_the_space_does_not_allow_is_refused_before_the_job(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from nas_service.cli.errors import run_cli

    db = f"sqlite:///{tmp_path / 'nas.db'}"
    (tmp_path / "res.yaml").write_text("resolution: 100\ntraining: {scorer: estimate}\n")
    for args in (("--resolution", "33", "--scorer", "estimate"), ("--spec", str(tmp_path / "res.yaml"))):
        monkeypatch.setattr("sys.argv", ["nas", "search", *args, "--db", db])
        assert run_cli(app) == 2
        err = capsys.readouterr().err
        assert "is not a resolution of search space 'edgetpu_small': expected 28, 32, 48 or 64" in err, err
        assert len(err.strip().splitlines()) == 1
    assert json.loads(nas("jobs", "--json", "--db", db)) == []


def test_an_unmeetable_constraint_is_explained(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every trial infeasible: each says what it broke and by how much, the search warns once with the closest
    candidates sampled (and the latency no architecture avoids), and ends with that explanation, not an empty
    table."""
    monkeypatch.chdir(tmp_path)
    out = nas("search", "--scorer", "estimate", "--trials", "5", "--max-latency-ms", "0.01", "--max-params", "1000",
              "--db", db_url)
    trials = json.loads(nas("trials", "1", "--json", "--db", db_url))
    assert [t["state"] for t in trials] == ["infeasible"] * 5
    for t in trials:
        assert t["error"].startswith(f"broke max_latency_ms 0.01 ms: {t['latency_ms']:.4g} ms, ")
        assert f"({t['latency_ms'] / 0.01:.3g}x the limit); max_params 1,000 parameters: {t['params']:,} parameters" \
            in t["error"]
    table = " ".join(nas("trials", "1", "--db", db_url, "--state", "infeasible").split())
    assert "broke max_latency_ms" in table
    fastest = min(t["latency_ms"] for t in trials)
    text = " ".join(out.split())
    assert text.count("warning:") == 1, text  # once, after the third infeasible trial
    assert re.search(r"warning: all 3 trials so far broke a constraint: the fastest candidate sampled is [\d.]+ ms "
                     r"\(max_latency_ms 0.01\); [\d.]+ ms of it is fixed invoke\+io, which no architecture avoids",
                     text), text
    smallest = min(t["params"] for t in trials)
    closing = text[text.index("Pareto front of job 1"):]
    assert ("job 1's Pareto front is empty: none of its 5 finished trials joined it (5 infeasible (broke a "
            f"constraint)); all 5 trials so far broke a constraint: the fastest candidate sampled is {fastest:.3g} "
            "ms (max_latency_ms 0.01)") in closing
    assert f"the smallest candidate sampled has {smallest:,} parameters (max_params 1,000)" in closing
    assert "┏" not in closing  # no empty table


def test_the_closing_summary_splits_each_front_members_latency(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed invoke+io, compute, streaming and CPU per front member, as the candidate page shows them: they add up
    to the member's latency."""
    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path / 'nas.db'}"
    out = nas("search", "--scorer", "estimate", "--trials", "6", "--db", db)
    members = json.loads(nas("pareto", "1", "--json", "--db", db))
    assert "latency split of the front members on edgetpu_usb (ms)" in out
    header = next(line for line in out.splitlines() if "fixed invoke+io" in line)
    assert [c.strip() for c in header.strip("┃ ").split("┃")] == [
        "#", "candidate", "latency ms", "fixed invoke+io", "compute", "streaming", "CPU"]
    rows = [[c.strip() for c in line.strip("│ ").split("│")] for line in out.splitlines()
            if line.startswith("│") and len(line.split("│")) == 9]
    assert [int(r[1]) for r in rows] == [m["candidate_id"] for m in members]
    for _rank, _candidate, total, *parts in rows:
        io, compute, streaming, cpu = map(float, parts)
        assert io > 0.1 and compute > 0 and abs(io + compute + streaming + cpu - float(total)) <= 0.003, parts


def test_search_runs_on_a_dataset_uploaded_to_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """An upload lives in the server's database and store: `nas search --db` on them runs `upload:<id>` as its
    owner (`--user`), from a checked local copy; a missing id or another user's upload is one line and no job."""
    from nas_service.cli.errors import run_cli
    from nas_service.config import Settings
    from nas_service.db import make_engine, session_factory, upgrade_head
    from nas_service.db.artifacts import make_store
    from nas_service.services import uploads
    from tests.api.test_uploaded_datasets import npz

    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path / 'nas.db'}"
    settings = Settings(database_url=db, artifacts_dir=Path("nas_artifacts"))  # the server's, in this folder
    engine = make_engine(db)
    upgrade_head(engine, settings=settings)
    (tmp_path / "upload.npz").write_bytes(npz())
    with session_factory(engine)() as session:
        made = uploads.add(session, make_store(settings, engine), settings, owner="alice", name="shapes.npz",
                           path=tmp_path / "upload.npz")
    engine.dispose()
    (tmp_path / "upload.npz").unlink()
    args = ("search", "--dataset", f"upload:{made.id}", "--scorer", "estimate", "--trials", "3", "--resolution",
            "32", "--db", db)
    for extra, expected in {(): "is alice's, not local's: a job may use only its owner's uploads; add --user alice",
                            ("--dataset", "upload:99"): "dataset 'upload:99' not found in database"}.items():
        monkeypatch.setattr("sys.argv", ["nas", *args, *extra])
        assert run_cli(app) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert json.loads(nas("jobs", "--json", "--db", db)) == []
    out = nas(*args, "--user", "alice")
    assert f"dataset upload:{made.id}" in out and "Pareto front of job 1" in out
    job = json.loads(nas("jobs", "--json", "--db", db))[0]
    assert (job["owner"], job["status"], job["spec"]["dataset"]) == ("alice", "completed", f"upload:{made.id}")
    copies = list((tmp_path / "nas_artifacts" / "datasets").glob("*.npz"))
    assert [c.read_bytes() for c in copies] == [npz()]
