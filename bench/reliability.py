"""Faults, auth probes, bad input and load against real `nas serve` and `nas worker` processes, one figure per line.

Sections (`--sections`, all by default), each on SQLite and PostgreSQL where it names a database:
- faults: a job of `--trials` trials with 2 workers; one worker is SIGKILLed mid-trial, `nas serve` is
  restarted mid-job, and on PostgreSQL every connection to the job's database is cut
  (`pg_terminate_backend`, that database only) mid-trial. Then the trial rows of our tables and of
  Optuna's are counted: the job must end with exactly its budget, no duplicate, no lost trial.
- auth: every route of the OpenAPI schema with another user's token on the first user's ids (404,
  never data), with no token, with malformed headers; a revoked token's time until refused; the
  cost of 1,000 random tokens against 1,000 good ones.
- bad-input: 100 MB uploads with and without Content-Length, truncated and random `.tflite` files,
  nested and oversized JSON, 1 MB strings, huge numbers, unicode in every field, traversal and
  symlinks in dataset paths. Counts requests, 4xx, 5xx (must be 0) and crashes (must be 0).
- load: `--load-seconds` of concurrent GETs on a 10,000-trial job, 200 job submissions from 20
  threads, and the server's RSS before and after a `--soak-seconds` soak with 4 workers.

Loopback only; every loop is bounded in count and time. Usage:
    .venv/bin/python bench/reliability.py [--sections faults,auth,bad-input,load] [--backends sqlite,postgres]
                                         [--trials 40] [--load-seconds 30] [--soak-seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import optuna
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    free_port,
    healthy,
    nas_env,
    postgres_db,
    postgres_reachable,
    rss_mib,
    sqlite_db,
    start_serve,
    start_worker,
    stop,
    wait_until,
)
from synthetic_job import seed_job  # noqa: E402

from nas_service.db import Candidate, Job, Trial, make_engine, session_factory, upgrade_head  # noqa: E402
from nas_service.services import tokens  # noqa: E402

FINISHED = ("complete", "infeasible", "stopped")
"""Trial states that use a slot of the budget for good (failed ones are faults, stale ones are re-queued)."""


def emit(section: str, **fields: Any) -> None:
    print(json.dumps({"bench": "reliability", "section": section, **fields}), flush=True)


JSON_TYPE = {"Content-Type": "application/json"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def database(backend: str) -> Iterator[str]:
    with (postgres_db() if backend == "postgres" else sqlite_db()) as url:
        engine = make_engine(url)
        upgrade_head(engine)
        engine.dispose()
        yield url


def issue_token(url: str, user: str) -> str:
    engine = make_engine(url)
    with session_factory(engine)() as session:
        token = tokens.create_token(session, user).token
    engine.dispose()
    return token


# --- faults -------------------------------------------------------------------------------------------------------

def fault_spec(trials: int) -> dict[str, Any]:
    return {"name": "reliability", "seed": 7, "budget": {"trials": trials},
            "training": {"scorer": "estimate", "simulate_seconds": 1.0, "epochs": 2, "early_stopping": False}}


CUTS = 12


def cut_connections(url: str) -> int:
    """Terminate every other session on the job's database (never another database); how many were cut."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        cut = conn.scalars(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE datname = current_database() AND pid <> pg_backend_pid()")).all()
    engine.dispose()
    return sum(bool(x) for x in cut)


def faults(backend: str, trials: int) -> None:
    with database(backend) as url, tempfile.TemporaryDirectory(prefix="nas-faults-") as tmp:
        env = nas_env(url, Path(tmp) / "artifacts")
        token = issue_token(url, "bench")
        engine = make_engine(url)
        sessions = session_factory(engine)
        port = free_port()
        serve = start_serve(env, port)
        workers: list[subprocess.Popen[bytes]] = []
        started = time.monotonic()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", headers=bearer(token), timeout=30) as api:
                answer = api.post("/jobs", json=fault_spec(trials))
                answer.raise_for_status()
                job_id = int(answer.json()["id"])

            def rows() -> list[Trial]:
                with sessions() as session:
                    return list(session.scalars(sa.select(Trial).where(Trial.job_id == job_id)))

            def done() -> int:
                return sum(r.state in FINISHED for r in rows())

            def running_on(worker: str) -> list[int]:
                return [r.number for r in rows() if r.state == "running" and r.worker == worker]

            workers = [start_worker(env, "worker-a"), start_worker(env, "worker-b")]
            wait_until(lambda: done() >= 3 and bool(running_on("worker-a")), 120, "worker-a mid-trial")
            killed = running_on("worker-a")[0]
            workers[0].send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            workers[0].wait(timeout=10)
            workers.append(start_worker(env, "worker-c"))
            wait_until(lambda: any(r.retry_of == killed for r in rows()), 120, f"trial {killed} re-queued")
            emit("faults", backend=backend, fault="SIGKILL worker mid-trial", trial=killed,
                 requeued_after_s=round(time.monotonic() - killed_at, 2),
                 heartbeat_grace_s=int(env["NAS_HEARTBEAT_GRACE_S"]))

            wait_until(lambda: done() >= trials // 3, 300, "a third of the trials")
            down_at = time.monotonic()
            stop(serve)
            serve = start_serve(env, port)
            emit("faults", backend=backend, fault="restart nas serve mid-job", done_at_restart=done(),
                 api_down_s=round(time.monotonic() - down_at, 2))

            if backend == "postgres":
                wait_until(lambda: done() >= trials // 2 and any(r.state == "running" for r in rows()), 300,
                           "half the trials, one running")
                done_at_cut = done()
                cut = 0
                for _ in range(CUTS):
                    cut += cut_connections(url)
                    time.sleep(0.25)
                emit("faults", backend=backend, fault=f"pg_terminate_backend mid-trial, {CUTS} times 0.25 s apart",
                     done_at_cut=done_at_cut, connections_cut=cut)

            def ended() -> bool:
                with sessions() as session:
                    job = session.get(Job, job_id)
                    return job is not None and job.status in ("completed", "failed", "cancelled")

            wait_until(ended, 600, f"job {job_id} to end")
            emit("faults", backend=backend, **audit(url, sessions, job_id, trials),
                 job_seconds=round(time.monotonic() - started, 1), serve_alive=healthy(port))
        finally:
            for proc in workers:
                stop(proc)
            stop(serve)
            engine.dispose()


def audit(url: str, sessions: Callable[[], Any], job_id: int, budget: int) -> dict[str, Any]:
    """Trial rows in our tables against Optuna's: what was finished, duplicated, lost or left running."""
    with sessions() as session:
        job = session.get(Job, job_id)
        ours = list(session.scalars(sa.select(Trial).where(Trial.job_id == job_id)))
        status, trials_done, study_name = job.status, job.trials_done, job.study_name
    numbers = Counter(r.number for r in ours)
    study = optuna.load_study(study_name=study_name, storage=url)
    theirs = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    by_number = {r.number: r.state for r in ours}
    complete = optuna.trial.TrialState.COMPLETE
    lost = sorted({n for n, s in theirs.items() if s == complete and by_number.get(n) not in FINISHED}
                  | {n for n, s in by_number.items() if s in FINISHED and theirs.get(n) != complete})
    finished = sum(s in FINISHED for s in by_number.values())
    states = Counter(by_number.values())
    return {"status": status, "budget": budget, "finished": finished, "trials_done": trials_done,
            "exact_budget": finished == budget and trials_done == budget, "states": dict(states),
            "duplicates": sum(c - 1 for c in numbers.values()), "lost": lost,
            "left_running": states.get("running", 0) + sum(s == optuna.trial.TrialState.RUNNING
                                                          for s in theirs.values()),
            "optuna_trials": len(theirs)}


# --- auth ---------------------------------------------------------------------------------------------------------

MALFORMED_HEADERS = ["Bearer", "Bearer ", "Basic YWxpY2U6eA==", "Token abc", "Bearer nas_" + "x" * 8000,
                     "Bearer \u00e9\u00e8", "Bearer a b c", "bearer nas_short", "Bearer nas_" + "\x7f" * 3]


def required_query(operation: dict[str, Any]) -> dict[str, str]:
    """A plausible value for each required query parameter, so a route answers past its validation."""
    return {p["name"]: "5" for p in operation.get("parameters", []) if p["in"] == "query" and p.get("required")}


def filled(path: str, ids: dict[str, int]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", str(value))
    return path


def auth() -> None:
    with database("sqlite") as url, tempfile.TemporaryDirectory(prefix="nas-auth-") as tmp:
        engine = make_engine(url)
        with session_factory(engine)() as session:
            job_id = seed_job(session, "alice", 50)
            candidate_id = session.scalar(sa.select(Candidate.id).where(Candidate.job_id == job_id))
        engine.dispose()
        alice, bob = issue_token(url, "alice"), issue_token(url, "bob")
        port = free_port()
        serve = start_serve(nas_env(url, Path(tmp) / "artifacts"), port)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                probe_routes(http, alice, bob, {"job_id": job_id, "candidate_id": int(candidate_id or 0)})
                revocation(http, url, alice)
                token_cost(http, bob)
        finally:
            stop(serve)


def probe_routes(http: httpx.Client, alice: str, bob: str, ids: dict[str, int]) -> None:
    """Every route of the schema: bob on alice's ids, no token, malformed headers."""
    schema = http.get("/api/v1/openapi.json").json()
    calls = leaks = unauthenticated_ok = 0
    statuses: Counter[int] = Counter()
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            public = path.endswith("/health")
            url = filled(path, ids)
            body: dict[str, Any] = {"params": required_query(operation)}
            if path.endswith("/latency/predict"):
                body["json"] = {"arch": "mobilenet_v2"}
            as_bob = http.request(method.upper(), url, headers=bearer(bob), **body)
            calls += 1
            statuses[as_bob.status_code] += 1
            if "{job_id}" in path and as_bob.status_code != 404:
                leaks += 1
                emit("auth", leak=f"{method.upper()} {path}", status=as_bob.status_code)
            if path.endswith("/jobs") and method == "get" and any(j["id"] == ids["job_id"]
                                                                   for j in as_bob.json()["items"]):
                leaks += 1
            for header in [None, *MALFORMED_HEADERS]:
                headers = {} if header is None else {"Authorization": header.encode()}
                try:
                    answer = http.request(method.upper(), url, headers=headers, **body)
                except httpx.LocalProtocolError:  # the client itself refuses to send some headers
                    continue
                calls += 1
                statuses[answer.status_code] += 1
                if not public and answer.status_code not in (400, 401):  # 400: the HTTP parser refused the header
                    unauthenticated_ok += 1
                    emit("auth", not_refused=f"{method.upper()} {path}", header=(header or "none")[:40],
                         status=answer.status_code)
    emit("auth", probe="every route: other user's ids, no token, malformed headers",
         routes=sum(len(m) for m in schema["paths"].values()), requests=calls, leaks=leaks,
         unauthenticated_answers=unauthenticated_ok, server_errors=sum(n for s, n in statuses.items() if s >= 500),
         statuses=dict(sorted(statuses.items())))


def revocation(http: httpx.Client, url: str, token: str) -> None:
    """A token in use (cached by the server) is revoked in the database; how long until it is refused."""
    assert http.get("/api/v1/me", headers=bearer(token)).status_code == 200
    engine = make_engine(url)
    with session_factory(engine)() as session:
        tokens.revoke_tokens(session, "alice")
    engine.dispose()
    revoked_at = time.monotonic()
    refused = wait_until(lambda: http.get("/api/v1/me", headers=bearer(token)).status_code == 401, 60,
                         "revoked token refused")
    emit("auth", probe="revoked token", refused_after_s=round(refused, 2),
         bound_s=10.0, within_bound=time.monotonic() - revoked_at <= 10.5)


def token_cost(http: httpx.Client, good: str, n: int = 1000) -> None:
    """Mean cost of `n` requests with random well-formed tokens, random garbage, and one good token."""
    kinds = {
        "good": lambda: good,
        "random well-formed": lambda: tokens.TOKEN_PREFIX + secrets.token_urlsafe(32),
        "random garbage": lambda: secrets.token_hex(secrets.randbelow(200) + 1),
    }
    costs: dict[str, float] = {}
    for kind, make in kinds.items():
        start = time.perf_counter()
        codes = Counter(http.get("/api/v1/me", headers=bearer(make())).status_code for _ in range(n))
        costs[kind] = (time.perf_counter() - start) / n * 1000
        emit("auth", probe="token cost", kind=kind, requests=n, mean_ms=round(costs[kind], 3),
             statuses=dict(codes))
    emit("auth", probe="token cost ratio", random_to_good=round(costs["random well-formed"] / costs["good"], 2),
         garbage_to_good=round(costs["random garbage"] / costs["good"], 2))


# --- bad input ----------------------------------------------------------------------------------------------------

def raw_upload(port: int, token: str, size: int, *, chunked: bool, timeout_s: float = 30) -> tuple[int, int]:
    """POST `size` bytes to predict-tflite over a raw socket, as fast as the server reads them, until it answers;
    (status, bytes sent before the answer). Status 0: no answer within `timeout_s`."""
    boundary = "nasbench"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.tflite\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    length = "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {size + len(head)}\r\n"
    request = (f"POST /api/v1/latency/predict-tflite HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\n{length}\r\n").encode()
    chunk = b"\0" * 2**16
    sent = 0
    deadline = time.monotonic() + timeout_s
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(request)
        sock.settimeout(2)
        piece = head
        while sent < size and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            if readable:
                break
            if not writable:
                continue
            try:
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
            except (TimeoutError, BrokenPipeError, ConnectionResetError):
                break  # the server stopped reading: its answer follows
            sent += len(piece)
            piece = chunk
        if chunked and sent >= size:
            sock.sendall(b"0\r\n\r\n")
        sock.settimeout(max(deadline - time.monotonic(), 1))
        answer = b""
        try:
            while b"\r\n" not in answer:
                more = sock.recv(4096)
                if not more:
                    break
                answer += more
        except (TimeoutError, ConnectionResetError):
            pass
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, sent


def tiny_tflite() -> bytes:
    import numpy as np

    from nas_service.trainer.tflite_export import convert_int8
    from search_spaces import decode
    from search_spaces.keras_builder import build_keras

    model = build_keras(decode("r32_n10/cn_k3_s2_c16_relu/er_k3_s1_e4_c16_relu/head_c64_relu"))
    return convert_int8(model, np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32), num_samples=8)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def bad_bodies() -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(case, method, path, httpx keyword arguments) of hostile requests to the JSON routes."""
    huge = ["1e400", "-1e400", "1" + "0" * 5000, "NaN", "Infinity", "-0", str(2**64), "1e-400"]
    for depth in (1_000, 100_000, 400_000):
        yield f"nested json depth {depth}", "POST", "/jobs", {"content": nested(depth)}
        yield f"nested json depth {depth} in a field", "POST", "/jobs", {
            "content": '{"name": ' + nested(depth) + "}"}
    yield "oversized json 5 MB", "POST", "/jobs", {"content": '{"name": "' + "x" * 5_000_000 + '"}'}
    yield "1 MB arch string", "POST", "/latency/predict", {"json": {"arch": "ir_k3_s1_e6_c16-" * 62_500}}
    yield "1 MB job name", "POST", "/jobs", {"json": {"name": "n" * 1_000_000}}
    yield "1 MB initial arch", "POST", "/jobs", {"json": {"initial": ["x" * 1_000_000]}}
    for number in huge:
        for field in ("budget.trials", "budget.wall_seconds", "training.epochs", "resolution", "seed",
                      "constraints.max_latency_ms", "training.simulate_seconds", "training.train_images"):
            outer, _, inner = field.partition(".")
            body = ('{"' + outer + '": {"' + inner + '": ' + number + "}}") if inner else (
                '{"' + outer + '": ' + number + "}")
            yield f"huge number {number[:12]} in {field}", "POST", "/jobs", {"content": body}
        yield f"huge number {number[:12]} in latency", "POST", "/latency/predict", {
            "content": '{"arch": "mobilenet_v2", "device": ' + number + "}"}
    weird = ["\u202e\U0001f600\u0000", "\ud800", "名前", "e\u0301", "\uffff" * 50, "%00", "\n\r\t", "🙂" * 300]
    for text in weird:
        for field in ("name", "space", "dataset", "device", "sampler", "initial", "objectives", "mode"):
            value: Any = [text] if field in ("initial", "objectives") else text
            yield f"unicode {text[:4]!r} in {field}", "POST", "/jobs", {"json": {field: value}}
        yield f"unicode {text[:4]!r} in arch", "POST", "/latency/predict", {"json": {"arch": text}}
        yield f"unicode {text[:4]!r} in device", "POST", "/latency/predict", {
            "json": {"arch": "mobilenet_v2", "device": text}}
        yield f"unicode {text[:4]!r} in training.scorer", "POST", "/jobs", {"json": {"training": {"scorer": text}}}
    for path in ("../../etc/passwd", "/etc", "link", "link/x.npz", "data.npz/../../x", "..", "./../data",
                 "%2e%2e/%2e%2e/etc", "a\u0000b", "C:\\Windows", "~root/x.npz", "folder/../../outside.npz",
                 "escape.npz", "file:///etc/passwd", "keras:../../x", "tfds:../x"):
        yield f"dataset path {path!r}", "POST", "/jobs", {"json": {"dataset": path}}
    for path in ("/jobs/99999999999999999999", "/jobs/-1", "/jobs/abc", "/jobs/1e3", "/jobs/1/candidates/-5",
                 "/jobs/1/trials?limit=-1", "/jobs/1/trials?limit=1000000000", "/jobs/1/trials?offset=-1",
                 "/jobs/1/trials?offset=99999999999999999999", "/jobs/1/trials?sort=__class__",
                 "/jobs/1/trials?order=sideways", "/jobs?status=%00", "/jobs/1/front?limit=0",
                 "/jobs/%2e%2e/front", "/jobs/1/candidates/1/tflite", "/jobs/1/front.zip"):
        yield f"GET {path[:40]}", "GET", path, {}
    yield "wrong content type", "POST", "/jobs", {"content": "budget=3", "headers": {"Content-Type": "text/plain"}}
    yield "json array body", "POST", "/jobs", {"json": [1, 2, 3]}
    yield "json string body", "POST", "/jobs", {"json": "hello"}
    yield "empty body", "POST", "/jobs", {"content": b""}
    yield "invalid utf-8", "POST", "/jobs", {"content": b'{"name": "\xff\xfe"}'}
    yield "unknown field", "POST", "/jobs", {"json": {"nope": 1}}
    yield "schema_version 99", "POST", "/jobs", {"json": {"schema_version": 99}}


def bad_uploads(tflite: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
    rng = secrets.token_bytes
    yield "truncated .tflite (half)", {"files": {"file": ("t.tflite", tflite[: len(tflite) // 2])}}
    yield "truncated .tflite (header only)", {"files": {"file": ("t.tflite", tflite[:64])}}
    yield "valid .tflite, one byte flipped in the middle", {"files": {"file": ("t.tflite", flip(tflite))}}
    yield "random bytes 1 KB", {"files": {"file": ("r.tflite", rng(1024))}}
    yield "random bytes 1 MB", {"files": {"file": ("r.tflite", rng(2**20))}}
    yield "empty file", {"files": {"file": ("e.tflite", b"")}}
    yield "no file field", {"data": {"device": "edgetpu_usb"}}
    yield "unknown device", {"files": {"file": ("t.tflite", tflite)}, "data": {"device": "../../etc"}}
    yield "unicode file name", {"files": {"file": ("\u202e\U0001f600.tflite", tflite)}}
    yield "tflite as text field", {"data": {"file": "not a file"}}


def flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


def bad_input(backend: str) -> None:
    with database(backend) as url, tempfile.TemporaryDirectory(prefix="nas-bad-") as tmp:
        data_dir = Path(tmp) / "data"
        (data_dir / "folder").mkdir(parents=True)
        (data_dir / "link").symlink_to("/etc")
        (data_dir / "escape.npz").symlink_to("/etc/hostname")
        (Path(tmp) / "outside.npz").write_bytes(b"secret")
        env = nas_env(url, Path(tmp) / "artifacts", data_dir=str(data_dir))
        token = issue_token(url, "bench")
        tflite = tiny_tflite()
        port = free_port()
        serve = start_serve(env, port)
        statuses: Counter[int] = Counter()
        accepted: list[str] = []
        crashes = 0
        try:
            before = rss_mib(serve.pid)
            for chunked in (False, True):
                start = time.monotonic()
                status, sent = raw_upload(port, token, 100 * 2**20, chunked=chunked)
                statuses[status] += 1
                how = "chunked" if chunked else "with Content-Length"
                emit("bad-input", backend=backend, case=f"100 MB upload, {how}",
                     status=status, mib_sent_before_answer=round(sent / 2**20, 1),
                     seconds=round(time.monotonic() - start, 2), rss_mib_before=before,
                     rss_mib_after=rss_mib(serve.pid))
            with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", headers=bearer(token), timeout=60) as api:
                cases: list[tuple[str, str, str, dict[str, Any]]] = list(bad_bodies())
                cases += [(case, "POST", "/latency/predict-tflite", kw) for case, kw in bad_uploads(tflite)]
                for case, method, path, kwargs in cases:
                    if "json" in kwargs:  # encoded here, so lone surrogates go out as JSON escapes
                        kwargs = {"content": json.dumps(kwargs["json"]), "headers": JSON_TYPE}
                    try:
                        answer = api.request(method, path, **kwargs)
                        status = answer.status_code
                    except httpx.HTTPError as exc:
                        status = 0
                        emit("bad-input", backend=backend, case=case, transport_error=type(exc).__name__)
                    statuses[status] += 1
                    if 200 <= status < 300:
                        accepted.append(case)
                    if status >= 500 or status == 0:
                        emit("bad-input", backend=backend, case=case, status=status,
                             detail=answer.text[:200] if status else "")
                    if serve.poll() is not None or not healthy(port):
                        crashes += 1
                        emit("bad-input", backend=backend, case=case, crash=True)
                        stop(serve)
                        serve = start_serve(env, port)
            emit("bad-input", backend=backend, requests=sum(statuses.values()),
                 client_errors=sum(n for s, n in statuses.items() if 400 <= s < 500),
                 server_errors=sum(n for s, n in statuses.items() if s >= 500), no_answer=statuses.get(0, 0),
                 accepted=sum(n for s, n in statuses.items() if 200 <= s < 300), crashes=crashes,
                 statuses=dict(sorted(statuses.items())), accepted_cases=accepted, rss_mib_before=before,
                 rss_mib_after=rss_mib(serve.pid))
        finally:
            stop(serve)


# --- load ---------------------------------------------------------------------------------------------------------

async def _reader(port: int, paths: list[str], token: str, until: float, latencies: list[float],
                  errors: Counter[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    try:
        while time.monotonic() < until:
            path = paths[i % len(paths)]
            i += 1
            request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                       "Accept-Encoding: identity\r\n\r\n").encode()
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                errors[str(status)] += 1
    except (OSError, asyncio.IncompleteReadError) as exc:
        errors[type(exc).__name__] += 1
    finally:
        writer.close()


async def _read_load(port: int, paths: list[str], token: str, seconds: float, concurrency: int
                     ) -> tuple[list[float], Counter[str]]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    until = time.monotonic() + seconds
    await asyncio.gather(*(_reader(port, paths[i:] + paths[:i], token, until, latencies, errors)
                           for i in range(concurrency)))
    return latencies, errors


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in seconds)
    return {"p50_ms": round(statistics.median(ms), 2), "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 2)}


def load(backend: str, seconds: float, soak_seconds: float) -> None:
    with database(backend) as url, tempfile.TemporaryDirectory(prefix="nas-load-") as tmp:
        engine = make_engine(url)
        with session_factory(engine)() as session:
            job_id = seed_job(session, "bench", 10_000)
            candidates = list(session.scalars(sa.select(Candidate.id).where(Candidate.job_id == job_id).limit(50)))
        token = issue_token(url, "bench")
        env = nas_env(url, Path(tmp) / "artifacts")
        port = free_port()
        serve = start_serve(env, port)
        try:
            base = f"/api/v1/jobs/{job_id}"
            paths = [base, f"{base}/front", f"{base}/points", "/api/v1/jobs?limit=20"]
            paths += [f"{base}/trials?limit=100&sort=accuracy&order=desc&offset={100 * i}" for i in range(10)]
            paths += [f"{base}/candidates/{c}" for c in candidates[:10]]
            latencies, errors = asyncio.run(_read_load(port, paths, token, seconds, 50))
            emit("load", backend=backend, probe=f"{seconds:g} s of GETs on a 10,000-trial job", concurrency=50,
                 requests=len(latencies), rps=round(len(latencies) / seconds, 1), **percentiles(latencies),
                 errors=dict(errors))
            submissions(port, token, url)
        finally:
            stop(serve)
            engine.dispose()
    if backend == "sqlite":
        soak(soak_seconds)


def submissions(port: int, token: str, url: str, n: int = 200, threads: int = 20) -> None:
    """`n` job submissions from `threads` threads at once: every one answered 201 with its own id, and stored."""
    barrier = threading.Barrier(threads)

    def submit(k: int) -> list[tuple[int, int | None]]:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", headers=bearer(token), timeout=60) as api:
            barrier.wait(timeout=60)
            out = []
            for i in range(k, n, threads):
                answer = api.post("/jobs", json={"name": f"burst-{i}", "training": {"scorer": "estimate"}})
                out.append((answer.status_code, answer.json().get("id") if answer.status_code == 201 else None))
            return out

    start = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        answers = [a for part in pool.map(submit, range(threads)) for a in part]
    elapsed = time.monotonic() - start
    ids = [i for _, i in answers if i is not None]
    engine = make_engine(url)
    with engine.connect() as conn:
        stored = conn.scalar(sa.select(sa.func.count()).select_from(Job).where(Job.name.like("burst-%")))
    engine.dispose()
    emit("load", probe=f"{n} job submissions from {threads} threads", created=sum(s == 201 for s, _ in answers),
         distinct_ids=len(set(ids)), stored=stored, statuses=dict(Counter(s for s, _ in answers)),
         seconds=round(elapsed, 2))


def soak(seconds: float) -> None:
    """`nas serve --workers 4` on SQLite (workers are threads of the server) running jobs back to back while
    a client reads them; the server's RSS after warm-up and at the end."""
    with database("sqlite") as url, tempfile.TemporaryDirectory(prefix="nas-soak-") as tmp:
        token = issue_token(url, "bench")
        port = free_port()
        serve = start_serve(nas_env(url, Path(tmp) / "artifacts"), port, workers=4)
        spec = {"training": {"scorer": "estimate", "simulate_seconds": 0.2, "epochs": 2}, "budget": {"trials": 25}}
        finished = requests = 0
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", headers=bearer(token), timeout=60) as api:
                def cycle(until: float) -> None:
                    nonlocal finished, requests
                    while time.monotonic() < until:
                        queued = api.get("/jobs", params={"status": "queued"}).json()["total"]
                        if queued < 4:
                            api.post("/jobs", json=spec).raise_for_status()
                        for job in api.get("/jobs", params={"limit": 4}).json()["items"]:
                            api.get(f"/jobs/{job['id']}/front")
                            api.get(f"/jobs/{job['id']}/trials", params={"limit": 50})
                        requests += 6
                        time.sleep(0.2)

                cycle(time.monotonic() + min(20.0, seconds / 4))
                before = rss_mib(serve.pid)
                cycle(time.monotonic() + seconds)
                after = rss_mib(serve.pid)
                finished = api.get("/jobs", params={"status": "completed"}).json()["total"]
            emit("load", probe=f"soak {seconds:g} s, nas serve --workers 4 on SQLite", rss_mib_after_warmup=before,
                 rss_mib_end=after, growth_mib=round(after - before, 1), jobs_completed=finished, requests=requests,
                 serve_alive=serve.poll() is None)
        finally:
            stop(serve)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default="faults,auth,bad-input,load")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--load-seconds", type=float, default=30)
    parser.add_argument("--soak-seconds", type=float, default=60)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sections = args.sections.split(",")
    backends = [b for b in args.backends.split(",") if b != "postgres" or postgres_reachable()]
    if "postgres" in args.backends and "postgres" not in backends:
        emit("setup", skipped="postgres unreachable")
    if "faults" in sections:
        for backend in backends:
            faults(backend, args.trials)
    if "auth" in sections:
        auth()
    if "bad-input" in sections:
        for backend in backends:
            bad_input(backend)
    if "load" in sections:
        for backend in backends:
            load(backend, args.load_seconds, args.soak_seconds)


if __name__ == "__main__":
    main()
