"""Trials per hour of the default job with K candidates in flight per worker: slots refilled as each trial ends,
against one at a time (sequential) and K slots started in waves that wait for their slowest member.

Each mode runs the default job (`examples/fashion_edgetpu.yaml`: real training, int8 export) with the same
seed, `--trials` trials and no wall-clock limit, on a fresh SQLite database, in this process; the
sampler is random by default (`--sampler job` keeps the job's TPE): its proposals do not depend on which
trials have finished, so the modes train (nearly: asks made at the same moment interleave their draws)
the same architectures and the figures compare scheduling, where TPE would send each mode down a
different path through the space; the
`processes` mode instead runs K one-slot `nas worker` processes sharing the job, for comparison. Printed as
JSON lines: per mode the trials, seconds, trials per hour (all trials, and trained ones) and the CPU used
(CPU seconds per wall second over the cores: how busy the machine was), then the speed-up of each mode
over sequential and, for architectures trained to the end both sequentially and otherwise, how far their
accuracies differ (points: median, max and each gap; an early-stopped trial's accuracy is that of a partial
training and is left out). A slot trains on its share of the cores, so its sums run in another order than
one slot's: set `TF_NUM_INTRAOP_THREADS` to the core count to compare at the same thread count.
`--device gpu` trains on a GPU when TensorFlow sees one (`auto`: when present).

    .venv/bin/python bench/continuous_batching.py [--trials 40] [--slots 2] [--sampler random|job]
        [--modes sequential,refill,waves,processes]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JOB = ROOT / "examples" / "fashion_edgetpu.yaml"


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": "continuous_batching", **fields}), flush=True)


def run_mode(mode: str, slots: int, trials: int, sampler: str) -> dict[str, Any]:
    from nas_service.config import Settings
    from nas_service.db import Candidate, Trial
    from nas_service.services import jobs
    from nas_service.spec import load_spec_file
    from nas_service.worker import Worker

    base = load_spec_file(DEFAULT_JOB)
    spec = base.model_copy(update={
        "sampler": base.sampler if sampler == "job" else sampler,
        "budget": base.budget.model_copy(update={"trials": trials, "wall_seconds": None}),
        "training": base.training.model_copy(update={"concurrency": 1 if mode == "sequential" else slots})})
    if mode == "processes":
        spec = spec.model_copy(update={"training": spec.training.model_copy(update={"concurrency": 1})})
    with tempfile.TemporaryDirectory(prefix=f"nas-batching-{mode}-") as tmp:
        url = f"sqlite:///{tmp}/nas.db"
        worker = Worker(Settings(database_url=url, artifacts_dir=Path(tmp) / "artifacts"),
                        name="local", refill=mode != "waves")
        with worker.sessions() as session:
            job_id = jobs.create_job(session, spec).id
        start, cpu = time.perf_counter(), _cpu_seconds()
        if mode == "processes":
            _run_processes(url, Path(tmp) / "artifacts", job_id, slots)
        else:
            worker.run(job_id=job_id, exit_when_idle=True)
        seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        with worker.sessions() as session:
            rows = session.execute(sa.select(Trial.state, Candidate.arch, Candidate.accuracy)
                                   .join(Candidate, Candidate.id == Trial.candidate_id, isouter=True)
                                   .where(Trial.job_id == job_id)).all()
        worker.close()
    states = [state for state, _, _ in rows]
    trained = {arch: accuracy for state, arch, accuracy in rows if state in ("complete", "stopped")}
    complete = {arch: accuracy for state, arch, accuracy in rows if state == "complete"}
    result = {"mode": mode, "slots": 1 if mode == "sequential" else slots, "trials": len(rows),
              "trained": sum(s in ("complete", "stopped") for s in states), "states": dict(
                  (s, states.count(s)) for s in sorted(set(states))),
              "seconds": round(seconds, 1), "trials_per_hour": round(3600 * len(rows) / seconds, 1),
              "trained_per_hour": round(3600 * len(trained) / seconds, 1),
              "cpu_busy": round(cpu / seconds / (os.cpu_count() or 1), 2),
              "load_average_1m": round(os.getloadavg()[0], 2)}
    emit(**result)
    return {**result, "accuracies": complete}


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _run_processes(url: str, artifacts: Path, job_id: int, count: int) -> None:
    """`count` one-slot `nas worker` processes on the job until it is done."""
    env = {**os.environ, "NAS_DATABASE_URL": url, "NAS_ARTIFACTS_DIR": str(artifacts)}
    command = [sys.executable, "-c", "from nas_service.cli import main; main()", "worker", "--job", str(job_id),
               "--exit-when-idle"]
    procs = [subprocess.Popen([*command, "--name", f"p{i}"], env=env, stdout=subprocess.DEVNULL)
             for i in range(count)]
    for proc in procs:
        if proc.wait() != 0:
            raise RuntimeError(f"worker process exited with {proc.returncode}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--sampler", choices=("random", "job"), default="random")
    parser.add_argument("--modes", default="sequential,refill,waves")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if args.device == "gpu" and not gpus:
        emit(device="gpu", skipped="no GPU visible to TensorFlow on this machine")
        sys.exit(0)
    if args.device == "cpu" or not gpus:
        tf.config.set_visible_devices([], "GPU")
    emit(device="gpu" if gpus and args.device != "cpu" else "cpu", gpus=len(gpus), cores=os.cpu_count(),
         trials=args.trials, slots=args.slots, sampler=args.sampler)
    results = {mode: run_mode(mode, args.slots, args.trials, args.sampler) for mode in args.modes.split(",")}
    sequential = results.get("sequential")
    if sequential is None:
        return
    for mode, result in results.items():
        if mode == "sequential":
            continue
        common = sorted(set(sequential["accuracies"]) & set(result["accuracies"]))
        gaps = [abs(sequential["accuracies"][a] - result["accuracies"][a]) * 100 for a in common]
        emit(mode=mode, speedup_vs_sequential=round(sequential["seconds"] / result["seconds"] * result["trials"]
                                                    / max(sequential["trials"], 1), 2),
             same_architectures=len(common), accuracy_gap_points_median=round(statistics.median(gaps), 2)
             if gaps else None, accuracy_gap_points_max=round(max(gaps), 2) if gaps else None,
             accuracy_gaps_points=sorted(round(gap, 2) for gap in gaps))
    if {"refill", "waves"} <= set(results):
        refill, waves = results["refill"], results["waves"]
        emit(refill_over_waves=round(refill["trials_per_hour"] / waves["trials_per_hour"], 2),
             trained_refill_over_waves=round(refill["trained_per_hour"] / max(waves["trained_per_hour"], 0.1), 2),
             same_architectures_trained=refill["accuracies"].keys() == waves["accuracies"].keys())


if __name__ == "__main__":
    main()
