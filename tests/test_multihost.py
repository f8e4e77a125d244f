"""`nas serve` and two `nas worker` processes as if on three machines: each in its own working directory with its
own `artifacts_dir`, sharing nothing but the PostgreSQL URL. Models trained by either worker download from the
server, load in LiteRT and match their stored hash; a worker killed with SIGKILL in the middle of an upload
leaves no artifact behind, and its trial is re-queued and run by the other.

Where the machine allows it, each process runs in its own network namespace and reaches PostgreSQL only over its
veth pair (`tests.netns`), and the test reaches the server over the server's; elsewhere they share the host's
network (the reason is given as a warning) and only their disks are apart.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.dashboard.conftest import _free_port
from tests.netns import Machine, Network, machines

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.tf, pytest.mark.long]
NAS = [sys.executable, "-c", "from nas_service.cli import main; main()"]
SPEC = {"budget": {"trials": 3}, "initial": ["small"], "sampler": "random", "seed": 4,
        "training": {"scorer": "train", "epochs": 1, "train_images": 200, "concurrency": 1, "export_int8": True}}


def machine(root: Path, host: Machine, url: str) -> tuple[Path, dict[str, str]]:
    """A working directory and environment of one 'machine': its own relative artifacts directory, the database
    URL (at the address this machine reaches it at) with an application name that tells its connections apart in
    pg_stat_activity."""
    home = root / host.name
    home.mkdir()
    db_url = sa.engine.make_url(url).set(host=host.upstream[0], port=host.upstream[1]).update_query_dict(
        {"application_name": host.name}).render_as_string(hide_password=False)
    env = {**os.environ, "NAS_DATABASE_URL": db_url, "NAS_ARTIFACTS_DIR": "artifacts",
           "NAS_HEARTBEAT_INTERVAL_S": "1", "NAS_HEARTBEAT_GRACE_S": "4", "NAS_POLL_INTERVAL_S": "0.3",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    return home, env


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    end = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.3)
    return value


@contextmanager
def fleet(root: Path, url: str, network: Network) -> Iterator[tuple[str, str, dict[str, subprocess.Popen[bytes]]]]:
    server = network.machines["server"]
    server_home, server_env = machine(root, server, url)
    token = subprocess.run(server.argv([*NAS, "tokens", "create", "--user", "alice", "--quiet"]), env=server_env,
                           cwd=server_home, check=True, capture_output=True, text=True, timeout=180).stdout.strip()
    port = _free_port()
    procs = {"server": subprocess.Popen(server.argv([*NAS, "serve", "--host", server.address, "--port", str(port),
                                                     "--workers", "0", "--log-level", "warning"]),
                                        env=server_env, cwd=server_home)}
    for name in ("host-a", "host-b"):
        home, env = machine(root, network.machines[name], url)
        procs[name] = subprocess.Popen(network.machines[name].argv([*NAS, "worker", "--name", name]), env=env,
                                       cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://{server.address}:{port}/api/v1"
    try:
        wait_until(lambda: _get(base, "/health", token, quiet=True), 180, "nas serve")
        yield base, token, procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def _get(base: str, path: str, token: str, *, quiet: bool = False, raw: bool = False,
         body: dict[str, Any] | None = None) -> Any:
    import json

    request = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            data = response.read()
            return (data, dict(response.headers)) if raw else json.loads(data)
    except OSError:
        if quiet:
            return None
        raise


def finished(base: str, token: str, job_id: int, timeout_s: float) -> dict[str, Any]:
    return wait_until(lambda: (j := _get(base, f"/jobs/{job_id}", token))["status"] not in ("queued", "running")
                      and j, timeout_s, f"job {job_id} to finish")


def check_front_models(base: str, token: str, job_id: int, engine: sa.Engine) -> int:
    """Every front member's model downloads from the server, matches its stored SHA-256 and runs in LiteRT."""
    import numpy as np

    from latency_models.litert import make_interpreter

    front = _get(base, f"/jobs/{job_id}/front", token)["items"]
    assert front
    for member in front:
        body, headers = _get(base, f"/jobs/{job_id}/candidates/{member['candidate_id']}/tflite", token, raw=True)
        with engine.connect() as conn:
            sha = conn.execute(sa.text("SELECT a.sha256 FROM nas_artifacts a JOIN nas_candidates c ON "
                                       "c.tflite_artifact = a.id WHERE c.id = :c"), {"c": member["candidate_id"]}
                               ).scalar_one()
        assert hashlib.sha256(body).hexdigest() == sha == headers["x-content-sha256"]
        interpreter = make_interpreter(body)
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], np.int8))
        interpreter.invoke()
    return len(front)


@pytest.fixture()
def network(postgres_url: str) -> Iterator[Network]:
    """The three machines, in their own network namespaces where the machine allows it; removed after the test,
    whatever its outcome."""
    url = sa.engine.make_url(postgres_url)
    with machines(("server", "host-a", "host-b"), (url.host or "127.0.0.1", url.port or 5432)) as net:
        if net.reason:
            warnings.warn(f"the three machines share the host's network: {net.reason}", stacklevel=1)
        yield net


def test_three_machines_share_models_through_the_database(tmp_path: Path, postgres_url: str,
                                                          network: Network) -> None:
    if network.reason is None:  # the database is out of reach but through each machine's veth pair
        url = sa.engine.make_url(postgres_url)
        for host in network.machines.values():
            assert host.reach(url.host or "127.0.0.1", url.port or 5432) is not None, host
            assert host.reach(*host.upstream) is None, host
    engine = sa.create_engine(postgres_url)
    with fleet(tmp_path, postgres_url, network) as (base, token, procs):
        job = _get(base, "/jobs", token, body=SPEC)
        done = finished(base, token, job["id"], 900)
        assert done["status"] == "completed" and done["trials_done"] == 3, done
        assert check_front_models(base, token, job["id"], engine) >= 1
        assert not list((tmp_path / "server").rglob("*.tflite"))  # the server's disk never held a model
        with engine.connect() as conn:
            workers = set(conn.execute(sa.text("SELECT DISTINCT worker FROM nas_trials WHERE job_id = :j"),
                                       {"j": job["id"]}).scalars())
        assert workers <= {"host-a", "host-b"} and workers

        # SIGKILL mid-upload: hold uploads at their first chunk, kill the worker waiting there, then let go.
        with engine.connect() as blocker:
            blocker.execute(sa.text("LOCK TABLE nas_artifact_chunks IN SHARE MODE"))
            second = _get(base, "/jobs", token, body={**SPEC, "seed": 5, "budget": {"trials": 2}})
            waiting = wait_until(lambda: _uploader_waiting(engine), 600, "a worker to start an upload")
            procs[waiting].send_signal(signal.SIGKILL)
            procs[waiting].wait(timeout=30)
            blocker.rollback()
        done = finished(base, token, second["id"], 900)
        assert done["status"] == "completed" and done["trials_done"] == 2, done
        with engine.connect() as conn:
            states = dict(conn.execute(sa.text("SELECT state, count(*) FROM nas_trials WHERE job_id = :j "
                                               "GROUP BY state"), {"j": second["id"]}).all())
            orphans = conn.execute(sa.text("SELECT count(*) FROM nas_artifact_chunks WHERE artifact_id NOT IN "
                                           "(SELECT id FROM nas_artifacts)")).scalar_one()
        assert states.get("stale", 0) >= 1 and orphans == 0, (states, orphans)
        check_front_models(base, token, second["id"], engine)
    engine.dispose()
    if network.reason is None:  # every machine's connections went over its veth pair
        assert all(network.forwarded[name] for name in network.machines), network.forwarded


def _uploader_waiting(engine: sa.Engine) -> str | None:
    """The application name (the machine) of a connection waiting to write artifact chunks, if any."""
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE c.relname = 'nas_artifact_chunks' AND NOT l.granted "
            "AND a.application_name IN ('host-a', 'host-b') LIMIT 1")).scalar()
