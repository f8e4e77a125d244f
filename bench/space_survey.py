"""What a space's random samples look like on a device: parameters, MACs, latency, feature maps, feasibility.

Draws N architectures uniformly (every categorical parameter independently, as Optuna's random
sampler does) at a fixed resolution, prices them with the device's latency model and prints the
5/25/50/75/95th percentiles of parameters, MACs, predicted latency and the part of the latency that is
not the device's fixed invoke+io overhead, the p95/p5 latency ratio among feasible samples, the
smallest feature map any stage runs on, and the fraction of samples within the parameter limit.
Used to choose the default job's space and resolution (README, "Default job").

    .venv/bin/python bench/space_survey.py --space edgetpu_small --resolution 32 [--n 2000] [--max-params 700000]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from latency_models import load_profile, predict_total_ms
from search_spaces import analyze, load_space


def survey(space_name: str, resolution: int, n: int, device: str, max_params: int | None,
           seed: int) -> dict[str, object]:
    archs = load_space(space_name).random_members(n, resolution=resolution, seed=seed)
    analyses = [analyze(a) for a in archs]
    params = np.array([a.params for a in analyses], dtype=float)
    macs = np.array([a.macs for a in analyses], dtype=float)
    latency = np.asarray(predict_total_ms(archs, device), dtype=float)
    overhead = float(load_profile(device).constants.get("overhead_ms", 0.0))
    min_map = np.array([min(layer.output_shape[0] for layer in a.layers if len(layer.output_shape) == 3)
                        for a in analyses])
    feasible = params <= max_params if max_params else np.ones(n, bool)
    q = (5, 25, 50, 75, 95)

    def pct(x: np.ndarray) -> dict[str, float]:
        return {f"p{p}": round(float(v), 4) for p, v in zip(q, np.percentile(x, q), strict=True)}

    lat_f = latency[feasible]
    return {"space": space_name, "resolution": resolution, "device": device, "n": n, "seed": seed,
            "params": pct(params), "mmacs": pct(macs / 1e6), "latency_ms": pct(latency),
            "latency_above_overhead_ms": pct(latency - overhead), "overhead_ms": overhead,
            "feasible_fraction": round(float(feasible.mean()), 4), "max_params": max_params,
            "feasible_latency_ms": pct(lat_f) if lat_f.size else None,
            "feasible_latency_p95_over_p5": round(float(np.percentile(lat_f, 95) / np.percentile(lat_f, 5)), 3)
            if lat_f.size else None,
            "feasible_latency_max_over_min": round(float(lat_f.max() / lat_f.min()), 3) if lat_f.size else None,
            "smallest_feature_map": int(min_map.min()),
            "share_below_2x2": round(float((min_map < 2).mean()), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="edgetpu_small")
    parser.add_argument("--resolution", type=int, action="append")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--device", default="edgetpu_usb")
    parser.add_argument("--max-params", type=int, default=700_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for resolution in args.resolution or [32]:
        print(json.dumps(survey(args.space, resolution, args.n, args.device, args.max_params, args.seed)), flush=True)


if __name__ == "__main__":
    main()
