"""How much faster NSGA-II and TPE reach a good accuracy/latency front than random search.

Each candidate's latency comes from the Edge TPU predictor (`edgetpu_usb`) and its accuracy from
the cheap accuracy estimator (`nas_service.controller.scoring.EstimateScorer`: a logistic in log
MACs and log params with a depth penalty and a +-0.5 point hash jitter, documented there), so a
search costs seconds and the comparison is about the samplers, not about training noise. Searches
run through the real controller (job spec, constraints, fronts) on a scratch SQLite database.

The search is the default job's (`JobSpec` defaults: the edgetpu_small space at 28 px on edgetpu_usb,
candidates above 700k parameters infeasible), scored by the estimator instead of training.

Figures: hypervolume of the feasible front after N trials, per sampler and seed, in the box from
chance accuracy to 1 and from 0 to twice the latency of the space's default small member (the
device profile's scale changes with calibration, so the box follows it); its ratio to random
search's hypervolume after the same N trials; and the number of trials random search needs to reach
the hypervolume each sampler reached after N (target: at least 2 N). Baseline: random search, same
run and seed. One line per sampler and seed, then one summary line per sampler with the medians over
the seeds (a seed where random search never matched within `random-factor` N counts as that factor,
so that median is then a lower bound, printed `>=`).

    .venv/bin/python bench/search_efficiency.py [--trials 60] [--random-factor 4] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
from pathlib import Path

import sqlalchemy as sa

from nas_service.config import Settings
from nas_service.controller.latency import predict_latency
from nas_service.controller.pareto import hypervolume_2d
from nas_service.controller.study import quiet_optuna
from nas_service.db import Trial
from nas_service.services import jobs
from nas_service.spec import JobSpec, parse_spec
from nas_service.worker import Worker
from search_spaces import load_space

MAX_PARAMS = 700_000
CHANCE = 0.1
DEFAULT = JobSpec()


def latency_box() -> float:
    """Twice the predicted latency of the space's default small member at the searched resolution."""
    arch = load_space(DEFAULT.space).default_small(10).with_resolution(DEFAULT.resolution or 32)
    return 2 * predict_latency(arch, DEFAULT.device).total_ms


def run(sampler: str, trials: int, seed: int, tmp: Path) -> list[tuple[float, float, bool]]:
    """(accuracy, latency_ms, feasible) of every trial, in trial order."""
    worker = Worker(Settings(database_url=f"sqlite:///{tmp}/{sampler}-{seed}.db", artifacts_dir=tmp / "a"))
    spec = parse_spec({"sampler": sampler, "seed": seed, "budget": {"trials": trials},
                       "training": {"scorer": "estimate"},
                       "constraints": {"max_params": MAX_PARAMS}})
    with worker.sessions() as session:
        job = jobs.create_job(session, spec)
    worker.run(job_id=job.id, exit_when_idle=True)
    with worker.sessions() as session:
        rows = session.execute(sa.select(Trial.accuracy, Trial.latency_ms, Trial.state)
                               .where(Trial.job_id == job.id).order_by(Trial.number)).all()
    worker.close()
    return [(float(a or 0.0), float(lat or 0.0), state == "complete") for a, lat, state in rows]


def hv_curve(points: list[tuple[float, float, bool]], max_latency_ms: float) -> list[float]:
    """Hypervolume after each trial (feasible trials only)."""
    curve, feasible = [], []
    for acc, lat, ok in points:
        if ok:
            feasible.append((acc, lat))
        curve.append(hypervolume_2d(feasible, max_latency_ms, CHANCE))
    return curve


def trials_to_reach(curve: list[float], target: float) -> int | None:
    if target <= 0:
        return None
    return next((i + 1 for i, hv in enumerate(curve) if hv >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--random-factor", type=int, default=4, help="random search runs this many times N")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    quiet_optuna()
    n = args.trials
    box = latency_box()
    ratios: dict[str, list[float]] = {"nsga2": [], "tpe": []}
    hv_ratios: dict[str, list[float]] = {"nsga2": [], "tpe": []}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for seed in range(args.seeds):
            random_curve = hv_curve(run("random", n * args.random_factor, seed, tmp), box)
            for sampler in ("nsga2", "tpe"):
                curve = hv_curve(run(sampler, n, seed, tmp), box)
                needed = trials_to_reach(random_curve, curve[-1])
                ratios[sampler].append(needed / n if needed is not None else math.inf)
                hv_ratio = curve[-1] / random_curve[n - 1] if random_curve[n - 1] > 0 else math.inf
                hv_ratios[sampler].append(hv_ratio)
                print(json.dumps({
                    "bench": "search_efficiency", "sampler": sampler, "seed": seed, "trials": n,
                    "space": DEFAULT.space, "resolution": DEFAULT.resolution,
                    "hypervolume": round(curve[-1], 5), "random_hypervolume_at_n": round(random_curve[n - 1], 5),
                    "hv_ratio_at_equal_trials": round(hv_ratio, 4),
                    "random_trials_to_match": needed if needed is not None else f">{n * args.random_factor}",
                    "ratio": round(needed / n, 2) if needed is not None else f">{args.random_factor}",
                    "target_ratio": 2.0, "hv_box_latency_ms": round(box, 4), "max_params": MAX_PARAMS,
                    "random_hypervolume_at_2n": round(random_curve[min(2 * n, len(random_curve)) - 1], 5),
                }), flush=True)
    for sampler, values in ratios.items():
        median = statistics.median(values)
        at_least = statistics.median([min(v, args.random_factor) for v in values])  # unmatched seeds count as R
        print(json.dumps({
            "bench": "search_efficiency", "summary": True, "sampler": sampler, "trials": n, "seeds": len(values),
            "median_hv_ratio_at_equal_trials": round(statistics.median(hv_ratios[sampler]), 4),
            "median_ratio": round(median, 2) if math.isfinite(median) else f">={round(at_least, 2)}",
            "per_seed": [round(v, 2) if math.isfinite(v) else f">{args.random_factor}" for v in values],
            "seeds_meeting_target": sum(v >= 2.0 for v in values), "target_ratio": 2.0}), flush=True)


if __name__ == "__main__":
    main()
