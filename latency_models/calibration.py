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
from latency_models.networks import network_key, network_layers
from latency_models.profiles import DeviceProfile


@dataclass(frozen=True)
class Validation:
    rows: tuple[tuple[str, float, float, float], ...]  # network, measured, fitted-on-all, leave-one-out
    loo_mape: float
    loo_spearman: float
    fit_mape: float
    bands: tuple[BandFigures, ...] = ()


@dataclass(frozen=True)
class BandFigures:
    """Leave-one-out figures of the networks measured in one size band."""

    band: str
    networks: int
    mape: float
    median_error: float  # signed, percent
    rms_error: float  # percent: the half-width of an estimate's interval in this band
    spearman: float | None


PUBLISHED_CSV = Path(__file__).with_name("data") / "edgetpu_calibration.csv"
"""The published Coral latencies the packaged Edge TPU profiles are fitted on (`published.py`)."""

BANDS = (("<3 ms", 0.0, 3.0), ("3-30 ms", 3.0, 30.0), (">30 ms", 30.0, float("inf")))
"""Size bands by measured (validation) or predicted (an estimate's interval) latency."""

PRIOR_WEIGHT = 0.3
"""Weight of the log-space pull towards the datasheet priors: a constant moves from its prior only as far
as it buys a few percent of fit on several networks, so that no one network sets it."""

DEFAULT_EDGETPU_FIXED: dict[str, Any] = {
    "cache_bytes": 8283750,
    "reduction_align": 16,
    "channel_align": 16,
    "activation_bytes": 2000000,
    "host": {"ms_per_gmac": 20.0, "ms_per_melement": 5.0},
}
"""Facts not fitted: ~7.9 MiB usable parameter cache (compiler logs); the array's lanes (16: 4 TOPS at
500 MHz is 4,096 MACs a cycle, 4x4 tiles of 4 cores of 64 lanes; whether a layer narrower than 64
channels pays for 64 the published networks barely tell (leave-one-out MAPE USB / Dev Board 10.7 / 10.1,
8.3 / 8.8 and 7.9 / 9.0% at 64, 32 and 16 lanes), while narrow cell networks measured a 3.25x spread that
64-lane padding flattens); the activation memory (2 MB: a layer reading and writing more spills the rest, and
so does a held tensor that does not fit beside the layers it is held across; leave-one-out MAPE USB / Dev
Board 9.1 / 10.8% at 1.5 MB, 7.9 / 9.0% at 2 MB, 8.9 / 9.2% at 2.5 MB); the host CPU that runs fallback
ops (a desktop core for USB, its element rate the prior of the fitted `host_ms_per_melement`)."""


ASSUMPTIONS = {
    "cache_bytes": "~7.9 MiB of the 8 MB SRAM caches parameters: edgetpu_compiler logs ('On-chip memory "
                   "available for caching model parameters'); the rest streams from the host on every run",
    "reduction_align, channel_align": "4 TOPS at 500 MHz is 4,096 MACs a cycle (Coral datasheet); 4x4 tiles of "
                                      "4 cores (Yazdanbakhsh et al. 2021, 'An Evaluation of Edge TPU "
                                      "Accelerators for Convolutional Neural Networks'); 16 lanes padded "
                                      "(leave-one-out MAPE USB / Dev Board 7.9 / 9.0% at 16, 8.3 / 8.8% at 32, "
                                      "10.7 / 10.1% at 64 lanes; 16 kept for the spread of narrow networks)",
    "activation_bytes": "on-chip memory for the activations a layer works on; 2 MB chosen by leave-one-out "
                        "(USB / Dev Board MAPE 9.1 / 10.8% at 1.5 MB, 7.9 / 9.0% at 2 MB, 8.9 / 9.2% at "
                        "2.5 MB); an assumption, not a published figure",
    "held tensors": "a layer's output read again more than 10 layers later (features.HELD_SPAN: a U-Net skip, a "
                    "detector's feature tap) stays in activation memory while the layers between run; where their "
                    "working set (inputs, outputs and every held tensor) exceeds activation_bytes, the held tensor "
                    "is spilled: written to host memory and read back over the link once. Residual shortcuts (read "
                    "again 3-8 layers on) are kept on chip: spilling them too prices ResNet-50 at 299 px +37% (USB "
                    "leave-one-out). An assumption chosen by leave-one-out, not a published figure",
    "transposed convolution": "a stride-s TRANSPOSE_CONV runs as s*s stride-1 convolutions of its input, one per "
                              "output phase, each kernel padded to ceil(k/s) x ceil(k/s) (the phase decomposition "
                              "that runs a transposed convolution on a convolution array without multiplying "
                              "zeros): ceil(k/s)^2 * cin MACs per output position, 16/9 of the op's own for k 3, "
                              "s 2. Chosen by leave-one-out (USB / Dev Board MAPE: phases 7.9 / 9.0%, over the "
                              "zero-dilated input 13.7 / 11.5%, the op's own MACs 11.2 / 10.0%)",
    "output read": "the host reads the network's output from the TPU at its fitted element rate "
                   "(host_ms_per_melement, the rate it runs fallback ops at; no constant of its own) unless ops "
                   "fall back, whose elements already price it: a segmentation network's 128x128xC output costs "
                   "the Dev Board's Cortex-A53 what a classifier's 1,001 scores do not. ms_per_mb_io cannot carry "
                   "it: its fitted value stays at its prior's (0.1, 1 or 10 ms per MB fit 0.1, 1.0 or 4.3-5.0). "
                   "Chosen by leave-one-out (USB / Dev Board MAPE 8.9 / 11.8% without, 7.9 / 9.0% with; a joint fit "
                   "sharing the chip's constants between the two devices 9.0 / 12.2% without, 7.8 / 9.4% with)",
    "concatenation": "free, data traffic included: the compiler writes the inputs of a concatenation into its output",
    "pools": "cost the data they move only (no MACs on the array)",
    "streaming": "parameters beyond the cache stream over the host link while the array computes "
                 "(double-buffered): the TPU's time is the larger of the two",
    "host": "fallback ops on the host CPU: a desktop core for USB, a Cortex-A53 for the Dev Board; the GMAC rate "
            "fixed, the element rate fitted (the SSD postprocess on the CPU)",
    "data": "published Coral latencies (Table 1 of coral.ai/docs/edgetpu/benchmarks, the coral.ai models pages, "
            "pycoral's benchmarks, community C++ timings); see data/edgetpu_excluded.csv for what is left out, "
            "including rows faster than the network rebuilt could stream its parameters at the link's 500 MB/s line "
            "rate (published.LINK_CEILING_MB_PER_S: Inception-ResNet V2's 48 MB beyond the cache need at least "
            "96 ms; it is published at 57 / 69 ms)",
}
"""Every assumption of the Edge TPU model with its source, recorded in each fitted profile."""


@dataclass(frozen=True)
class Network:
    """One calibration network: its rows (several sources may time it) and their median."""

    model: str
    key: str
    table: LayerTable
    latency_ms: float
    rows: int


def networks_of(rows: list[Measurement]) -> list[Network]:
    """The rows grouped by network (reference, input size, width), each timed by the median of its rows."""
    groups: dict[str, list[Measurement]] = {}
    for r in rows:
        groups.setdefault(network_key(r.reference, r.input_size, r.width), []).append(r)
    return [Network(f"{g[0].model} ({g[0].input_size} px)" if g[0].input_size else g[0].model, key,
                    layer_table(network_layers(g[0].reference, g[0].input_size, g[0].width)),
                    float(np.median([r.latency_ms for r in g])), len(g)) for key, g in groups.items()]


def _fit_constants(tables: list[LayerTable], y: np.ndarray, fixed: dict[str, Any]) -> dict[str, float]:
    from scipy.optimize import least_squares

    priors = edgetpu.prior(fixed)
    prior = np.log([priors[k] for k in edgetpu.FITTED])
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


def read_rows(csv_paths: list[Path], device: str) -> list[Measurement]:
    """The rows of `device` in every file (a user's own measurements, or them and the published ones)."""
    rows = [r for path in csv_paths for r in read_measurements(path, None) if r.device == device]
    if not rows:
        names = ", ".join(repr(str(p)) for p in csv_paths)
        raise CalibrationError(f"calibration CSV {names} has no rows for device {device!r}: expected rows whose "
                               f"device column is {device!r}")
    return rows


def fit_edgetpu(csv_path: Path | list[Path], device: str, fixed: dict[str, Any] | None = None,
                description: str = "") -> tuple[DeviceProfile, Validation]:
    """Fit the Edge TPU constants of `device` on its rows of the CSV file(s); deterministic for given files."""
    paths = [Path(p) for p in (csv_path if isinstance(csv_path, list) else [csv_path])]
    rows = read_rows(paths, device)
    networks = networks_of(rows)
    if len(networks) < 3:
        raise CalibrationError(f"calibration CSV {str(paths[0])!r} has {len(networks)} network(s) for device "
                               f"{device!r}: expected at least 3 to fit {len(edgetpu.FITTED)} constants against "
                               "priors")
    fixed = fixed or DEFAULT_EDGETPU_FIXED
    tables = [n.table for n in networks]
    y = np.array([n.latency_ms for n in networks])
    constants = _fit_constants(tables, y, fixed)
    validation = _validate(networks, fixed, constants)
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in paths)).hexdigest()
    names = " ".join(p.name for p in paths)
    fit = {"command": f"nas latency calibrate {names} --device {device} --out {device}.json",
           "data": [p.name for p in paths] if len(paths) > 1 else paths[0].name, "data_sha256": digest,
           "rows": len(rows), "networks": [n.model for n in networks], "prior": edgetpu.prior(fixed),
           "prior_weight": PRIOR_WEIGHT, "loss": "soft_l1 on log(predicted / measured), f_scale 0.1",
           "fit_mape": round(validation.fit_mape, 2), "loo_mape": round(validation.loo_mape, 2),
           "loo_spearman": round(validation.loo_spearman, 4),
           "bands": [{"band": b.band, "networks": b.networks, "loo_mape": round(b.mape, 2),
                      "loo_median_error": round(b.median_error, 2), "loo_rms_error": round(b.rms_error, 2)}
                     for b in validation.bands],
           "calibrated_range": calibrated_range(tables, DeviceProfile(device, "edgetpu", "", constants, fixed)),
           "assumptions": ASSUMPTIONS}
    profile = DeviceProfile(device, "edgetpu", description or f"Edge TPU device {device}", constants, fixed, fit)
    return profile, validation


def calibrated_range(tables: list[LayerTable], profile: DeviceProfile) -> dict[str, Any]:
    """What the calibration networks span: an estimate outside it is `extrapolated`."""
    from latency_models.uncertainty import network_extent

    extents = [network_extent(t, profile) for t in tables]
    return {"min_macs": min(e["macs"] for e in extents), "max_macs": max(e["macs"] for e in extents),
            "max_streamed_bytes": max(e["streamed_bytes"] for e in extents),
            "ops": sorted({op for e in extents for op in e["ops"]})}


def _bands(y: np.ndarray, loo: np.ndarray) -> tuple[BandFigures, ...]:
    err = (loo - y) / y * 100
    out = []
    for name, lo, hi in BANDS:
        m = (y >= lo) & (y < hi)
        if not m.any():
            continue
        rho = _spearman(loo[m], y[m]) if m.sum() >= 3 else None
        out.append(BandFigures(name, int(m.sum()), float(np.mean(np.abs(err[m]))), float(np.median(err[m])),
                               float(np.sqrt(np.mean(err[m] ** 2))), rho))
    return tuple(out)


def _validate(networks: list[Network], fixed: dict[str, Any], constants: dict[str, float]) -> Validation:
    tables = [n.table for n in networks]
    y = np.array([n.latency_ms for n in networks])
    full = DeviceProfile("fit", "edgetpu", "", constants, fixed)
    fitted = edgetpu.batch_totals(TableBatch.of(tables), full)
    loo = np.empty(len(networks))
    for i in range(len(networks)):
        keep = [j for j in range(len(networks)) if j != i]
        c = _fit_constants([tables[j] for j in keep], y[keep], fixed)
        loo[i] = edgetpu.batch_totals(TableBatch.of([tables[i]]), DeviceProfile("loo", "edgetpu", "", c, fixed))[0]
    table = tuple((n.model, float(m), float(f), float(p)) for n, m, f, p in zip(networks, y, fitted, loo,
                                                                                 strict=True))
    return Validation(table, _mape(loo, y), _spearman(loo, y), _mape(fitted, y), _bands(y, loo))


def validate_profile(csv_path: Path, profile: DeviceProfile) -> Validation:
    """Predicted (with `profile`) vs measured per network, and leave-one-network-out refits with its fixed facts."""
    networks = networks_of(read_rows([csv_path], profile.name))
    return _validate(networks, profile.fixed, profile.constants)


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
