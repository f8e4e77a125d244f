"""Edge TPU predictions per second over fresh sampled `ArchSpec`s, beside one Keras build + int8 conversion.

Prints JSON lines: predictions/s of `predict` (full estimate) and `predict_total_ms` (totals only)
on distinct candidates (no cache hits), and the seconds one build + conversion takes, for scale.
"""

from __future__ import annotations

import json
import time

from latency_models import predict, predict_total_ms
from latency_models.predictors import clear_cache
from nas_service.latency_collect import int8_bytes, sample_archs


def main(n: int = 3000) -> None:
    archs = [s.arch for s in sample_archs(["edgetpu", "mobilenet_v3"], n, seed=123)]
    clear_cache()
    start = time.perf_counter()
    for arch in archs:
        predict(arch, device="edgetpu_usb")
    cold = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for arch in archs:
        predict(arch, device="edgetpu_usb")
    warm = n / (time.perf_counter() - start)
    clear_cache()
    start = time.perf_counter()
    predict_total_ms(archs, device="edgetpu_usb")
    totals = n / (time.perf_counter() - start)
    print(json.dumps({"bench": "latency_speed", "predictor": "edgetpu_usb", "candidates": n,
                      "predictions_per_s_fresh": round(cold), "predictions_per_s_cached_analysis": round(warm),
                      "totals_per_s_fresh": round(totals), "target_per_s": 5000}))
    start = time.perf_counter()
    int8_bytes(archs[0])  # noqa: the baseline itself
    print(json.dumps({"bench": "latency_speed", "baseline": "keras build + int8 TFLite conversion of one candidate",
                      "seconds": round(time.perf_counter() - start, 2),
                      "equivalent_predictions_per_s": round(1 / (time.perf_counter() - start), 3)}))


if __name__ == "__main__":
    main()
