"""Edge TPU predictions per second on fresh, never-seen `ArchSpec`s, beside one Keras build + int8 conversion.

Prints JSON lines, all measured in this run on distinct sampled candidates:
- `predict_total_ms` (the fast path: rows straight from the blocks, one vectorised pass) with every
  cache emptied first, so every candidate is new and its block repeats are walked unless an earlier
  candidate of the batch shared them; then again on the same candidates (unit rows cached);
- the baseline: `predict` (analysis `Layer`s, the per-layer table and the full breakdown) on fresh
  candidates;
- the seconds one Keras build + full-int8 conversion takes, for scale.
Rates are given per second of wall time and per second of this process's CPU time: on a shared,
busy machine the wall rate mostly measures how much of a core the process got.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from latency_models import predict, predict_total_ms
from latency_models.predictors import clear_cache
from nas_service.latency_collect import int8_bytes, sample_archs


def _rates(n: int, run: Callable[[], object]) -> dict[str, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"per_s_wall": round(n / wall), "per_s_cpu": round(n / cpu)}


def main(n: int = 5000, baseline_n: int = 1000) -> None:
    archs = [s.arch for s in sample_archs(["edgetpu", "mobilenet_v3"], n, seed=123)]
    predict_total_ms(["mobilenet_v2"], device="edgetpu_usb")  # load the profile and warm numpy up
    predict("mobilenet_v2", device="edgetpu_usb")
    clear_cache()
    fresh = _rates(n, lambda: predict_total_ms(archs, device="edgetpu_usb"))
    cached = _rates(n, lambda: predict_total_ms(archs, device="edgetpu_usb"))
    clear_cache()
    old = _rates(baseline_n, lambda: [predict(a, device="edgetpu_usb").total_ms for a in archs[:baseline_n]])
    print(json.dumps({"bench": "latency_speed", "predictor": "edgetpu_usb", "candidates": n,
                      "fast_fresh": fresh, "fast_units_cached": cached,
                      "baseline_predict_fresh": {"candidates": baseline_n, **old},
                      "speedup_cpu": round(fresh["per_s_cpu"] / old["per_s_cpu"], 1), "target_per_s": 5000}))
    start = time.perf_counter()
    int8_bytes(archs[0])
    seconds = time.perf_counter() - start
    print(json.dumps({"bench": "latency_speed", "baseline": "keras build + int8 TFLite conversion of one candidate",
                      "seconds_wall": round(seconds, 2), "equivalent_predictions_per_s": round(1 / seconds, 3)}))


if __name__ == "__main__":
    main()
