"""Fitting a device profile to measured latencies, and leave-one-out validation."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latency_models import cpu, edgetpu
from latency_models.calibration_csv import Measurement, read_cpu_measurements, read_measurements
from latency_models.errors import CalibrationError
from latency_models.features import LayerTable, TableBatch, layer_table
from latency_models.networks import network_layers
from latency_models.profiles import DeviceProfile


@dataclass(frozen=True)
class Validation:
    rows: tuple[tuple[str, float, float, float], ...]  # network, measured, fitted-on-all, leave-one-out
    loo_mape: float
    loo_spearman: float
    fit_mape: float


PRIOR_WEIGHT = 0.3
"""Weight of the log-space pull towards the datasheet priors; with a handful of published rows per
device it keeps every constant physical instead of letting one network set it (0.3: a constant
moves from its prior only as far as it buys a few percent of fit on several networks)."""

DEFAULT_EDGETPU_FIXED: dict[str, Any] = {
    "cache_bytes": 8283750,
    "reduction_align": 16,
    "channel_align": 64,
    "prefetch_bytes": 524288,
    "ms_per_layer": 0.01,
    "host": {"ms_per_gmac": 20.0, "ms_per_melement": 5.0},
}
"""Facts not fitted: ~7.9 MiB usable parameter cache (compiler logs), the array's alignment, the
per-layer weight prefetch buffer (0.5 MiB, chosen on an earlier form of the model; leave-one-out
MAPE USB / Dev Board with the shipped form: 0.25 MiB 11.8 / 8.2%, 0.5 MiB 15.2 / 13.3%, 1 MiB
32.7 / 29.3%, 2 MiB 66 / 70%: the fit depends on it), a 10 us cost per layer (leave-one-out MAPE USB / Dev Board:
0 us 15.8 / 13.9%, 10 us 15.2 / 13.3%, 20 us 19.1 / 17.4%, 30 us 23.0 / 20.6%: the published
networks do not support the 20-60 us per layer that DenseNet alone suggests), and the host CPU that
runs fallback ops (a desktop core for USB)."""


def _tables(rows: list[Measurement]) -> list[LayerTable]:
    return [layer_table(network_layers(r.reference, r.input_size, r.width)) for r in rows]


def _fit_constants(tables: list[LayerTable], y: np.ndarray, fixed: dict[str, Any]) -> dict[str, float]:
    from scipy.optimize import least_squares

    prior = np.log([edgetpu.PRIOR[k] for k in edgetpu.FITTED])
    batch = TableBatch.of(tables)

    def residuals(p: np.ndarray) -> np.ndarray:
        profile = DeviceProfile("fit", "edgetpu", "", dict(zip(edgetpu.FITTED, np.exp(p), strict=True)), fixed)
        pred = edgetpu.batch_totals(batch, profile)
        return np.concatenate([np.log(pred) - np.log(y), PRIOR_WEIGHT * (p - prior)])

    solution = least_squares(residuals, prior, loss="soft_l1", f_scale=0.1, xtol=1e-12, ftol=1e-12)
    return {k: round(float(v), 6) for k, v in zip(edgetpu.FITTED, np.exp(solution.x), strict=True)}


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b)[0])


def fit_edgetpu(csv_path: Path, device: str, fixed: dict[str, Any] | None = None,
                description: str = "") -> tuple[DeviceProfile, Validation]:
    """Fit the Edge TPU constants of `device` on its rows of `csv_path`; deterministic for a given file."""
    rows = read_measurements(csv_path, device)
    if len(rows) < 3:
        raise CalibrationError(f"calibration CSV {str(csv_path)!r} has {len(rows)} row(s) for device {device!r}: "
                               f"expected at least 3 to fit {len(edgetpu.FITTED)} constants against priors")
    fixed = fixed or DEFAULT_EDGETPU_FIXED
    tables = _tables(rows)
    y = np.array([r.latency_ms for r in rows])
    constants = _fit_constants(tables, y, fixed)
    validation = _validate(rows, tables, y, fixed, constants)
    digest = hashlib.sha256(Path(csv_path).read_bytes()).hexdigest()
    fit = {"command": f"nas latency calibrate {Path(csv_path).name} --device {device} --out {device}.json",
           "data": Path(csv_path).name, "data_sha256": digest, "rows": len(rows),
           "networks": [r.model for r in rows], "prior": edgetpu.PRIOR, "prior_weight": PRIOR_WEIGHT,
           "loss": "soft_l1 on log(predicted / measured), f_scale 0.1",
           "fit_mape": round(validation.fit_mape, 2), "loo_mape": round(validation.loo_mape, 2),
           "loo_spearman": round(validation.loo_spearman, 4)}
    profile = DeviceProfile(device, "edgetpu", description or f"Edge TPU device {device}", constants, fixed, fit)
    return profile, validation


def _validate(rows: list[Measurement], tables: list[LayerTable], y: np.ndarray, fixed: dict[str, Any],
              constants: dict[str, float]) -> Validation:
    full = DeviceProfile("fit", "edgetpu", "", constants, fixed)
    fitted = edgetpu.batch_totals(TableBatch.of(tables), full)
    loo = np.empty(len(rows))
    for i in range(len(rows)):
        keep = [j for j in range(len(rows)) if j != i]
        c = _fit_constants([tables[j] for j in keep], y[keep], fixed)
        loo[i] = edgetpu.batch_totals(TableBatch.of([tables[i]]), DeviceProfile("loo", "edgetpu", "", c, fixed))[0]
    table = tuple((r.model, float(m), float(f), float(p)) for r, m, f, p in zip(rows, y, fitted, loo, strict=True))
    return Validation(table, _mape(loo, y), _spearman(loo, y), _mape(fitted, y))


def validate_profile(csv_path: Path, profile: DeviceProfile) -> Validation:
    """Predicted (with `profile`) vs measured, and leave-one-out refits with the profile's fixed facts."""
    rows = read_measurements(csv_path, profile.name)
    tables = _tables(rows)
    y = np.array([r.latency_ms for r in rows])
    return _validate(rows, tables, y, profile.fixed, profile.constants)


def _mape(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - y) / y) * 100)


def cpu_design(archs: list[str]) -> np.ndarray:
    """(networks x (1 + cpu.COLUMNS)): intercept and per-network sums of the layer features."""
    from latency_models.predictors import predict_batch

    batch = predict_batch(archs)
    seg = np.repeat(np.arange(len(archs)), batch.lengths)
    per_layer = cpu.layer_features(batch.rows)
    sums = np.stack([np.bincount(seg, weights=col, minlength=len(archs)) for col in per_layer.T], axis=1)
    return np.column_stack([np.ones(len(archs)), sums])


def fit_cpu_constants(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Non-negative least squares on relative error: each row is divided by its measured latency."""
    from scipy.optimize import nnls

    coef, _ = nnls(x / y[:, None], np.ones(len(y)))
    return {k: round(float(v), 8) for k, v in zip(("overhead_ms", *cpu.COLUMNS), coef, strict=True)}


def fit_cpu(csv_path: Path, device: str = "cpu_litert", description: str = "") -> tuple[DeviceProfile, Validation]:
    """Fit the host-CPU constants from measurements; validation is 10-fold cross-validation."""
    rows = read_cpu_measurements(csv_path)
    if len(rows) < 10:
        raise CalibrationError(f"measurement CSV {str(csv_path)!r} has {len(rows)} rows: expected at least 10 "
                               f"to fit {1 + len(cpu.COLUMNS)} constants")
    archs, y = [a for a, _ in rows], np.array([ms for _, ms in rows])
    x = cpu_design(archs)
    constants = fit_cpu_constants(x, y)
    coef = np.array(list(constants.values()))
    folds = np.arange(len(y)) % 10
    held = np.empty(len(y))
    for k in range(10):
        test = folds == k
        c = np.array(list(fit_cpu_constants(x[~test], y[~test]).values()))
        held[test] = x[test] @ c
    validation = Validation(tuple((a, float(m), float(f), float(p)) for a, m, f, p in zip(archs, y, x @ coef, held,
                                                                                       strict=True)),
                            _mape(held, y), _spearman(held, y), _mape(x @ coef, y))
    within = float(np.mean(np.abs(held - y) / y <= 0.10) * 100)
    fit = {"command": f"nas latency calibrate {Path(csv_path).name} --device {device} --out {device}.json",
           "data": Path(csv_path).name, "data_sha256": hashlib.sha256(Path(csv_path).read_bytes()).hexdigest(),
           "rows": len(rows), "method": "non-negative least squares on relative error",
           "fit_mape": round(validation.fit_mape, 2), "cv10_mape": round(validation.loo_mape, 2),
           "cv10_spearman": round(validation.loo_spearman, 4), "cv10_within_10pct": round(within, 1)}
    description = description or "int8 TFLite on one host CPU thread (ai-edge-litert, XNNPACK)"
    profile = DeviceProfile(device, "cpu", description, constants, {}, fit)
    return profile, validation
