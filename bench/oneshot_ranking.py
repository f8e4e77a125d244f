"""Whether to trust one-shot scores: do they rank candidates as training them from scratch does?

Ranking (`--n` random feasible candidates of the default job's space): the job's supernet is trained once
(`training.supernet_epochs`, the sandwich rule), every candidate is scored by its subnet with inherited weights
after batch-norm recalibration, then trained from scratch with the default job's recipe (its epochs and batch
size). Printed as JSON lines: one per candidate (one-shot and standalone accuracy, predicted latency), the
supernet's training time, candidates scored per minute (the baseline in the same run: standalone candidates
trained per minute) and Spearman's and Kendall's coefficients.

Hypervolume (`--hv-seeds`, 0 to skip): per seed, a one-shot job (supernet, scoring until `--wall` seconds,
confirmation of its front) and a standalone job given the same wall time as the one-shot job took in all,
both the default job otherwise; the hypervolume of each front (accuracy over the fastest-to-slowest predicted
latency span, reference: accuracy 0 at the slowest front member's latency of either job), their ratio, and the
median ratio over the seeds. Both are heavy (tens of minutes on 2 cores): run with `nice`.

The ranking runs without a database, so its supernet stays in a local folder (`--supernet-dir`, under its file
lock, through the same `train_supernet` as the workers); the hypervolume jobs run on a database of their own and
keep their supernet in its artifact store, as every job does.

    .venv/bin/python bench/oneshot_ranking.py [--n 30] [--supernet-epochs 2] [--hv-seeds 3 --wall 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_JOB = ROOT / "examples" / "fashion_edgetpu.yaml"
STANDALONE = ROOT / "bench" / "data" / "oneshot_standalone.jsonl"
"""Standalone accuracies already measured (architecture, recipe, seed): half an hour of training on 2 cores that
a run comparing another supernet need not repeat. `--retrain` ignores them."""
RECIPE = ("sandwich_random", "calibration_batches", "score_images")
"""The one-shot training fields the bench lets a run override, one flag each."""


def load_standalone(path: Path) -> dict[tuple[str, int, int, int], dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    return {(r["arch"], r["epochs"], r["batch_size"], r["seed"]): r for r in rows}


def oneshot_training(spec: Any, supernet_epochs: int, recipe: dict[str, Any] | None) -> Any:
    """The default job's training block in oneshot mode, with the bench's supernet epochs and recipe flags."""
    update = {"mode": "oneshot", "supernet_epochs": supernet_epochs, **(recipe or {})}
    return spec.training.model_copy(update=update)


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def ranking(n: int, supernet_epochs: int, seed: int, supernet_dir: Path | None = None,
            shard: tuple[int, int] = (0, 1), retrain: bool = False, recipe: dict[str, Any] | None = None) -> None:
    from latency_models import predict_total_ms
    from nas_service.controller.oneshot import job_data, train_supernet
    from nas_service.spec import load_spec_file
    from nas_service.trainer.training import Budget, TrainConfig, train
    from search_spaces import analyze, encode, load_space

    spec = load_spec_file(DEFAULT_JOB)
    training = oneshot_training(spec, supernet_epochs, recipe)
    resolution = spec.resolution or 28
    space = load_space(spec.space)
    data = job_data(spec.dataset, training, resolution)
    limit = spec.constraints.max_params or 10**12
    pool = space.random_members(20 * n, resolution=resolution, num_classes=data.num_classes, seed=seed)
    archs = [a for a in pool if analyze(a).params <= limit][:n]
    index, shards = shard
    archs = archs[index * len(archs) // shards:(index + 1) * len(archs) // shards]
    latencies = predict_total_ms(archs, spec.device)
    if supernet_dir is None:  # kept for the run, so that other shards given it can load the supernet
        supernet_dir = Path(tempfile.mkdtemp(prefix="oneshot-ranking-")) / "supernet"
    start = time.perf_counter()
    net = train_supernet(supernet_dir, spec.space, data, training, seed)  # trained, resumed or loaded
    supernet_s = time.perf_counter() - start
    emit(part="supernet", epochs=supernet_epochs, seconds=round(supernet_s, 1), sandwich=2 + training.sandwich_random,
         directory=str(supernet_dir))
    b = training.batch_size
    calibration = [data.x_train[i * b:(i + 1) * b] for i in range(training.calibration_batches)]
    k = training.score_images or len(data.x_test)
    start = time.perf_counter()
    oneshot = [net.accuracy(a, calibration, data.x_test[:k], data.y_test[:k]) for a in archs]
    score_s = time.perf_counter() - start
    known = {} if retrain else load_standalone(STANDALONE)
    standalone, train_s = [], 0.0
    for arch, acc, lat in zip(archs, oneshot, latencies, strict=True):
        key = (encode(arch), spec.training.epochs, b, spec.seed)
        if key not in known:
            result = train(arch, data, Budget(epochs=spec.training.epochs), seed=spec.seed,
                           config=TrainConfig(batch_size=b))
            known[key] = {"arch": key[0], "epochs": key[1], "batch_size": key[2], "seed": key[3],
                          "standalone": round(result.accuracy, 4), "train_seconds": round(result.seconds, 1)}
            STANDALONE.parent.mkdir(exist_ok=True)
            with STANDALONE.open("a") as f:
                f.write(json.dumps(known[key]) + "\n")
        train_s += known[key]["train_seconds"]
        standalone.append(known[key]["standalone"])
        emit(part="candidate", arch=key[0], latency_ms=round(float(lat), 4), oneshot=round(acc, 4),
             standalone=known[key]["standalone"], train_seconds=known[key]["train_seconds"],
             scored_per_minute=round(60 * len(archs) / score_s, 1))
    summary([{"oneshot": a, "standalone": b, "train_seconds": len(archs) and train_s / len(archs),
              "scored_per_minute": 60 * len(archs) / score_s} for a, b in zip(oneshot, standalone, strict=True)],
            supernet_seconds=round(supernet_s, 1))


def summary(rows: list[dict[str, Any]], **extra: Any) -> None:
    """The ranking line over candidate rows (from this run, or from the `candidate` lines of several shards)."""
    from nas_service.controller.oneshot import rank_correlations

    oneshot, standalone = [r["oneshot"] for r in rows], [r["standalone"] for r in rows]
    spearman, kendall = rank_correlations(oneshot, standalone)
    emit(part="ranking", n=len(rows), spearman=round(spearman, 3), kendall=round(kendall, 3),
         scored_per_minute=round(statistics.median(rates), 1) if (rates := [r["scored_per_minute"] for r in rows
                                                                           if "scored_per_minute" in r]) else None,
         standalone_per_minute=round(60 / statistics.mean(r["train_seconds"] for r in rows), 2),
         oneshot_median=round(statistics.median(oneshot), 4), standalone_median=round(statistics.median(standalone), 4),
         **extra)


def rescore(rows: list[dict[str, Any]], supernet_dir: Path, supernet_epochs: int, seed: int,
            recipe: dict[str, Any] | None = None) -> None:
    """The ranking of earlier runs' candidates (their standalone accuracies kept) by another supernet."""
    from nas_service.controller.oneshot import job_data, train_supernet
    from nas_service.spec import load_spec_file
    from search_spaces import decode

    spec = load_spec_file(DEFAULT_JOB)
    training = oneshot_training(spec, supernet_epochs, recipe)
    data = job_data(spec.dataset, training, spec.resolution or 28)
    net = train_supernet(supernet_dir, spec.space, data, training, seed)
    b, k = training.batch_size, training.score_images or len(data.x_test)
    calibration = [data.x_train[i * b:(i + 1) * b] for i in range(training.calibration_batches)]
    start = time.perf_counter()
    for r in rows:
        r["oneshot"] = round(net.accuracy(decode(r["arch"]), calibration, data.x_test[:k], data.y_test[:k]), 4)
    per_minute = 60 * len(rows) / (time.perf_counter() - start)
    for r in rows:
        r["scored_per_minute"] = round(per_minute, 1)
        emit(**{**r, "part": "candidate", "supernet": str(supernet_dir)})
    summary(rows, supernet=str(supernet_dir))


def hypervolume(points: list[tuple[float, float]], ref_latency: float) -> float:
    """Area dominated by (accuracy, latency) points up to latency `ref_latency` and accuracy 0."""
    area, best = 0.0, 0.0
    front = sorted((lat, acc) for acc, lat in points if lat <= ref_latency)
    for i, (lat, acc) in enumerate(front):
        best = max(best, acc)
        nxt = front[i + 1][0] if i + 1 < len(front) else ref_latency
        area += best * (nxt - lat)
    return area


def run_job(spec_data: dict[str, Any], directory: Path) -> tuple[list[tuple[float, float]], float, int]:
    """Run one job on a fresh SQLite database: its front (accuracy, latency), wall seconds and trials done."""
    from nas_service.config import Settings
    from nas_service.services import jobs
    from nas_service.spec import parse_spec
    from nas_service.worker import Worker

    settings = Settings(database_url=f"sqlite:///{directory / 'nas.db'}", artifacts_dir=directory / "artifacts")
    worker = Worker(settings, name="local")
    with worker.sessions() as session:
        job = jobs.create_job(session, parse_spec(spec_data))
    start = time.perf_counter()
    worker.run(job_id=job.id, exit_when_idle=True)
    wall = time.perf_counter() - start
    with worker.sessions() as session:
        front = jobs.get_front(session, job.id)
        done = jobs.get_job(session, job.id).trials_done
    worker.close()
    return [(p.accuracy, p.latency_ms) for p in front], wall, done


def hypervolumes(seeds: int, wall: float, supernet_epochs: int) -> None:
    import yaml

    base = yaml.safe_load(DEFAULT_JOB.read_text())
    ratios = []
    for seed in range(seeds):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            oneshot_spec = {**base, "seed": seed, "budget": {"trials": 100_000, "wall_seconds": wall},
                            "training": {**base["training"], "mode": "oneshot", "supernet_epochs": supernet_epochs,
                                         "concurrency": 1}}
            one_front, one_wall, one_done = run_job(oneshot_spec, Path(a))
            standalone_spec = {**base, "seed": seed, "budget": {"trials": 100_000, "wall_seconds": one_wall}}
            std_front, std_wall, std_done = run_job(standalone_spec, Path(b))
        ref = max(lat for _, lat in one_front + std_front) * 1.01
        hv_one, hv_std = hypervolume(one_front, ref), hypervolume(std_front, ref)
        ratio = hv_one / hv_std if hv_std else float("inf")
        ratios.append(ratio)
        emit(part="hypervolume", seed=seed, oneshot_trials=one_done, oneshot_seconds=round(one_wall, 1),
             oneshot_front=len(one_front), standalone_trials=std_done, standalone_seconds=round(std_wall, 1),
             standalone_front=len(std_front), hv_oneshot=round(hv_one, 5), hv_standalone=round(hv_std, 5),
             ratio=round(ratio, 3))
    emit(part="hypervolume_median", seeds=seeds, ratio=round(statistics.median(ratios), 3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--supernet-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    for name in RECIPE:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, help=f"the job's training.{name} instead")
    parser.add_argument("--hv-seeds", type=int, default=3)
    parser.add_argument("--wall", type=float, default=300.0, help="one-shot scoring wall seconds per job")
    parser.add_argument("--supernet-dir", type=Path, help="supernet checkpoints to reuse (trained if missing)")
    parser.add_argument("--shard", default="0/1", help="i/k: rank the i-th of k equal parts of the candidates "
                        "(k processes share the machine's cores; --combine their outputs)")
    parser.add_argument("--retrain", action="store_true", help=f"train every candidate again, ignoring "
                        f"{STANDALONE.relative_to(ROOT)}")
    parser.add_argument("--combine", type=Path, nargs="*", help="print the ranking of these outputs' candidates")
    parser.add_argument("--rescore", action="store_true", help="with --combine and --supernet-dir: score their "
                        "candidates with that supernet instead")
    args = parser.parse_args()
    recipe = {k: v for k in RECIPE if (v := getattr(args, k)) is not None}
    if args.combine:
        rows = [json.loads(line) for f in args.combine for line in f.read_text().splitlines() if '"candidate"' in line]
        unique = list({r["arch"]: r for r in rows}.values())
        if args.rescore:
            rescore(unique, args.supernet_dir, args.supernet_epochs, args.seed, recipe)
        else:
            summary(unique)
        return
    if args.n:
        index, shards = (int(v) for v in args.shard.split("/"))
        ranking(args.n, args.supernet_epochs, args.seed, args.supernet_dir, (index, shards), args.retrain, recipe)
    if args.hv_seeds:
        hypervolumes(args.hv_seeds, args.wall, args.supernet_epochs)


if __name__ == "__main__":
    main()
