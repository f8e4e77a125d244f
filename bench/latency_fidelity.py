"""Fidelity of the latency models: Edge TPU leave-one-out on the calibration file, cpu_litert on fresh candidates.

Prints JSON lines. For `cpu_litert`, `--n` fresh candidates (edgetpu and mobilenet_v3 spaces,
96-224 px, a seed unused by the shipped fit) are built, converted to int8 and measured on this
host (median thread CPU time per invocation, as the fit data), or read from `--measured`, a CSV
that `nas latency collect --seed <that seed>` wrote; the share of predictions within +-10% of the
measured median and the Spearman correlation are printed beside the baseline of a
MACs-proportional predictor fitted on the same shipped data, with how many candidates also occur
in the fit data (expected: 0).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from latency_models import load_profile, predict_total_ms
from latency_models.calibration import validate_profile
from latency_models.calibration_csv import read_cpu_measurements
from latency_models.measure import measure_tflite
from nas_service.latency_collect import int8_bytes, sample_archs
from search_spaces import analyze, decode, encode

CALIBRATION_CSV = Path(__file__).resolve().parents[1] / "latency_models" / "data" / "edgetpu_calibration.csv"
SHIPPED_CPU_DATA = Path(__file__).resolve().parents[1] / "latency_models" / "data" / "cpu_litert_measurements.csv"


def edgetpu(csv_path: Path) -> None:
    for device in ("edgetpu_usb", "edgetpu_devboard"):
        v = validate_profile(csv_path, load_profile(device))
        print(json.dumps({"bench": "latency_fidelity", "device": device, "networks": len(v.rows),
                          "loo_mape_pct": round(v.loo_mape, 1), "loo_spearman": round(v.loo_spearman, 3),
                          "fit_mape_pct": round(v.fit_mape, 1), "target": "loo MAPE <= 20%, Spearman >= 0.9"}))


def cpu(n: int, seed: int, measured_csv: Path | None) -> None:
    rows = read_cpu_measurements(SHIPPED_CPU_DATA)
    fitted_on = {a for a, _ in rows}
    macs_train = np.array([analyze_macs(a) for a, _ in rows])
    ms_per_mac = float(np.median(np.array([ms for _, ms in rows]) / macs_train))
    if measured_csv is not None:
        pairs = read_cpu_measurements(measured_csv)[:n]
        archs, measured = [decode(a) for a, _ in pairs], [ms for _, ms in pairs]
    else:
        archs = [sample.arch for sample in sample_archs(["edgetpu", "mobilenet_v3"], n, seed)]
        measured = [measure_tflite(int8_bytes(arch)).median_ms for arch in archs]
    predicted = predict_total_ms(archs, device="cpu_litert")
    baseline = [ms_per_mac * analyze(arch).macs for arch in archs]
    y = np.array(measured)
    overlap = sum(encode(a) in fitted_on for a in archs)
    for name, pred in (("cpu_litert", np.array(predicted)), ("macs_baseline", np.array(baseline))):
        print(json.dumps({"bench": "latency_fidelity", "device": "cpu_litert", "predictor": name,
                          "candidates": len(archs), "seed": seed, "also_in_fit_data": overlap,
                          "within_10pct_pct": round(float(np.mean(np.abs(pred - y) / y <= 0.1) * 100), 1),
                          "spearman": round(float(spearmanr(pred, y)[0]), 3),
                          "mape_pct": round(float(np.mean(np.abs(pred - y) / y) * 100), 1),
                          "target": ">= 90% within 10%, Spearman >= 0.95"}))


def analyze_macs(arch: str) -> int:
    return analyze(decode(arch)).macs


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--seed", type=int, default=9001)
    parser.add_argument("--csv", type=Path, default=CALIBRATION_CSV)
    parser.add_argument("--measured", type=Path, default=None,
                        help="measurements of the fresh candidates written by `nas latency collect --seed SEED`")
    args = parser.parse_args()
    edgetpu(args.csv)
    cpu(args.n, args.seed, args.measured)
