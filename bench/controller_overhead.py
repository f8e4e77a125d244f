"""Controller-plus-storage overhead per trial, and trial throughput of 1, 2, 4 and 8 workers on PostgreSQL.

Overhead: one in-process worker runs a job whose scorer is the cheap accuracy estimator (a no-op
trainer: about a millisecond of arithmetic), so the time between consecutive finished trials is what
the controller, the latency model and both databases' bookkeeping cost. Baseline, measured in the
same run: bare Optuna (its own RDB storage, without our `BatchedStorage`) on the same kind of
database, suggesting the same space's parameters with NSGA-II and an objective that returns
constants: what a plain Optuna ask/tell loop pays before it does any work. Run it several times
and quote the medians: on 2 shared cores single runs vary by 10-20 %.

Throughput: N `nas worker` processes share one job on PostgreSQL; each trial pretends to train for
`--trial-seconds` (the estimator's `simulate_seconds`), so the figure shows how well the workers
share a job rather than how fast two cores compute. Baseline: one worker.

Prints one JSON object per line. Usage:
    .venv/bin/python bench/controller_overhead.py [--trials 60] [--postgres URL] [--skip-throughput]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import sqlalchemy as sa

from nas_service.config import Settings
from nas_service.controller.study import make_storage, quiet_optuna
from nas_service.db import make_engine, session_factory, upgrade_head
from nas_service.services import jobs
from nas_service.spec import parse_spec
from nas_service.worker import Worker
from search_spaces import load_space

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import postgres_db  # noqa: E402

DEFAULT_POSTGRES = os.environ.get("NAS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def controller_overhead(url: str, trials: int, artifacts: Path) -> list[float]:
    """Seconds between consecutive finished trials of an estimator job run by one in-process worker."""
    stamps: list[float] = []
    worker = Worker(Settings(database_url=url, artifacts_dir=artifacts), name="local",
                    on_trial=lambda _: stamps.append(time.perf_counter()))
    with worker.sessions() as session:
        job = jobs.create_job(session, parse_spec({"training": {"scorer": "estimate"}, "budget": {"trials": trials},
                                                   "constraints": {"max_latency_ms": 1.0}}))
    stamps.append(time.perf_counter())
    worker.run(job_id=job.id, exit_when_idle=True)
    worker.close()
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)][1:]  # the first includes warm-up


def bare_optuna(url: str, trials: int) -> list[float]:
    """Seconds per trial of plain Optuna NSGA-II on the same storage, sampling the same space, no scoring."""
    space = load_space("edgetpu")
    study = optuna.create_study(storage=make_storage(url, heartbeat_interval_s=10, grace_s=30),
                                directions=["maximize", "minimize"],
                                sampler=optuna.samplers.NSGAIISampler(seed=0, population_size=12))
    stamps = [time.perf_counter()]

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        space.sample(trial, num_classes=10, resolution=32)
        return 0.5, 1.0

    study.optimize(objective, n_trials=trials, callbacks=[lambda s, t: stamps.append(time.perf_counter())])
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)][1:]


def report(kind: str, backend: str, samples: list[float], **extra: object) -> dict[str, object]:
    return {"bench": "controller_overhead", "kind": kind, "backend": backend, "trials": len(samples) + 1,
            "median_ms": round(statistics.median(samples) * 1e3, 2), "p90_ms": round(percentile(samples, 0.9) * 1e3, 2),
            **extra}


def throughput(url: str, workers: int, trials: int, trial_seconds: float, artifacts: Path) -> float:
    engine = make_engine(url)
    upgrade_head(engine)
    with session_factory(engine)() as session:
        job = jobs.create_job(session, parse_spec({"training": {"scorer": "estimate", "epochs": 1,
                                                                "simulate_seconds": trial_seconds},
                                                   "budget": {"trials": trials}}))
    env = {**os.environ, "NAS_DATABASE_URL": url, "NAS_POLL_INTERVAL_S": "0.2", "NAS_ARTIFACTS_DIR": str(artifacts)}
    command = [sys.executable, "-c", "from nas_service.cli import main; main()", "worker", "--exit-when-idle",
               "--job", str(job.id)]
    procs = [subprocess.Popen([*command, "--name", f"bench{i}"], env=env, stderr=subprocess.DEVNULL)
             for i in range(workers)]
    for proc in procs:
        proc.wait()
    with session_factory(engine)() as session:
        first, last = session.execute(sa.text(
            "SELECT min(started_at), max(finished_at) FROM nas_trials WHERE job_id = :j"), {"j": job.id}).one()
        done = jobs.get_job(session, job.id).trials_done
    engine.dispose()
    return float(done / (last - first).total_seconds())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="admin URL; a scratch database is created")
    parser.add_argument("--throughput-trials", type=int, default=32)
    parser.add_argument("--trial-seconds", type=float, default=0.5)
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    quiet_optuna()
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = Path(tmp) / "artifacts"
        backends = [("sqlite", f"sqlite:///{tmp}/overhead.db", f"sqlite:///{tmp}/bare.db")]
        with postgres_db(args.postgres) as pg_url, postgres_db(args.postgres) as pg_bare:
            backends.append(("postgresql", pg_url, pg_bare))
            for backend, url, bare_url in backends:
                ours = controller_overhead(url, args.trials, artifacts)
                base = bare_optuna(bare_url, args.trials)
                print(json.dumps(report("controller+storage per trial (no-op trainer)", backend, ours,
                                        target_median_ms=50,
                                        baseline=report("bare Optuna NSGA-II, same storage", backend, base))),
                      flush=True)
        if args.skip_throughput:
            return
        rates: dict[int, float] = {}
        for n in (1, 2, 4, 8):
            with postgres_db(args.postgres) as url:
                rates[n] = throughput(url, n, args.throughput_trials, args.trial_seconds, artifacts)
            print(json.dumps({"bench": "worker_throughput", "backend": "postgresql", "workers": n,
                              "trial_seconds": args.trial_seconds, "trials": args.throughput_trials,
                              "trials_per_s": round(rates[n], 2), "speedup_vs_1": round(rates[n] / rates[1], 2),
                              "ideal_trials_per_s": round(n / args.trial_seconds, 2)}), flush=True)


if __name__ == "__main__":
    main()
