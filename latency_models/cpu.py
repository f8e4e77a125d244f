"""The host-CPU latency model (`cpu_litert`: int8 TFLite through XNNPACK on one thread).

A CPU runs one op after another, so latency is a sum over layers of linear costs, one small set of
coefficients per kernel kind, as nn-Meter fits one predictor per kernel: 1x1 convolutions (GEMM),
k x k full convolutions, depthwise convolutions by kernel size (3, 5, 7: XNNPACK has a micro-kernel
per size), dense layers (including the 1x1 convolutions of squeeze-excite, which see one position),
non-free fused activations (their own TFLite op, e.g. HARD_SWISH) and elementwise ops. Each kind
pays per GMAC, per M elements read and written, per op, and convolutions and dense layers per MB of
weights streamed through the caches; every invocation pays a fixed overhead. The
coefficients are fitted by non-negative least squares on relative error from `nas latency collect`
measurements (`calibration.fit_cpu`).
"""

from __future__ import annotations

import numpy as np

from latency_models import features as f
from latency_models.estimate import LatencyEstimate, LayerLatency
from latency_models.features import LayerTable, TableBatch
from latency_models.profiles import DeviceProfile

COLUMNS = ("ms_per_gmac_conv1x1", "ms_per_melement_conv1x1", "ms_per_conv1x1",
           "ms_per_gmac_conv", "ms_per_melement_conv", "ms_per_conv", "ms_per_mb_conv_weights",
           "ms_per_gmac_depthwise3", "ms_per_melement_depthwise3", "ms_per_depthwise3",
           "ms_per_gmac_depthwise5", "ms_per_melement_depthwise5", "ms_per_depthwise5",
           "ms_per_gmac_depthwise7", "ms_per_melement_depthwise7", "ms_per_depthwise7",
           "ms_per_mb_dense", "ms_per_dense",
           "ms_per_melement_activation", "ms_per_activation", "ms_per_melement_elementwise", "ms_per_elementwise")


def layer_features(rows: np.ndarray) -> np.ndarray:
    """(layers x COLUMNS) feature matrix whose product with the coefficients is ms per layer."""
    kind, opcode, kernel = rows[:, f.KIND], rows[:, f.OPCODE], rows[:, f.KERNEL]
    gmacs = rows[:, f.MACS] * 1e-9
    io = (rows[:, f.IN_ELEMENTS] + rows[:, f.OUT_ELEMENTS]) * 1e-6
    weights_mb = rows[:, f.PARAM_BYTES] * 1e-6
    conv = (opcode == f.CONV) & (rows[:, f.POSITIONS] > 1)
    one, full = conv & (kernel == 1), conv & (kernel > 1)
    dense = (opcode == f.DENSE) | ((opcode == f.CONV) & (rows[:, f.POSITIONS] <= 1))
    dw = opcode == f.DEPTHWISE
    compute, elementwise = kind == f.COMPUTE, kind == f.ELEMENTWISE
    activation = rows[:, f.ELEMENTS] * 1e-6
    zero = np.zeros(len(rows))
    columns = [np.where(one, gmacs, zero), np.where(one, io, zero), one,
               np.where(full, gmacs, zero), np.where(full, io, zero), full, np.where(conv, weights_mb, zero)]
    for mask in (dw & (kernel <= 3), dw & (kernel > 3) & (kernel <= 5), dw & (kernel > 5)):  # 3, 5, 7 and up
        columns += [np.where(mask, gmacs, zero), np.where(mask, io, zero), mask]
    columns += [np.where(dense, weights_mb, zero), dense,
                np.where(compute, activation, zero), compute & (activation > 0),
                np.where(elementwise, activation, zero), elementwise]
    return np.column_stack(columns).astype(np.float64)


def coefficients(profile: DeviceProfile) -> np.ndarray:
    return np.array([profile.constants.get(c, 0.0) for c in COLUMNS])


def layer_times(table: LayerTable, profile: DeviceProfile) -> np.ndarray:
    times: np.ndarray = layer_features(table.rows) @ coefficients(profile)
    return times


def batch_totals(batch: TableBatch, profile: DeviceProfile) -> np.ndarray:
    """Total ms of each network of the batch (per-network sums in layer order, as `estimate` sums)."""
    times = layer_features(batch.rows) @ coefficients(profile)
    seg = np.repeat(np.arange(len(batch.lengths)), batch.lengths)
    sums: np.ndarray = np.bincount(seg, weights=times, minlength=len(batch.lengths))
    return profile.constants["overhead_ms"] + sums


def estimate(table: LayerTable, profile: DeviceProfile) -> LatencyEstimate:
    times = layer_times(table, profile)
    overhead = profile.constants["overhead_ms"]
    total = float(batch_totals(TableBatch.of([table]), profile)[0])
    layers = (LayerLatency("invoke", "overhead", overhead, "cpu"),
              *(LayerLatency(n, o, float(t), "cpu") for n, o, t in zip(table.names, table.ops, times.tolist(),
                                                                       strict=True)))
    return LatencyEstimate(total, layers, 0, 0, (), table.unmodeled, profile.name, profile.version,
                           float_ops=table.float_ops)
